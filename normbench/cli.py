"""The command line: a thin shell. Each command turns its options into a config, runs one suite
(normbench.suites.get_suite), renders and writes the run and exits with the suite's code. The
options are declared once (normbench.cli_options), the defaults live in the configs
(normbench.config). Errors that carry an exit code print one sentence, never a traceback
(`--debug` shows it). Over 400 lines, as the one table of contents of the commands: each is a
signature of options and a few calls into the library, and spreading them over files would
only scatter that table."""

from __future__ import annotations

import os
import sys
from typing import Annotated

from normbench import cli_capture_options as co
from normbench import cli_options as o
from normbench.cli_help import App
from normbench.cli_options import Without, grouped
from normbench.cli_render import chosen_columns
from normbench.cli_run import CASE_LOOP, STATE, fail, gate_finish, guarded, measure, run_suite
from normbench.config import DEFAULT_THRESHOLD
from normbench.config_args import LAYER_OPTIONS, OutputArgs, SelectionArgs, TimingArgs
from normbench.formats import GATE_FORMATS, RERENDER_FORMATS
from normbench.outdir import check_md, prepare_reports
from normbench.suites.audit import ARCHS
from normbench.suites.calibrate import REPEATS as CALIBRATE_REPEATS

# App: typer.Typer whose --help shows a flag without a `<bool>` type (normbench.cli_help).
# Completion: typer's --install-completion / --show-completion for bash, zsh, fish, PowerShell.
app = App(
    name="normbench",
    help="Speed, memory and numerical-stability benchmarks for normalization layers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


@app.callback()
def main_options(debug: o.DebugOpt = False, version: o.VersionOpt = False) -> None:
    STATE["debug"] = debug
    from normbench.env import prepare_cpu_memory

    prepare_cpu_memory()  # before any command imports torch


@app.command()
@guarded
@grouped
def speed(
    sel: SelectionArgs,
    timing: TimingArgs,
    output: OutputArgs,
    memory: o.MemoryOpt = False,
    baseline: o.BaselineOpt = None,
    threshold: o.ThresholdOpt = DEFAULT_THRESHOLD,
    md: o.MdOpt = None,
    force: o.ForceOpt = False,
    shapes_from: o.ShapesFromOpt = None,
) -> None:
    """Time each implementation (gated first against fp64): median, CI, GB/s, % of copy bandwidth.

    With no options, a sweep that takes under a minute on 2 CPU cores and answers whether
    RMSNorm is faster than LayerNorm here, per backend. `--shapes-from FILE` times a captured
    model's own shapes (docs/capture.md).
    """
    from normbench.baseline import (
        against_baseline,
        baseline_file,
        comparison_formats,
        read_baseline,
    )
    from normbench.compare import parse_threshold
    from normbench.config_args import build_selection, build_speed_config
    from normbench.results.metrics import MEMORY
    from normbench.suites import get_suite
    from normbench.suites.speed import planned_ids

    columns = chosen_columns(output.columns, "speed", *(["compare"] if baseline else []))
    formats = output.formats("speed", *(() if memory else (MEMORY, "--memory")))
    kw = {"memory": memory, "plot": output.plot, "extra": sel.run_extra()}
    if shapes_from is not None:
        from normbench.capture.selection import shapes_config

        config = shapes_config(sel, shapes_from, timing, output.out, formats, **kw)
    else:
        config = build_speed_config(build_selection(sel), timing, output.out, formats, **kw)
    # The baseline is read, its fingerprint and cases checked before anything is measured, and
    # --md.
    baseline = baseline_file(baseline)
    base = read_baseline(baseline, config.selection.device, config.threads, force, config.cache,
                         planned_ids(config) if baseline else ())  # fmt: skip
    check_md(md)
    margin = parse_threshold(threshold)
    run = run_suite("speed", config, output.out, formats, output.plot, columns,
                    gated=base is not None)  # fmt: skip
    if base is not None:
        cmp = against_baseline(base, baseline, run, margin, force)
        gate_finish(cmp, output.out, comparison_formats(formats), md, plot=output.plot,
                    columns=columns, least=get_suite("speed").exit_code(config, run))  # fmt: skip


@app.command()
@guarded
@grouped
def memory(
    sel: SelectionArgs,
    output: OutputArgs,
    mode: o.MemoryModeOpt = None,
    quick: o.MemoryQuickOpt = False,
) -> None:
    """What each implementation saves for backward and its peak extra memory, against the ideal
    (x plus fp32 statistics per row), after the same fp64 correctness gate as speed.

    Saved bytes come from autograd's saved-tensor hooks (exact on any device); peaks from the
    CUDA caching allocator or, on CPU, the profiler's allocation events.
    """
    from normbench.config_args import build_selection, memory_defaults
    from normbench.suites.memory import MemoryConfig

    formats = output.formats("memory")
    selection = build_selection(sel, memory_defaults(quick))
    config = MemoryConfig(selection=selection, out=output.out, formats=formats, plot=output.plot,
                          extra=sel.run_extra(), quick=quick)  # fmt: skip
    run_suite("memory", config, output.out, formats, output.plot,
              chosen_columns(output.columns, "memory"))  # fmt: skip


@app.command()
@guarded
@grouped
def stability(
    sel: Annotated[SelectionArgs, Without("mode")],
    output: OutputArgs,
    fp16: o.Fp16Opt = False,
    bf16: o.Bf16Opt = False,
    fp32: o.Fp32Opt = False,
    dist: o.DistOpt = None,
    sweep_range: o.SweepRangeOpt = None,
    fail_on: o.FailOnOpt = None,
    no_determinism: o.NoDeterminismOpt = False,
    quick: o.StabilityQuickOpt = False,
    inputs: o.InputsOpt = None,
) -> None:
    """Numerics against an fp64 oracle on adversarial inputs: PASS / WARN / FAIL with a reason.

    Each implementation is compared, forward and backward, with the reference of the semantics
    it declares, on inputs real models produce (normbench list shows them). With no options:
    fp16, bf16 and fp32, N = 1000, 4096, 8192, eager, composite, triton and its Llama- and
    Gemma-style siblings, gemma (`--quick`: without N = 8192); `--fp16` alone took 11-33 s on 2
    CPU cores. Layer options (no weight, weight and residual dtypes, RMSNorm bias, QK-norm
    heads) as in speed. `--inputs FILE` judges them on a captured model's layers instead
    (docs/capture.md).
    """
    from normbench.config_args import build_stability_config, build_stability_selection
    from normbench.results.metrics import SWEEP_METRICS

    formats = output.formats(
        "stability", *(() if sweep_range else (SWEEP_METRICS, "--sweep-range"))
    )
    if inputs is not None:
        from normbench.capture.selection import replay_config

        config = replay_config(sel, inputs, fp16, bf16, fp32, dist, sweep_range,
                               not no_determinism, fail_on, output.out, formats)  # fmt: skip
    else:
        selection = build_stability_selection(sel, fp16, bf16, fp32, quick)
        config = build_stability_config(selection, dist, sweep_range, not no_determinism,
                                        fail_on, output.out, formats)  # fmt: skip
    columns = chosen_columns(output.columns, "stability", config=config)
    run_suite("stability", config, output.out, formats, output.plot, columns)


@app.command()
@guarded
def capture(
    model: co.ModelArg,
    out: co.CaptureOutOpt,
    text: co.TextOpt = None,
    grads: co.GradsOpt = False,
    dtype: co.CaptureDtypeOpt = None,
    device: o.DeviceOpt = "auto",
    seed: o.SeedOpt = 0,
    fmt: co.CaptureFormatOpt = "csv,md,json",
) -> None:
    """Record every normalization layer of a model on a batch: its input, weight, bias, eps,
    the semantics it implies and, with --grads, the gradient at its output, to a safetensors
    file; print each layer's summary (largest |x|, top channels, nearest synthetic input).

    Replay the file with `stability --inputs FILE` and `speed --shapes-from FILE`
    (docs/capture.md).
    """
    from normbench.capture.command import capture_to_file
    from normbench.cli_render import finish
    from normbench.env import resolve_device
    from normbench.report import parse_formats

    formats = parse_formats(fmt)
    done = capture_to_file(model, out, texts=tuple(text or ()), grads=grads, dtype=dtype,
                           device=resolve_device(device), seed=seed)  # fmt: skip
    if done.capture.layers:
        finish(done.run, out.parent, formats, stem=f"{out.stem}-summary")
    failure = done.failure()
    if failure:
        fail(failure)


@app.command("env")
@guarded
def env_cmd(
    device: o.DeviceOpt = "auto", refresh: o.RefreshOpt = False, as_json: o.JsonOpt = False
) -> None:
    """Device, CPU, threads, versions, NVML readings and the measured copy bandwidth."""
    import torch

    from normbench.cli_render import print_env
    from normbench.env import resolve_device, timing_env

    print_env(timing_env(resolve_device(device), torch.get_num_threads(), refresh=refresh), as_json)


@app.command("list")
@guarded
def list_cmd(plugin: o.PluginOpt = None) -> None:
    """Variants, backends (available or not, and why) and their declared semantics, the input
    distributions and the diagnose probes."""
    from normbench.cli_render import print_list
    from normbench.config_args import load_plugin_backends

    load_plugin_backends(plugin)
    print_list()


@app.command("report")
@guarded
def report_cmd(
    files: o.RunFilesArg,
    plot: o.PlotOpt = False,
    out: o.ReportOutOpt = None,
    fmt: o.ReportFormatOpt = RERENDER_FORMATS,
    columns: o.ColumnsOpt = None,
    metrics: o.MetricsOpt = None,
) -> None:
    """Re-render saved runs without measuring again: the console table, Markdown, CSV, an HTML
    page to read top to bottom and, with --plot, the plots.

    Several files are merged (rows keyed by case and device; a device column appears when there
    is more than one); runs of different suites are rendered one after the other. A file that is
    missing, corrupt or not a normbench run is refused with exit 2.
    """
    from normbench.cli_render import rerender
    from normbench.report import parse_formats

    folder = out if out is not None else files[0].parent
    rerender(files, folder, parse_formats(fmt, folder, plot, metrics), plot, columns)


# --- the regression gate: compare, speed --baseline, ab, calibrate -------------------------------


@app.command()
@guarded
@grouped
def compare(
    base: o.BaseArg,
    new: o.NewArg,
    threshold: o.ThresholdOpt = DEFAULT_THRESHOLD,
    md: o.MdOpt = None,
    force: o.ForceOpt = False,
    calibration: o.CalibrationOpt = None,
    *,
    output: OutputArgs,
    fmt: o.FormatOpt = GATE_FORMATS,
    seed: o.BootstrapSeedOpt = 0,
    between_runs: o.BetweenRunsOpt = "auto",
) -> None:
    """Regression gate: per case, ratio of medians NEW/BASE with a bootstrap 95% CI; verdict
    regression / improvement / same / inconclusive against the margin, Holm-corrected.

    Exit 0: no confirmed regression; 1: a confirmed regression (or a case that ran in the
    baseline now fails its correctness gate); 2: usage; 3: baseline missing, corrupt or from a
    different device, driver, torch, triton or thread count (--force compares anyway); 4: could
    not judge (a case timed while the machine was unreliable, or no case compared).
    """
    from normbench.compare import (
        CompareConfig,
        compare_files,
        parse_threshold,
        read_calibration,
    )

    formats = output.formats("compare")
    prepare_reports(output.out, formats, output.plot)
    check_md(md)
    cal = read_calibration(calibration) if calibration else None
    config = CompareConfig(
        threshold=parse_threshold(threshold),
        force=force,
        seed=seed,
        calibrated_margin=cal.margin if cal else None,
        calibrated_noise=cal.noise if cal else None,
        between_runs=between_runs,
    )
    columns = chosen_columns(output.columns, "compare")
    gate_finish(compare_files(base, new, config, cal), output.out, formats, md,
                plot=output.plot, columns=columns)  # fmt: skip


@app.command()
@guarded
@grouped
def ab(
    a: o.SideAOpt,
    b: o.SideBOpt,
    sel: Annotated[SelectionArgs, Without(*LAYER_OPTIONS)],
    timing: TimingArgs,
    output: OutputArgs,
    backend: o.SideBackendOpt = None,
    time_budget: o.SideBudgetOpt = None,
    threshold: o.AbThresholdOpt = DEFAULT_THRESHOLD,
    md: o.AbMdOpt = None,
    fmt: o.FormatOpt = GATE_FORMATS,
    processes: o.ProcessesOpt = None,
) -> None:
    """Same-job A/B: time A and B interleaved, block by block (machine drift lands on both
    sides), then judge B against A with compare's verdicts. Sides from this install run in one
    process; a side from another (`eager@../base`) in worker processes, 3 per side by default.
    Exit 1 when B is confirmed slower, 4 when no case could be compared."""
    from normbench.cli_render import keep_finished, write_sides
    from normbench.suites.ab_sides import build_ab_config, report_stem

    formats = output.formats("ab")
    config = build_ab_config(a, b, sel, timing, output.out, formats, threshold, processes)
    columns = chosen_columns(output.columns, "compare")
    prepare_reports(output.out, formats, output.plot)
    check_md(md)
    with keep_finished(output.out, CASE_LOOP["ab"], formats, "ab") as partial:  # each on disk
        result = measure("ab", config, f"ab {a} vs {b}")
    stem = partial.stem if partial is not None else report_stem()  # named as its partial file
    write_sides(result, output.out, formats, stem)
    if partial is not None:
        partial.discard()  # the sides' reports hold it all now
    gate_finish(result.comparison, output.out, formats, md, stem=stem, plot=output.plot,
                columns=columns)  # fmt: skip


@app.command()
@guarded
@grouped
def calibrate(
    sel: Annotated[SelectionArgs, Without(*LAYER_OPTIONS)],
    timing: TimingArgs,
    output: Annotated[OutputArgs, Without("plot")],
    repeats: o.RepeatsOpt = CALIBRATE_REPEATS,
    interleaved: o.InterleavedOpt = False,
    fmt: o.FormatOpt = GATE_FORMATS,
) -> None:
    """A/A noise: measure the selected cases --repeats times, compare every pair as `compare`
    would, and report the noise floor and the smallest margin with under 1% false alarms
    (pass the JSON to `compare --calibration`)."""
    from normbench.config_args import build_selection, build_speed_config
    from normbench.suites.calibrate import CalibrateConfig

    formats = output.formats("calibrate")
    speed_config = build_speed_config(build_selection(sel), timing, output.out, formats)
    config = CalibrateConfig(speed_config, repeats=repeats, interleaved=interleaved)
    run_suite("calibrate", config, output.out, formats,
              columns=chosen_columns(output.columns, "calibrate"))  # fmt: skip


@app.command()
@guarded
@grouped
def audit(
    arch: o.ArchOpt = ",".join(ARCHS),
    dtype: o.DtypeOpt = None,
    dim: o.DimOpt = None,
    fail_on_spill: o.FailOnSpillOpt = False,
    *,
    output: Annotated[OutputArgs, Without("plot")],
) -> None:
    """Compile every Triton kernel configuration for a GPU you may not have: registers, spills,
    shared memory, global load/store width, occupancy."""
    from normbench.suites.audit_run import build_audit_config

    formats = output.formats("audit")
    config = build_audit_config(arch, dtype, dim, fail_on_spill)
    run_suite("audit", config, output.out, formats,
              columns=chosen_columns(output.columns, "audit"))  # fmt: skip


@app.command()
@guarded
@grouped
def diagnose(
    probes: o.ProbesArg = None,
    quick: o.DiagnoseQuickOpt = False,
    seed: o.SeedOpt = 0,
    device: o.DeviceOpt = "auto",
    depths: o.DepthsOpt = None,
    norms: o.NormsOpt = None,
    *,
    output: OutputArgs,
    plot: o.FigureOpt = False,
) -> None:
    """The folk claims about normalization, measured: a verdict per claim with its numbers."""
    from normbench.suites.diagnose_run import build_diagnose_config

    formats = output.formats("diagnose")
    columns = chosen_columns(output.columns, "diagnose")  # refused before a name is claimed
    plot_dir = output.out if output.plot else None
    config = build_diagnose_config(probes, quick, seed, device, depths, norms, plot_dir)
    try:
        run_suite("diagnose", config, output.out, formats, columns=columns,
                  stem=config.stem or None)  # fmt: skip
    finally:  # refused before the run began (a bad probe, an --out that takes no reports)
        if plot_dir is not None and config.stem:
            from normbench.results.writing import release_stem

            release_stem(plot_dir, config.stem)


def main() -> None:
    # Quiet the TorchScript deprecation and Inductor chatter that would land in the tables.
    os.environ.setdefault("TORCHINDUCTOR_LOG_LEVEL", "ERROR")
    app(prog_name="normbench")


if __name__ == "__main__":
    sys.exit(main())
