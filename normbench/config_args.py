"""The options as given (SelectionArgs, TimingArgs, OutputArgs), each suite's defaults for what
they leave out, and the builders that turn them into configs (normbench.config): the CLI only
collects option values, so a library user gets the CLI's selection and defaults."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from normbench.config import (
    Selection,
    SpeedConfig,
    StabilityConfig,
    Strings,
    check_device_dtypes,
    check_fits,
    parse_ints,
    parse_sweep_range,
    split,
    unique,
)
from normbench.dtypes import canonical
from normbench.formats import DEFAULT_FORMATS, DEFAULT_OUT, metrics_of, parse_formats
from normbench.inputs import default_dists
from normbench.options import NormOptions
from normbench.validate import check_threads, given

# --- the selection options as given, and what each suite selects without them --------------------


@dataclass(frozen=True)
class SelectionDefaults:
    """What a selection option left out selects, as option text (parsed like the option)."""

    dtype: str
    dim: str
    batch: str
    seq: str
    variant: str = "layernorm,rmsnorm"
    backend: str | None = None  # None: the registry's DEFAULT_BACKENDS (and --plugin's)
    mode: str = "fwd"


@dataclass(frozen=True)
class DeviceDefaults:
    """A suite's defaults on a CPU and on a GPU."""

    cpu: SelectionDefaults
    gpu: SelectionDefaults

    def on(self, device: str) -> SelectionDefaults:
        return self.gpu if device.startswith("cuda") else self.cpu

    def but(self, **changes: str) -> DeviceDefaults:
        return DeviceDefaults(replace(self.cpu, **changes), replace(self.gpu, **changes))


# Defaults that finish in about a minute on 2 CPU cores, and a fuller sweep on a GPU.
CPU_DEFAULTS = SelectionDefaults(dtype="fp32", dim="1024,4096", batch="4", seq="512")
GPU_DEFAULTS = SelectionDefaults(dtype="bf16", dim="1024,2048,4096,8192", batch="8", seq="2048")
SPEED_DEFAULTS = DeviceDefaults(CPU_DEFAULTS, GPU_DEFAULTS)  # speed, ab and calibrate
MEMORY_DEFAULTS = SPEED_DEFAULTS.but(mode="fwd+bwd")  # inference and training peaks
# memory --quick: memory has no time budget to shorten, so its quick form is the smaller sweep,
# one N and fewer rows (on a CPU half the cases in about half the time, on a GPU a quarter of
# the cases). What a row-wise norm saves grows with the rows and N: its ratio to the ideal, the
# suite's summary, is the same at fewer rows and, to the summary's two digits, at another N.
MEMORY_QUICK = DeviceDefaults(
    replace(MEMORY_DEFAULTS.cpu, dim="1024", batch="1"),
    replace(MEMORY_DEFAULTS.gpu, dim="4096", batch="4"),
)
LAYER_OPTIONS = ("no_weight", "weight_dtype", "rms_bias", "residual_dtype", "heads")


def memory_defaults(quick: bool = False) -> DeviceDefaults:
    """The memory suite's selection defaults: its full sweep, or with --quick the smaller one
    (options given explicitly win over either, as for every suite)."""
    return MEMORY_QUICK if quick else MEMORY_DEFAULTS


@dataclass(frozen=True)
class SelectionArgs:
    """The selection options of speed, memory, stability, ab and calibrate as given; None (or
    the field's default) selects the suite's default."""

    variant: Strings = None
    backend: Strings = None
    dtype: Strings = None
    dim: Strings = None
    batch: Strings = None
    seq: Strings = None
    mode: Strings = None
    device: str = "auto"
    pattern: str | None = None  # --filter
    seed: int = 0
    plugin: Sequence[str] | None = None  # --plugin specs
    # The layer options (normbench.options) and QK-norm's head counts.
    no_weight: bool = False
    weight_dtype: str | None = None
    rms_bias: bool = False
    residual_dtype: str | None = None
    heads: Strings = None

    def run_extra(self) -> dict:
        """What a run records beside its config: the --plugin specs."""
        return {"plugins": list(self.plugin)} if self.plugin else {}


def load_plugin_backends(specs: Sequence[str] | None) -> list[str]:
    """Load the --plugin specs (before a selection is validated, so their names are accepted in
    --backend); the names of the backends they added."""
    if not specs:
        return []
    from normbench.plugins import load_plugins

    return [b.name for b in load_plugins(specs)]


def layer_options(args: SelectionArgs) -> dict:
    """The layer options as Selection keyword arguments."""
    options = NormOptions(
        affine=not args.no_weight, weight_dtype=args.weight_dtype, bias=args.rms_bias,
        residual_dtype=args.residual_dtype,
    )  # fmt: skip
    return {"options": options, "heads": tuple(parse_ints(args.heads, "--heads") or [1])}


def build_selection(args: SelectionArgs, defaults: DeviceDefaults = SPEED_DEFAULTS) -> Selection:
    """Option values -> Selection, with the device's `defaults` for what is left out. The
    --plugin specs are loaded first, and their backends join the default --backend list."""
    from normbench.env import resolve_device
    from normbench.registry import DEFAULT_BACKENDS

    layer = layer_options(args)
    added = load_plugin_backends(args.plugin)
    dev = resolve_device(args.device)
    d = defaults.on(dev)
    default_backends = split(d.backend or ",".join(DEFAULT_BACKENDS))
    default_backends += [n for n in added if n not in default_backends]
    sel = Selection(
        variants=tuple(given(args.variant, "--variant") or split(d.variant)),
        backends=tuple(given(args.backend, "--backend") or default_backends),
        dtypes=tuple(unique(canonical(x) for x in given(args.dtype, "--dtype") or split(d.dtype))),
        dims=tuple(parse_ints(args.dim, "--dim") or parse_ints(d.dim, "--dim")),
        batches=tuple(parse_ints(args.batch, "--batch") or parse_ints(d.batch, "--batch")),
        seqs=tuple(parse_ints(args.seq, "--seq") or parse_ints(d.seq, "--seq")),
        modes=tuple(given(args.mode, "--mode") or split(d.mode)),
        device=dev,
        pattern=args.pattern,
        seed=args.seed,
        **layer,
    )
    check_device_dtypes(dev, sel.dtypes)
    check_fits(sel)
    return sel


DEFAULT_BUDGET = 1.0  # seconds of timing per case
QUICK_BUDGET = 0.3  # with --quick and no --time-budget


@dataclass(frozen=True)
class TimingArgs:
    """The timing options of speed, ab and calibrate as given."""

    threads: int | None = None  # None: torch's
    time_budget: float | None = None  # None: DEFAULT_BUDGET, or QUICK_BUDGET with --quick
    quick: bool = False
    cache: str = "cold"
    hot: bool = False  # shorthand for cache="hot"
    cuda_graph: str = "auto"


def build_speed_config(
    selection: Selection, timing: TimingArgs, out: Path, formats: tuple[str, ...], **kw
) -> SpeedConfig:
    """The timing options as one SpeedConfig. --quick lowers the default budget to
    QUICK_BUDGET; an explicit --time-budget wins over it (`--quick --time-budget 3` times 3 s)."""
    if timing.threads is not None:
        check_threads(timing.threads)  # before torch is imported, let alone told the count
    import torch

    budget = timing.time_budget
    if budget is None:
        budget = QUICK_BUDGET if timing.quick else DEFAULT_BUDGET
    return SpeedConfig(
        selection=selection,
        threads=timing.threads if timing.threads is not None else torch.get_num_threads(),
        time_budget=budget,
        quick=timing.quick,
        cache="hot" if timing.hot else timing.cache.strip().lower(),
        cuda_graph=timing.cuda_graph.strip().lower(),
        out=out,
        formats=formats,
        **kw,
    )


@dataclass(frozen=True)
class OutputArgs:
    """Where the reports go and in which formats, as given."""

    out: Path = DEFAULT_OUT
    fmt: str = "csv,md,json"
    plot: bool = False
    columns: list[str] | None = None  # the tables' columns shown (normbench.report.columns)
    metrics: str | None = None  # the metrics the CSV, gab and liger exports keep (None: all)

    def formats(
        self, suite: str = "", lacking: tuple[str, ...] = (), added_by: str = ""
    ) -> tuple[str, ...]:
        """The formats, carrying --metrics to the writer; `--out -` takes exactly one format,
        and an export that `suite`'s run could never fill is refused (`lacking`: the metrics
        it will not have without the option `added_by`; results.metrics.check_run_metrics)."""
        from normbench.results.metrics import check_run_metrics

        formats = parse_formats(self.fmt, self.out, self.plot, self.metrics)
        check_run_metrics(suite, formats, metrics_of(formats), lacking, added_by)
        return formats


STABILITY_BACKENDS = "eager,composite,triton,triton-llama,gemma,triton-gemma"
STABILITY_CPU = SelectionDefaults(dtype="fp16,bf16,fp32", dim="1000,4096,8192", batch="1",
                                  seq="4", backend=STABILITY_BACKENDS, mode="fwd+bwd")  # fmt: skip
STABILITY_GPU = replace(STABILITY_CPU, batch="4", seq="1024")
STABILITY_DEFAULTS = DeviceDefaults(STABILITY_CPU, STABILITY_GPU)
# stability --quick: the same dtypes, inputs and backends at N = 1000 (docs/numerics.md trap 5:
# N not a power of two) and 4096, without the widest in-register row, 8192: two thirds of the
# cases; on 2 CPU cores the same worst case per implementation in 59% of the CPU time (1 min
# 50 s against 3 min 7 s, 2026-12-02, other jobs sharing the machine).
STABILITY_QUICK = STABILITY_DEFAULTS.but(dim="1000,4096")


def dtype_flags(args: SelectionArgs, fp16: bool, bf16: bool, fp32: bool) -> list[str]:
    """--dtype with stability's --fp16, --bf16 and --fp32 joined to it (empty: none given)."""
    flags = [name for name, on in (("fp16", fp16), ("bf16", bf16), ("fp32", fp32)) if on]
    return unique(given(args.dtype, "--dtype") + flags)


def build_stability_selection(
    args: SelectionArgs,
    fp16: bool = False,
    bf16: bool = False,
    fp32: bool = False,
    quick: bool = False,
) -> Selection:
    """stability's selection, with its defaults (with `quick` the smaller sweep's); its --fp16,
    --bf16 and --fp32 join --dtype."""
    from normbench.env import resolve_device

    dtypes = dtype_flags(args, fp16, bf16, fp32)
    resolve_device(args.device)  # a missing device is refused before the layer options
    defaults = STABILITY_QUICK if quick else STABILITY_DEFAULTS
    return build_selection(replace(args, dtype=dtypes or None), defaults)


def build_stability_config(
    selection: Selection,
    dist: Strings = None,
    sweep_range: str | None = None,
    determinism: bool = True,
    fail_on: str | None = None,
    out: Path = DEFAULT_OUT,
    formats: tuple[str, ...] = DEFAULT_FORMATS,
) -> StabilityConfig:
    """stability's own options as given -> StabilityConfig (--dist defaults to the suite's)."""
    return StabilityConfig(
        selection=selection,
        dists=tuple(given(dist, "--dist")) or default_dists(),
        sweep=parse_sweep_range(sweep_range) if sweep_range is not None else (),
        determinism=determinism,
        fail_on=None if fail_on is None else fail_on.upper(),  # "" is refused, not off
        out=out,
        formats=formats,
    )
