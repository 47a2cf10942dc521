"""The command line's options, each declared once, and the groups of them that commands share.

A command takes a group by naming its dataclass (`sel: SelectionArgs`): `grouped` puts the
group's options into the command's signature, where typer reads them, and calls the command
with one frozen dataclass of their values. Shared options are listed in the order of OPTIONS in
every command's --help; a command's own option follows the one its `After` names, or, without
one, comes before the groups (written before them) or after them. An own option named like a
group's replaces it (another help text or default); `Without` leaves a group's options out.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import typer

from normbench.config_args import (
    DEFAULT_BUDGET,
    MEMORY_QUICK,
    QUICK_BUDGET,
    STABILITY_QUICK,
    OutputArgs,
    SelectionArgs,
    TimingArgs,
)
from normbench.registry import DEFAULT_BACKENDS
from normbench.validate import (
    DEPTH_MAX,
    REPEATS_MAX,
    REPEATS_MIN,
    SEED_MAX,
    THREADS_PER_CPU,
)
from normbench.variants import VARIANTS


@dataclass(frozen=True)
class After:
    """On a command's own option: list it right after this (shared) option."""

    name: str


Opt = typer.Option
# List options take a comma list or repeat; a repeated value is dropped (`--dim 64,64` times
# N = 64 once) and a value that names nothing (`--dim ,`) is refused (normbench.validate.given).
VariantOpt = Annotated[
    list[str] | None,
    Opt("--variant", "-v", help=f"Variants, comma list: {', '.join(VARIANTS)}."),
]
BackendOpt = Annotated[
    list[str] | None,
    Opt("--backend", "-b", help=f"Backends, comma list: {', '.join(DEFAULT_BACKENDS)} (the "
        "default) and the others `normbench list` shows, with plugins and availability."),
]  # fmt: skip
DtypeOpt = Annotated[list[str] | None, Opt("--dtype", help="fp32, fp16, bf16 (comma list).")]
DimOpt = Annotated[
    list[str] | None, Opt("--dim", "-n", help="Hidden sizes N, comma list (repeats dropped).")
]
BatchOpt = Annotated[list[str] | None, Opt("--batch", help="Batch sizes (rows = batch x seq).")]
SeqOpt = Annotated[list[str] | None, Opt("--seq", help="Sequence lengths.")]
ModeOpt = Annotated[list[str] | None, Opt("--mode", help="fwd, bwd, fwd+bwd (comma list).")]
DeviceOpt = Annotated[str, Opt("--device", help="auto, cpu, cuda or cuda:N.")]
ThreadsOpt = Annotated[
    int | None,
    Opt("--threads", help=f"CPU threads, 1 to {THREADS_PER_CPU} per usable CPU (default: "
        "torch's)."),
]  # fmt: skip
BudgetOpt = Annotated[
    float | None,
    Opt("--time-budget", help=f"Seconds of timing per case, finite and positive (default "
        f"{DEFAULT_BUDGET:g}; {QUICK_BUDGET:g} with --quick, which an explicit value overrides)."),
]  # fmt: skip
QuickOpt = Annotated[
    bool,
    Opt("--quick", help=f"Fewer samples, looser CI target, {QUICK_BUDGET:g} s per case unless "
        "--time-budget is given."),
]  # fmt: skip
CacheOpt = Annotated[
    str,
    Opt("--cache", help="cold: each call reads inputs no cache holds (inputs rotated through "
        "more than twice the last-level cache; CUDA: L2 flushed too); hot: back to back."),
]  # fmt: skip
HotOpt = Annotated[bool, Opt("--hot", help="Shorthand for --cache hot.")]
CudaGraphOpt = Annotated[
    str, Opt("--cuda-graph", help="CUDA: replay short calls from a graph: auto, on or off.")
]
FilterOpt = Annotated[
    str | None, Opt("--filter", help="Regex on case ids, e.g. 'rmsnorm/.*/bf16'.")
]
OutOpt = Annotated[
    Path, Opt("--out", help="Folder for the reports; - streams the one --format to stdout.")
]
FormatOpt = Annotated[
    str,
    Opt("--format", help="Report formats: csv,md,json,html, gab and gab-bigger "
        "(github-action-benchmark), liger (Liger-Kernel's CSV) or none."),
]  # fmt: skip


MetricsOpt = Annotated[
    str | None,
    Opt("--metrics",  # checked with the formats (results.metrics.check_run_metrics)
        help="Metrics the csv, gab and liger files keep (the tidy rows' `metric`, comma list, "
        "patterns such as '*_max_ulp'), e.g. time,bandwidth. Default: all (gab: the suite's "
        "headline ones)."),
]  # fmt: skip
ColumnsOpt = Annotated[
    list[str] | None,
    Opt("--columns", help="Table columns to show in the console, Markdown and HTML, by header "
        "(case-insensitive, comma list), e.g. 'median,GB/s,note'. The columns that name a case "
        "(variant, dtype, shape, mode, backend, case, implementation, N, input, ...) are always "
        "kept; a table without any chosen column is left out. CSV and JSON keep every column."),
]  # fmt: skip
PlotOpt = Annotated[
    bool, Opt("--plot", help="Also write PNG plots beside the reports (the Markdown links them).")
]
SeedOpt = Annotated[int, Opt("--seed", help=f"Seed of every input, 0 to {SEED_MAX}.")]
PluginOpt = Annotated[
    list[str] | None, Opt("--plugin", help="pkg.module:object or path/to/file.py (repeatable).")
]
# The layer options (normbench.options): what a model's norm layer holds beyond its variant.
NoWeightOpt = Annotated[
    bool, Opt("--no-weight", help="No weight and no bias (elementwise_affine=False).")
]
WeightDtypeOpt = Annotated[
    str | None,
    Opt("--weight-dtype", help="Weight (and bias) dtype apart from x's: fp32, fp16 or bf16."),
]
RmsBiasOpt = Annotated[bool, Opt("--rms-bias", help="RMSNorm with a bias (as QuACK allows).")]
ResidualDtypeOpt = Annotated[
    str | None,
    Opt("--residual-dtype", help="add_*: the residual stream's dtype apart from x's, e.g. fp32."),
]
HeadsOpt = Annotated[
    list[str] | None,
    Opt("--heads", help="QK-norm: x (batch, seq, heads, dim), one weight row per head."),
]
# The regression gate's options (speed --baseline, compare, ab).
ThresholdOpt = Annotated[
    str, Opt("--threshold", help="Margin of the regression verdict, e.g. 5% (see compare).")
]
MdOpt = Annotated[
    Path | None,
    Opt("--md", help="Append the verdict as Markdown to FILE (e.g. $GITHUB_STEP_SUMMARY)."),
]
ForceOpt = Annotated[
    bool, Opt("--force", help="Compare even if device, driver, torch, triton or threads differ.")
]

# --- each command's own options -------------------------------------------------------------------
DebugOpt = Annotated[
    bool, Opt("--debug", help="Show tracebacks (the exit codes stay the same).")
]  # every command


def _print_version(value: bool) -> None:
    if value:
        from normbench import __version__

        typer.echo(f"normbench {__version__}")
        raise typer.Exit()


VersionOpt = Annotated[
    bool,
    Opt("--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
]
# speed
MemoryOpt = Annotated[
    bool, Opt("--memory", help="Also measure saved-for-backward and peak memory per case."),
    After("hot"),
]  # fmt: skip
BaselineOpt = Annotated[
    Path | None, Opt("--baseline", help="Compare with this saved run and exit 1 on a regression.")
]
# memory
MemoryModeOpt = Annotated[
    list[str] | None, Opt("--mode", help="fwd, bwd, fwd+bwd (comma list; default fwd+bwd).")
]
_MQ = MEMORY_QUICK  # what memory --quick selects, said from the defaults themselves
MemoryQuickOpt = Annotated[
    bool,
    Opt("--quick", help=f"The smaller sweep: N = {_MQ.cpu.dim}, {_MQ.cpu.batch} x "
        f"{_MQ.cpu.seq} rows on a CPU (N = {_MQ.gpu.dim}, {_MQ.gpu.batch} x {_MQ.gpu.seq} on a "
        "GPU) unless --dim, --batch or --seq is given."),
    After("device"),
]  # fmt: skip
# stability: its dtype shortcuts and inputs follow --dtype, its checks --seq.
Fp16Opt = Annotated[bool, Opt("--fp16", help="Shortcut for --dtype fp16 (combinable)."),
                    After("dtype")]  # fmt: skip
Bf16Opt = Annotated[bool, Opt("--bf16", help="Shortcut for --dtype bf16 (combinable)."),
                    After("dtype")]  # fmt: skip
Fp32Opt = Annotated[bool, Opt("--fp32", help="Shortcut for --dtype fp32 (combinable)."),
                    After("dtype")]  # fmt: skip
DistOpt = Annotated[
    list[str] | None, Opt("--dist", help="Input distributions, comma list (normbench list)."),
    After("dtype"),
]  # fmt: skip
SweepRangeOpt = Annotated[
    str | None,
    Opt("--sweep-range", help="Also scale unit-max inputs by 2^k for k in LO:HI, e.g. -24:16."),
    After("seq"),
]
FailOnOpt = Annotated[
    str | None, Opt("--fail-on", help="Exit 1 if any case reaches FAIL (or WARN)."), After("seq")
]
NoDeterminismOpt = Annotated[
    bool, Opt("--no-determinism", help="Skip the two-run bitwise check."), After("seq")
]
StabilityQuickOpt = Annotated[
    bool,
    Opt("--quick", help=f"The smaller sweep: N = {STABILITY_QUICK.cpu.dim.replace(',', ', ')} "
        "(not 8192) unless --dim is given; every dtype, input and backend as without it."),
    After("device"),
]  # fmt: skip
InputsOpt = Annotated[
    Path | None,
    Opt("--inputs", help="A `normbench capture` file: judge the implementations on its layers' "
        "tensors (in its dtype, fp16 and bf16) instead of the synthetic inputs."),
    After("dtype"),
]  # fmt: skip
# speed
ShapesFromOpt = Annotated[
    Path | None,
    Opt("--shapes-from", help="A `normbench capture` file: time the norms at its layers' shapes "
        "(rows x N, deduplicated; the layer names in the note)."),
    After("seq"),
]  # fmt: skip
# env
RefreshOpt = Annotated[bool, Opt("--refresh", help="Measure the copy bandwidth again.")]
JsonOpt = Annotated[bool, Opt("--json", help="Print JSON.")]
# report
RunFilesArg = Annotated[
    list[Path], typer.Argument(help="Saved runs (.json), from one machine or several.")
]
ReportOutOpt = Annotated[
    Path | None, Opt("--out", help="Folder for the files (default: beside the first run).")
]
ReportFormatOpt = Annotated[
    str, Opt("--format", help="csv,md,json,html,gab,gab-bigger,liger or none.")
]
# compare
BaseArg = Annotated[Path, typer.Argument(help="Baseline run (.json of normbench speed).")]
NewArg = Annotated[Path, typer.Argument(help="The run to judge against it.")]
CalibrationOpt = Annotated[
    Path | None,
    Opt("--calibration", help="A `normbench calibrate` run: never use a margin below its own."),
]
BootstrapSeedOpt = Annotated[int, Opt("--seed", help=f"Seed of the bootstrap, 0 to {SEED_MAX}.")]
BetweenRunsOpt = Annotated[
    str, Opt("--between-runs", help="auto: widen CIs by the run-to-run noise; off.")
]
# ab: its gate options follow --filter.
SideAOpt = Annotated[
    str,
    Opt("--a", help="Side A, the reference: a backend name or plugin:SPEC, then @PATH for "
        "another install (a checkout or a virtual environment)."),
]  # fmt: skip
SideBOpt = Annotated[
    str, Opt("--b", help="Side B, judged against A: as --a, e.g. eager or eager@../base.")
]
SideBackendOpt = Annotated[
    list[str] | None,
    Opt("--backend", help="With @PATH sides only: the backends to time from both "
        "installs (default: the speed suite's)."),
]  # fmt: skip
SideBudgetOpt = Annotated[
    float | None,
    Opt("--time-budget", help=f"Seconds of timing per case and side (default {DEFAULT_BUDGET:g}; "
        f"{QUICK_BUDGET:g} with --quick, which an explicit value overrides)."),
]  # fmt: skip
AbThresholdOpt = Annotated[ThresholdOpt, After("pattern")]
AbMdOpt = Annotated[MdOpt, After("pattern")]
ProcessesOpt = Annotated[
    int | None,
    Opt("--processes", help="With @PATH sides: worker processes per side (default 3). With 2 or "
        "more the CI is over processes, which each keep a speed of their own."),
]  # fmt: skip
# calibrate: its options follow --filter.
RepeatsOpt = Annotated[
    int,
    Opt("--repeats", help=f"How many times to measure each case, {REPEATS_MIN} to {REPEATS_MAX}."),
    After("pattern"),
]
InterleavedOpt = Annotated[
    bool, Opt("--interleaved", help="Calibrate `ab` (A/A interleaved) instead of runs."),
    After("pattern"),
]  # fmt: skip
# audit
ArchOpt = Annotated[str, Opt("--arch", help="Targets, e.g. sm_80,sm_90.")]
FailOnSpillOpt = Annotated[
    bool, Opt("--fail-on-spill", help="Exit 1 when any configuration spills.")
]
# diagnose
ProbesArg = Annotated[list[str] | None, typer.Argument(help="Probes to run (default: all).")]
DiagnoseQuickOpt = Annotated[bool, Opt("--quick", help="Smaller versions (about 90 s in all).")]
DepthsOpt = Annotated[
    str | None, Opt("--depths", help=f"Depths, e.g. 6,12,24 (each 1 to {DEPTH_MAX}).")
]
NormsOpt = Annotated[str | None, Opt("--norms", help="e.g. post-layernorm,pre-rmsnorm,none.")]
FigureOpt = Annotated[bool, Opt("--plot", help="Write a PNG per probe where it helps.")]

# The options of the groups, by field name, in the order --help lists them.
OPTIONS: dict[str, Any] = {
    "variant": VariantOpt, "backend": BackendOpt, "dtype": DtypeOpt, "dim": DimOpt,
    "batch": BatchOpt, "seq": SeqOpt, "mode": ModeOpt, "device": DeviceOpt,
    "threads": ThreadsOpt, "time_budget": BudgetOpt, "quick": QuickOpt,
    "cache": CacheOpt, "hot": HotOpt, "cuda_graph": CudaGraphOpt,
    "pattern": FilterOpt, "out": OutOpt, "fmt": FormatOpt, "columns": ColumnsOpt,
    "metrics": MetricsOpt,
    "plot": PlotOpt, "seed": SeedOpt,
    "plugin": PluginOpt, "no_weight": NoWeightOpt, "weight_dtype": WeightDtypeOpt,
    "rms_bias": RmsBiasOpt, "residual_dtype": ResidualDtypeOpt, "heads": HeadsOpt,
}  # fmt: skip
GROUPS = (SelectionArgs, TimingArgs, OutputArgs)


@dataclass(frozen=True, init=False)
class Without:
    """On a group parameter: leave these of its options out (their fields keep the default)."""

    names: tuple[str, ...]

    def __init__(self, *names: str) -> None:
        object.__setattr__(self, "names", names)


def _split(annotation: Any) -> tuple[Any, list[Any]]:
    """Annotated[T, *meta] -> (T, meta); anything else -> (it, [])."""
    if get_origin(annotation) is Annotated:
        base, *meta = get_args(annotation)
        return base, meta
    return annotation, []


def _param(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)  # fmt: skip


def grouped(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Expand the group parameters of `fn` into their options (see the module docstring)."""
    groups: dict[str, tuple[type, list[str]]] = {}
    own: list[inspect.Parameter] = []
    head: list[inspect.Parameter] = []  # own options written before the first group
    for p in inspect.signature(fn, eval_str=True).parameters.values():
        base, meta = _split(p.annotation)
        if base in GROUPS:
            left_out = {n for m in meta if isinstance(m, Without) for n in m.names}
            groups[p.name] = (base, [f.name for f in fields(base) if f.name not in left_out])
        else:
            (own if groups else head).append(p)
    shared = {name for _, names in groups.values() for name in names}
    replaced = {p.name: p for p in head + own if p.name in shared}
    after: dict[str, list[inspect.Parameter]] = {}
    tail = []
    for p in own:
        if p.name in replaced:
            continue
        base, meta = _split(p.annotation)
        anchor = next((m.name for m in meta if isinstance(m, After)), None)
        kept = [m for m in meta if not isinstance(m, After)]
        p = p.replace(annotation=Annotated[(base, *kept)] if kept else base)
        (after.setdefault(anchor, []) if anchor else tail).append(p)
    defaults = {f.name: f.default for cls, _ in groups.values() for f in fields(cls)}
    params = [p for p in head if p.name not in replaced]
    for name in sorted(shared, key=list(OPTIONS).index):
        params.append(replaced.get(name) or _param(name, OPTIONS[name], defaults[name]))
        params += after.pop(name, [])  # in the written order
    if after:
        raise TypeError(f"{fn.__name__}: After({', '.join(after)}) names no option it has")
    params += tail
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> Any:
        values = dict(kwargs)
        for group, (cls, names) in groups.items():
            # An option left out of a direct call (typer passes them all) keeps its default.
            kwargs[group] = cls(**{n: values[n] for n in names if n in values})
        # A command's own option that replaces a shared one reaches both the group and the
        # command's own parameter; the other shared options reach only their group.
        for name in shared - set(replaced):
            kwargs.pop(name, None)
        return fn(**kwargs)

    wrapper.__signature__ = inspect.Signature(params)  # what typer reads
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper
