"""The command line: a thin shell that parses options into config objects and calls one library
function per command. Errors that carry an exit code print one sentence, never a traceback
(`--debug` shows it)."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="normbench",
    help="Speed, memory and numerical-stability benchmarks for normalization layers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

STATE = {"debug": False}

# Defaults that finish in about a minute on 2 CPU cores, and a fuller sweep on a GPU.
CPU_DEFAULTS = {"dtype": "fp32", "dim": "1024,4096", "batch": "4", "seq": "512"}
GPU_DEFAULTS = {"dtype": "bf16", "dim": "1024,2048,4096,8192", "batch": "8", "seq": "2048"}


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"normbench: {message}", err=True)
    raise typer.Exit(code)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn normbench's errors into one sentence and their exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from normbench.errors import NormbenchError

        try:
            return fn(*args, **kwargs)
        except NormbenchError as exc:
            if STATE["debug"]:
                raise
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)

    return wrapper


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    STATE["debug"] = debug
    from normbench.env import prepare_cpu_memory

    prepare_cpu_memory()  # before any command imports torch


Opt = typer.Option
ThreadsOpt = Annotated[int | None, Opt("--threads", help="CPU threads (default: torch's).")]
BudgetOpt = Annotated[float, Opt("--time-budget", help="Seconds of timing per case.")]
QuickOpt = Annotated[bool, Opt("--quick", help="Fewer samples, looser CI target.")]
HotOpt = Annotated[bool, Opt("--hot", help="CUDA: no L2 flush between samples.")]
VariantOpt = Annotated[list[str] | None, Opt("--variant", "-v", help="Variants, comma list.")]
BackendOpt = Annotated[list[str] | None, Opt("--backend", "-b", help="Backends, comma list.")]
DtypeOpt = Annotated[list[str] | None, Opt("--dtype", help="fp32, fp16, bf16 (comma list).")]
DimOpt = Annotated[list[str] | None, Opt("--dim", "-n", help="Hidden sizes N, comma list.")]
BatchOpt = Annotated[list[str] | None, Opt("--batch", help="Batch sizes (rows = batch x seq).")]
SeqOpt = Annotated[list[str] | None, Opt("--seq", help="Sequence lengths.")]
ModeOpt = Annotated[list[str] | None, Opt("--mode", help="fwd, bwd, fwd+bwd (comma list).")]
DeviceOpt = Annotated[str, Opt("--device", help="auto, cpu, cuda or cuda:N.")]
FilterOpt = Annotated[
    str | None, Opt("--filter", help="Regex on case ids, e.g. 'rmsnorm/.*/bf16'.")
]
OutOpt = Annotated[Path, Opt("--out", help="Folder for the reports.")]
FormatOpt = Annotated[str, Opt("--format", help="Report formats: csv,md,json,html or none.")]
PlotOpt = Annotated[
    bool, Opt("--plot", help="Also write PNG plots beside the reports (the Markdown links them).")
]
PluginOpt = Annotated[
    list[str] | None, Opt("--plugin", help="pkg.module:object or path/to/file.py (repeatable).")
]
SeedOpt = Annotated[int, Opt("--seed", help="Seed of every input.")]
# The layer options (normbench.options): what a model's norm layer holds beyond its variant.
NoWeightOpt = Annotated[
    bool, Opt("--no-weight", help="No weight and no bias (elementwise_affine=False).")
]
WeightDtypeOpt = Annotated[
    str | None, Opt("--weight-dtype", help="Weight (and bias) dtype apart from x's: fp32, bf16.")
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


def load_plugin_options(plugin: list[str] | None) -> list[str]:
    """Load the --plugin specs (before a selection is validated, so their names are accepted in
    --backend); the names of the backends they added."""
    if not plugin:
        return []
    from normbench.plugins import load_plugins

    return [b.name for b in load_plugins(plugin)]


def layer_options(no_weight, weight_dtype, rms_bias, residual_dtype, heads) -> dict:
    """The layer options of speed, memory and stability as Selection keyword arguments."""
    from normbench.config import parse_ints
    from normbench.options import NormOptions

    options = NormOptions(
        affine=not no_weight, weight_dtype=weight_dtype, bias=rms_bias,
        residual_dtype=residual_dtype,
    )  # fmt: skip
    return {"options": options, "heads": tuple(parse_ints(heads, "--heads") or [1])}


def selection(
    variant, backend, dtype, dim, batch, seq, mode, device, pattern, seed, *, defaults=None,
    plugins=None, layer=None,
):  # fmt: skip
    """Options -> Selection, with device-dependent defaults. `plugins` (the --plugin specs) are
    loaded first, and their backends join the default --backend list; `layer`, the
    `layer_options` of the command."""
    from normbench.config import Selection, check_device_dtypes, check_fits, parse_ints, split
    from normbench.dtypes import canonical
    from normbench.env import resolve_device
    from normbench.registry import DEFAULT_BACKENDS

    added = load_plugin_options(plugins)
    dev = resolve_device(device)
    d = dict(GPU_DEFAULTS if dev.startswith("cuda") else CPU_DEFAULTS)
    d.update(defaults or {})
    default_backends = split(d.get("backend", ",".join(DEFAULT_BACKENDS)))
    default_backends += [n for n in added if n not in default_backends]
    sel = Selection(
        variants=tuple(split(variant) or split(d.get("variant", "layernorm,rmsnorm"))),
        backends=tuple(split(backend) or default_backends),
        dtypes=tuple(canonical(x) for x in (split(dtype) or split(d["dtype"]))),
        dims=tuple(parse_ints(dim, "--dim") or parse_ints(d["dim"], "--dim")),
        batches=tuple(parse_ints(batch, "--batch") or parse_ints(d["batch"], "--batch")),
        seqs=tuple(parse_ints(seq, "--seq") or parse_ints(d["seq"], "--seq")),
        modes=tuple(split(mode) or split(d.get("mode", "fwd"))),
        device=dev,
        pattern=pattern,
        seed=seed,
        **(layer or {}),
    )
    check_device_dtypes(dev, sel.dtypes)
    check_fits(sel)
    return sel


def progress_bar(description: str):
    """A rich progress bar and the callback the library calls: (done, total, label)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]" + description),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[label]}"),
        transient=True,
    )
    task = bar.add_task(description, total=None, label="")

    def update(done: int, total: int, label: str) -> None:
        bar.update(task, completed=done, total=total, label=label)

    return bar, update


def finish(
    run, out: Path, formats: tuple[str, ...], plot: bool = False, stem: str | None = None
) -> None:
    """Print the tables, write the reports (and with `plot` the PNGs, written first so the
    Markdown and HTML can link and embed them) and say where they are."""
    from normbench.report import console, write_reports

    con = console.make_console()
    console.render(run, con)
    paths = write_reports(run, out, formats, stem=stem, plots=plot)
    if paths:
        con.print("Reports: " + ", ".join(str(p) for p in paths.values()))


def timing_config(sel, threads, time_budget, quick, hot, out, formats, **kw):
    """The timing options of speed, ab and calibrate as one SpeedConfig (--quick caps the
    budget at 0.3 s per case)."""
    import torch

    from normbench.config import SpeedConfig

    return SpeedConfig(
        selection=sel,
        threads=threads or torch.get_num_threads(),
        time_budget=min(time_budget, 0.3) if quick else time_budget,
        quick=quick,
        hot=hot,
        out=out,
        formats=formats,
        **kw,
    )


@app.command()
@guarded
def speed(
    variant: VariantOpt = None,
    backend: BackendOpt = None,
    dtype: DtypeOpt = None,
    dim: DimOpt = None,
    batch: BatchOpt = None,
    seq: SeqOpt = None,
    mode: ModeOpt = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    time_budget: BudgetOpt = 1.0,
    quick: QuickOpt = False,
    hot: HotOpt = False,
    memory: Annotated[
        bool, Opt("--memory", help="Also measure saved-for-backward and peak memory per case.")
    ] = False,
    pattern: FilterOpt = None,
    out: OutOpt = Path("reports"),
    fmt: FormatOpt = "csv,md,json",
    plot: PlotOpt = False,
    seed: SeedOpt = 0,
    plugin: PluginOpt = None,
    no_weight: NoWeightOpt = False,
    weight_dtype: WeightDtypeOpt = None,
    rms_bias: RmsBiasOpt = False,
    residual_dtype: ResidualDtypeOpt = None,
    heads: HeadsOpt = None,
    baseline: Annotated[
        Path | None,
        Opt("--baseline", help="Compare with this saved run and exit 1 on a regression."),
    ] = None,
    threshold: ThresholdOpt = "5%",
    md: MdOpt = None,
    force: ForceOpt = False,
) -> None:
    """Time each implementation (gated first against fp64): median, CI, GB/s, % of copy bandwidth.

    With no options, a sweep that takes about a minute on 2 CPU cores and answers whether
    RMSNorm is faster than LayerNorm here, per backend.
    """

    from normbench.report import parse_formats
    from normbench.suites.speed import run_speed

    formats = parse_formats(fmt)
    layer = layer_options(no_weight, weight_dtype, rms_bias, residual_dtype, heads)
    sel = selection(
        variant, backend, dtype, dim, batch, seq, mode, device, pattern, seed, plugins=plugin,
        layer=layer,
    )  # fmt: skip
    config = timing_config(
        sel, threads, time_budget, quick, hot, out, formats,
        memory=memory,
        plot=plot,
        extra={"plugins": list(plugin)} if plugin else {},
    )  # fmt: skip
    base = gate_baseline(baseline, sel.device, config.threads, force)  # before measuring
    margin = parse_threshold_option(threshold)
    bar, update = progress_bar("speed")
    with bar:
        run = run_speed(config, update, debug=STATE["debug"])
    finish(run, out, formats, plot)
    if run.interrupted:
        raise typer.Exit(130)
    if base is not None:
        from normbench.compare import CompareConfig, compare_runs

        names = (f"baseline {baseline.name}", "this run")
        cmp = compare_runs(base, run, CompareConfig(threshold=margin, force=force), names)
        cmp.config["base"]["path"] = str(baseline)
        gate_finish(cmp, out, formats, md, plot=plot)


@app.command()
@guarded
def memory(
    variant: VariantOpt = None,
    backend: BackendOpt = None,
    dtype: DtypeOpt = None,
    dim: DimOpt = None,
    batch: BatchOpt = None,
    seq: SeqOpt = None,
    mode: Annotated[
        list[str] | None, Opt("--mode", help="fwd, bwd, fwd+bwd (comma list; default fwd+bwd).")
    ] = None,
    device: DeviceOpt = "auto",
    pattern: FilterOpt = None,
    out: OutOpt = Path("reports"),
    fmt: FormatOpt = "csv,md,json",
    plot: PlotOpt = False,
    seed: SeedOpt = 0,
    plugin: PluginOpt = None,
    no_weight: NoWeightOpt = False,
    weight_dtype: WeightDtypeOpt = None,
    rms_bias: RmsBiasOpt = False,
    residual_dtype: ResidualDtypeOpt = None,
    heads: HeadsOpt = None,
) -> None:
    """What each implementation saves for backward and its peak extra memory, against the ideal
    (x plus fp32 statistics per row), after the same fp64 correctness gate as speed.

    Saved bytes come from autograd's saved-tensor hooks (exact on any device); peaks from the
    CUDA caching allocator or, on CPU, the profiler's allocation events.
    """
    from normbench.report import parse_formats
    from normbench.suites.memory import MemoryConfig, run_memory

    formats = parse_formats(fmt)
    sel = selection(
        variant, backend, dtype, dim, batch, seq, mode, device, pattern, seed,
        defaults={"mode": "fwd+bwd"}, plugins=plugin,
        layer=layer_options(no_weight, weight_dtype, rms_bias, residual_dtype, heads),
    )  # fmt: skip
    config = MemoryConfig(
        selection=sel,
        out=out,
        formats=formats,
        plot=plot,
        extra={"plugins": list(plugin)} if plugin else {},
    )
    bar, update = progress_bar("memory")
    with bar:
        run = run_memory(config, update, debug=STATE["debug"])
    finish(run, out, formats, plot)
    if run.interrupted:
        raise typer.Exit(130)


STABILITY_BACKENDS = "eager,composite,triton,triton-llama,gemma,triton-gemma"
STABILITY_CPU = {"dim": "1000,4096,8192", "batch": "1", "seq": "4",
                 "backend": STABILITY_BACKENDS}  # fmt: skip
STABILITY_GPU = {"dim": "1000,4096,8192", "batch": "4", "seq": "1024",
                 "backend": STABILITY_BACKENDS}  # fmt: skip


@app.command()
@guarded
def stability(
    variant: VariantOpt = None,
    backend: BackendOpt = None,
    dtype: DtypeOpt = None,
    fp16: Annotated[bool, Opt("--fp16", help="Shortcut for --dtype fp16 (combinable).")] = False,
    bf16: Annotated[bool, Opt("--bf16", help="Shortcut for --dtype bf16 (combinable).")] = False,
    fp32: Annotated[bool, Opt("--fp32", help="Shortcut for --dtype fp32 (combinable).")] = False,
    dist: Annotated[
        list[str] | None, Opt("--dist", help="Input distributions, comma list (normbench list).")
    ] = None,
    dim: DimOpt = None,
    batch: BatchOpt = None,
    seq: SeqOpt = None,
    sweep_range: Annotated[
        str | None,
        Opt("--sweep-range", help="Also scale unit-max inputs by 2^k for k in LO:HI, e.g. -24:16."),
    ] = None,
    fail_on: Annotated[
        str | None, Opt("--fail-on", help="Exit 1 if any case reaches FAIL (or WARN).")
    ] = None,
    no_determinism: Annotated[
        bool, Opt("--no-determinism", help="Skip the two-run bitwise check.")
    ] = False,
    device: DeviceOpt = "auto",
    pattern: FilterOpt = None,
    out: OutOpt = Path("reports"),
    fmt: FormatOpt = "csv,md,json",
    plot: PlotOpt = False,
    seed: SeedOpt = 0,
    plugin: PluginOpt = None,
    no_weight: NoWeightOpt = False,
    weight_dtype: WeightDtypeOpt = None,
    rms_bias: RmsBiasOpt = False,
    residual_dtype: ResidualDtypeOpt = None,
    heads: HeadsOpt = None,
) -> None:
    """Numerics against an fp64 oracle on adversarial inputs: PASS / WARN / FAIL with a reason.

    Each implementation is compared, forward and backward, with the reference of the semantics
    it declares, on inputs real models produce (normbench list shows them). With no options:
    fp16, bf16 and fp32, N = 1000, 4096, 8192, eager, composite, triton and its Llama- and
    Gemma-style siblings, gemma; `--fp16` alone took 11 s on 2 CPU cores. Layer options (no
    weight, weight and residual dtypes, RMSNorm bias, QK-norm heads) as in speed.
    """
    from normbench.config import StabilityConfig, parse_sweep_range, split
    from normbench.env import resolve_device
    from normbench.report import parse_formats
    from normbench.suites.stability import default_dists, failed, run_stability

    formats = parse_formats(fmt)
    flags = [name for name, on in (("fp16", fp16), ("bf16", bf16), ("fp32", fp32)) if on]
    dtypes = split(dtype) + [f for f in flags if f not in split(dtype)]
    defaults = dict(STABILITY_GPU if resolve_device(device).startswith("cuda") else STABILITY_CPU)
    defaults.update(dtype="fp16,bf16,fp32", mode="fwd+bwd")
    sel = selection(
        variant, backend, dtypes or None, dim, batch, seq, None, device, pattern, seed,
        defaults=defaults, plugins=plugin,
        layer=layer_options(no_weight, weight_dtype, rms_bias, residual_dtype, heads),
    )  # fmt: skip
    config = StabilityConfig(
        selection=sel,
        dists=tuple(split(dist)) or default_dists(),
        sweep=parse_sweep_range(sweep_range) if sweep_range is not None else (),
        determinism=not no_determinism,
        fail_on=fail_on.upper() if fail_on else None,
        out=out,
        formats=formats,
    )
    bar, update = progress_bar("stability")
    with bar:
        run = run_stability(config, update, debug=STATE["debug"])
    finish(run, out, formats, plot)
    if run.interrupted:
        raise typer.Exit(130)
    if config.fail_on and failed(run, config.fail_on):
        raise typer.Exit(1)


@app.command("env")
@guarded
def env_cmd(
    device: DeviceOpt = "auto",
    refresh: Annotated[bool, Opt("--refresh", help="Measure the copy bandwidth again.")] = False,
    as_json: Annotated[bool, Opt("--json", help="Print JSON.")] = False,
) -> None:
    """Device, CPU, threads, versions, NVML readings and the measured copy bandwidth."""
    import json

    import torch
    from rich.console import Console
    from rich.table import Table

    from normbench.env import resolve_device, timing_env

    dev = resolve_device(device)
    info = timing_env(dev, torch.get_num_threads(), refresh=refresh)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    table = Table(title="normbench env", show_header=False)
    for k, v in info.items():
        table.add_row(k, str(v))
    Console().print(table)


@app.command("list")
@guarded
def list_cmd(plugin: PluginOpt = None) -> None:
    """Variants, backends (available or not, and why) and their declared semantics."""
    from rich.console import Console
    from rich.table import Table

    from normbench.registry import backends
    from normbench.variants import VARIANTS

    load_plugin_options(plugin)
    con = Console()
    t = Table(title="variants")
    for c in ("variant", "arguments", "description"):
        t.add_column(c)
    for v in VARIANTS.values():
        t.add_row(v.name, ", ".join(v.tensor_args), v.description)
    con.print(t)
    t = Table(title="backends")
    for c in ("backend", "from", "status", "variants", "semantics", "description"):
        t.add_column(c, overflow="fold")
    for b in backends().values():
        reason = b.available()
        status = "[green]available[/green]" if not reason else f"[red]unavailable[/red]: {reason}"
        blocker = b.timing_blocker("cpu") if not reason else None
        if blocker:
            status += f" [dim](on CPU: {blocker})[/dim]"
        t.add_row(
            b.name,
            b.origin,
            status,
            ", ".join(b.variants) or "all",
            b.default_semantics.describe(),
            b.describe(),
        )
    con.print(t)
    from rich.markup import escape

    from normbench.inputs import DISTRIBUTIONS

    t = Table(title="input distributions (normbench stability --dist)")
    for c in ("input", "description", "what it breaks"):
        t.add_column(c, overflow="fold")
    for d in DISTRIBUTIONS.values():
        trap = d.trap + (f" ({', '.join(d.trap_dtypes)})" if d.trap and d.trap_dtypes else "")
        name = d.name + ("" if d.default else " [dim](sweep)[/dim]")
        t.add_row(name, escape(d.description), escape(trap))  # E[x^2] is not markup
    con.print(t)


@app.command("report")
@guarded
def report_cmd(
    files: Annotated[
        list[Path], typer.Argument(help="Saved runs (.json), from one machine or several.")
    ],
    plot: PlotOpt = False,
    out: Annotated[
        Path | None, Opt("--out", help="Folder for the files (default: beside the first run).")
    ] = None,
    fmt: Annotated[str, Opt("--format", help="csv,md,json,html or none.")] = "md,html",
) -> None:
    """Re-render saved runs without measuring again: the console table, Markdown, CSV, an HTML
    page to read top to bottom and, with --plot, the plots.

    Several files are merged (rows keyed by case and device; a device column appears when there
    is more than one); runs of different suites are rendered one after the other. A file that is
    missing, corrupt or not a normbench run is refused with exit 2.
    """
    import time

    from normbench.report import parse_formats
    from normbench.report.merge import merge, read_runs

    formats = parse_formats(fmt)
    runs = read_runs(files)
    merged = merge(runs, [str(f) for f in files])
    folder = out if out is not None else files[0].parent
    for run in merged:
        if len(files) == 1:
            stem = f"{files[0].stem}-report"
        else:
            stem = f"{run.suite}-merged-{time.strftime('%Y%m%d-%H%M%S')}"
        finish(run, folder, formats, plot, stem=stem)


# --- the regression gate: compare, speed --baseline, ab, calibrate -------------------------------


def parse_threshold_option(text: str) -> float:
    from normbench.compare import parse_threshold

    return parse_threshold(text)


def gate_baseline(path: Path | None, device: str, threads: int, force: bool):
    """Read the baseline and check its fingerprint before anything is measured (exit 3)."""
    if path is None:
        return None
    from normbench.compare import check_compatible, load_baseline
    from normbench.env import fingerprint

    base = load_baseline(path)
    check_compatible(base.env, fingerprint(device, threads), force, f"baseline {path}")
    return base


def gate_finish(
    cmp, out: Path, formats: tuple[str, ...], md: Path | None, stem=None, plot: bool = False
) -> None:
    """Print and write the comparison, append the Markdown summary, exit 1 on a regression."""
    from normbench.compare import exit_code
    from normbench.report.compare_view import append_markdown

    finish(cmp, out, formats, plot, stem=stem)
    if md is not None:
        try:
            append_markdown(cmp, md)
        except OSError as exc:
            fail(f"--md {md}: cannot write ({exc.strerror})")
    code = exit_code(cmp)
    if code:
        raise typer.Exit(code)


CalibrationOpt = Annotated[
    Path | None,
    Opt("--calibration", help="A `normbench calibrate` run: never use a margin below its own."),
]


@app.command()
@guarded
def compare(
    base: Annotated[Path, typer.Argument(help="Baseline run (.json of normbench speed).")],
    new: Annotated[Path, typer.Argument(help="The run to judge against it.")],
    threshold: ThresholdOpt = "5%",
    md: MdOpt = None,
    force: ForceOpt = False,
    calibration: CalibrationOpt = None,
    out: OutOpt = Path("reports"),
    fmt: FormatOpt = "md,json",
    plot: PlotOpt = False,
    seed: Annotated[int, Opt("--seed", help="Seed of the bootstrap.")] = 0,
    between_runs: Annotated[
        str, Opt("--between-runs", help="auto: widen CIs by the run-to-run noise; off.")
    ] = "auto",
) -> None:
    """Regression gate: per case, ratio of medians NEW/BASE with a bootstrap 95% CI; verdict
    regression / improvement / same / inconclusive against the margin, Holm-corrected.

    Exit 0: no confirmed regression; 1: a confirmed regression (or a case that ran in the
    baseline now fails its correctness gate); 2: usage; 3: baseline missing, corrupt or from a
    different device, driver, torch, triton or thread count (--force compares anyway).
    """
    from normbench.compare import CompareConfig, compare_files, load_calibration
    from normbench.report import parse_formats

    formats = parse_formats(fmt)
    config = CompareConfig(
        threshold=parse_threshold_option(threshold),
        force=force,
        seed=seed,
        calibrated_margin=load_calibration(calibration) if calibration else None,
        between_runs=between_runs,
    )
    gate_finish(compare_files(base, new, config), out, formats, md, plot=plot)


@app.command()
@guarded
def ab(
    a: Annotated[
        str,
        Opt(
            "--a",
            help="Side A, the reference: a backend name or plugin:SPEC, then @PATH for "
            "another install (a checkout or a virtual environment).",
        ),
    ],
    b: Annotated[
        str, Opt("--b", help="Side B, judged against A: as --a, e.g. eager or eager@../base.")
    ],
    variant: VariantOpt = None,
    backend: Annotated[
        list[str] | None,
        Opt(
            "--backend",
            help="With @PATH sides only: the backends to time from both "
            "installs (default: the speed suite's).",
        ),
    ] = None,
    dtype: DtypeOpt = None,
    dim: DimOpt = None,
    batch: BatchOpt = None,
    seq: SeqOpt = None,
    mode: ModeOpt = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    time_budget: Annotated[
        float, Opt("--time-budget", help="Seconds of timing per case and side.")
    ] = 1.0,
    quick: QuickOpt = False,
    hot: HotOpt = False,
    pattern: FilterOpt = None,
    threshold: ThresholdOpt = "5%",
    md: MdOpt = None,
    out: OutOpt = Path("reports"),
    fmt: FormatOpt = "md,json",
    plot: PlotOpt = False,
    seed: SeedOpt = 0,
    plugin: PluginOpt = None,
    processes: Annotated[
        int | None,
        Opt(
            "--processes",
            help="With @PATH sides: worker processes per side (default 3). With 2 or more the "
            "CI is over processes, which each keep a speed of their own.",
        ),
    ] = None,
) -> None:
    """Same-job A/B: time A and B interleaved, block by block, in one process (machine drift
    lands on both sides), then judge B against A with compare's verdicts. Exit 1 when B is
    confirmed slower."""
    import time

    from normbench.compare import CompareConfig
    from normbench.errors import UsageError
    from normbench.plugins import absolute_plugin
    from normbench.report import parse_formats, write_reports
    from normbench.suites.ab import ABConfig, resolve_side, run_ab
    from normbench.worker import locate, split_spec

    formats = parse_formats(fmt)
    load_plugin_options(plugin)
    (spec_a, at_a), (spec_b, at_b) = split_spec(a), split_spec(b)
    installs = (at_a and locate(at_a, "--a"), at_b and locate(at_b, "--b"))
    if bool(spec_a) != bool(spec_b) or (backend and (spec_a or spec_b)):
        raise UsageError(
            "either name a backend on both sides (--a eager@../base --b eager) or on neither "
            "(--a @../base --b @. times every --backend from both installs)"
        )
    if any(installs):  # the workers resolve the specs, each in its own install
        name_a, name_b = spec_a, spec_b
        # The cases only: a named side's case ids carry its own backend.
        local = backend or (["eager"] if spec_a else None)
    elif not spec_a:
        raise UsageError("--a @PATH / --b @PATH need a path on at least one side")
    else:
        name_a, name_b = resolve_side(a, "--a"), resolve_side(b, "--b")
        local = [name_a]
    sel = selection(variant, local, dtype, dim, batch, seq, mode, device, pattern, seed)
    speed_config = timing_config(sel, threads, time_budget, quick, hot, out, formats)
    cmp = CompareConfig(threshold=parse_threshold_option(threshold))
    plugins = tuple(absolute_plugin(p) for p in plugin or ())
    config = ABConfig(speed_config, name_a, name_b, cmp, specs=(a, b), installs=installs,
                      plugins=plugins, processes=processes)  # fmt: skip
    bar, update = progress_bar(f"ab {a} vs {b}")
    with bar:
        result = run_ab(config, update, debug=STATE["debug"])
    if result.comparison.interrupted or result.a.interrupted:
        result.comparison.summary.append("Interrupted: the verdicts cover the finished cases.")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if "json" in formats:  # both sides, re-comparable later with `normbench compare`
        for side, run in (("A", result.a), ("B", result.b)):
            write_reports(run, out, ("json",), stem=f"ab-{stamp}-{side}")
    gate_finish(result.comparison, out, formats, md, stem=f"ab-{stamp}", plot=plot)


@app.command()
@guarded
def calibrate(
    variant: VariantOpt = None,
    backend: BackendOpt = None,
    dtype: DtypeOpt = None,
    dim: DimOpt = None,
    batch: BatchOpt = None,
    seq: SeqOpt = None,
    mode: ModeOpt = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    time_budget: BudgetOpt = 1.0,
    quick: QuickOpt = False,
    hot: HotOpt = False,
    pattern: FilterOpt = None,
    repeats: Annotated[int, Opt("--repeats", help="How many times to measure each case.")] = 5,
    interleaved: Annotated[
        bool, Opt("--interleaved", help="Calibrate `ab` (A/A interleaved) instead of runs.")
    ] = False,
    out: OutOpt = Path("reports"),
    fmt: FormatOpt = "md,json",
    seed: SeedOpt = 0,
    plugin: PluginOpt = None,
) -> None:
    """A/A noise: measure the selected cases --repeats times, compare every pair as `compare`
    would, and report the noise floor and the smallest margin with under 1% false alarms
    (pass the JSON to `compare --calibration`)."""

    from normbench.report import parse_formats
    from normbench.suites.calibrate import CalibrateConfig, run_calibrate

    formats = parse_formats(fmt)
    sel = selection(
        variant, backend, dtype, dim, batch, seq, mode, device, pattern, seed, plugins=plugin
    )
    speed_config = timing_config(sel, threads, time_budget, quick, hot, out, formats)
    config = CalibrateConfig(speed_config, repeats=repeats, interleaved=interleaved)
    bar, update = progress_bar("calibrate")
    with bar:
        run = run_calibrate(config, update, debug=STATE["debug"])
    finish(run, out, formats)


@app.command()
@guarded
def audit(
    arch: Annotated[str, Opt("--arch", help="Targets, e.g. sm_80,sm_90.")] = "sm_80,sm_90",
    dtype: DtypeOpt = None,
    dim: DimOpt = None,
    fail_on_spill: Annotated[
        bool, Opt("--fail-on-spill", help="Exit 1 when any configuration spills.")
    ] = False,
    out: OutOpt = Path("reports"),
    fmt: FormatOpt = "csv,md,json",
) -> None:
    """Compile every Triton kernel configuration for a GPU you may not have: registers, spills,
    shared memory, global load/store width, occupancy."""
    from normbench.config import parse_ints, split
    from normbench.dtypes import canonical
    from normbench.env import fingerprint
    from normbench.report import parse_formats
    from normbench.report.audit_view import SUITE, audit_rows, spills
    from normbench.results import Run
    from normbench.suites.audit import run_audit

    formats = parse_formats(fmt)
    archs = split(arch)
    dtypes = [canonical(d) for d in split(dtype)] or ["fp32", "fp16", "bf16"]
    dims = parse_ints(dim, "--dim") or None
    bar, update = progress_bar("audit")
    count = {"n": 0}

    def say(message: str) -> None:
        count["n"] += 1
        update(count["n"], 0, message[:80])

    try:
        with bar:
            rows = run_audit(archs, dtypes, dims, progress=say)
    except ValueError as exc:
        fail(str(exc))
    config = {"archs": archs, "dtypes": dtypes, "dims": dims}
    run = Run(SUITE, fingerprint("cpu"), config, audit_rows(rows))
    spilled = spills(run)
    errors = sum(1 for r in rows if r.status != "ok")
    narrow = sum(1 for r in rows if r.status == "ok" and not r.vector16)
    run.summary.append(
        f"{len(rows)} configurations: {len(spilled)} spill, {narrow} not 16-byte wide, "
        f"{errors} failed to compile."
    )
    finish(run, out, formats)
    if fail_on_spill and spilled:
        raise typer.Exit(1)


@app.command()
@guarded
def diagnose(
    probes: Annotated[
        list[str] | None, typer.Argument(help="Probes to run (default: all).")
    ] = None,
    quick: Annotated[bool, Opt("--quick", help="Smaller versions (about 90 s in all).")] = False,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    depths: Annotated[str | None, Opt("--depths", help="Depths, e.g. 6,12,24.")] = None,
    norms: Annotated[
        str | None, Opt("--norms", help="e.g. post-layernorm,pre-rmsnorm,none.")
    ] = None,
    out: OutOpt = Path("reports"),
    fmt: FormatOpt = "csv,md,json",
    plot: Annotated[bool, Opt("--plot", help="Write a PNG per probe where it helps.")] = False,
) -> None:
    """The folk claims about normalization, measured: a verdict per claim with its numbers."""
    import tempfile

    from normbench.config import parse_ints, split
    from normbench.env import fingerprint, resolve_device
    from normbench.report import parse_formats
    from normbench.report.diagnose_view import SUITE, diagnose_rows
    from normbench.results import Run
    from normbench.suites.diagnose import run_diagnose

    formats = parse_formats(fmt)
    dev = resolve_device(device)
    plot_dir = Path(out) if plot else None
    if plot_dir is not None:
        plot_dir.mkdir(parents=True, exist_ok=True)
        plot_dir = Path(tempfile.mkdtemp(prefix="diagnose-", dir=plot_dir))
    bar, update = progress_bar("diagnose")
    config = {"probes": probes, "quick": quick, "seed": seed, "depths": depths, "norms": norms}
    try:
        with bar:
            results = run_diagnose(
                [p for p in split(probes)] or None,
                quick=quick,
                seed=seed,
                device=dev,
                depths=parse_ints(depths, "--depths") or None,
                norms=split(norms) or None,
                plot_dir=plot_dir,
                progress=lambda label, frac: update(int(frac * 1000), 1000, label[:80]),
            )
    except ValueError as exc:
        fail(str(exc))
    run = Run(SUITE, fingerprint(dev), config, diagnose_rows(results))
    for r in results:
        if r.figure is not None:
            run.summary.append(f"{r.probe}: figure {r.figure}")
    finish(run, out, formats)


def main() -> None:
    # Quiet the TorchScript deprecation and Inductor chatter that would land in the tables.
    os.environ.setdefault("TORCHINDUCTOR_LOG_LEVEL", "ERROR")
    app(prog_name="normbench")


if __name__ == "__main__":
    sys.exit(main())
