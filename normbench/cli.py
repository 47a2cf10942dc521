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


Opt = typer.Option
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
FormatOpt = Annotated[str, Opt("--format", help="Report formats: csv,md,json or none.")]
PluginOpt = Annotated[
    list[str] | None, Opt("--plugin", help="pkg.module:object or path/to/file.py (repeatable).")
]
SeedOpt = Annotated[int, Opt("--seed", help="Seed of every input.")]


def selection(
    variant, backend, dtype, dim, batch, seq, mode, device, pattern, seed, *, defaults=None
):
    """Options -> Selection, with device-dependent defaults."""
    from normbench.config import Selection, check_device_dtypes, check_fits, parse_ints, split
    from normbench.dtypes import canonical
    from normbench.env import resolve_device
    from normbench.registry import DEFAULT_BACKENDS

    dev = resolve_device(device)
    d = dict(GPU_DEFAULTS if dev.startswith("cuda") else CPU_DEFAULTS)
    d.update(defaults or {})
    sel = Selection(
        variants=tuple(split(variant) or split(d.get("variant", "layernorm,rmsnorm"))),
        backends=tuple(split(backend) or split(d.get("backend", ",".join(DEFAULT_BACKENDS)))),
        dtypes=tuple(canonical(x) for x in (split(dtype) or split(d["dtype"]))),
        dims=tuple(parse_ints(dim, "--dim") or parse_ints(d["dim"], "--dim")),
        batches=tuple(parse_ints(batch, "--batch") or parse_ints(d["batch"], "--batch")),
        seqs=tuple(parse_ints(seq, "--seq") or parse_ints(d["seq"], "--seq")),
        modes=tuple(split(mode) or split(d.get("mode", "fwd"))),
        device=dev,
        pattern=pattern,
        seed=seed,
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


def finish(run, out: Path, formats: tuple[str, ...]) -> None:
    """Print the tables, write the reports and say where they are."""
    from normbench.report import console, write_reports

    con = console.make_console()
    console.render(run, con)
    paths = write_reports(run, out, formats)
    if paths:
        con.print("Reports: " + ", ".join(str(p) for p in paths.values()))


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
    threads: Annotated[int | None, Opt("--threads", help="CPU threads (default: torch's).")] = None,
    time_budget: Annotated[float, Opt("--time-budget", help="Seconds of timing per case.")] = 1.0,
    quick: Annotated[bool, Opt("--quick", help="Fewer samples, looser CI target.")] = False,
    hot: Annotated[bool, Opt("--hot", help="CUDA: no L2 flush between samples.")] = False,
    pattern: FilterOpt = None,
    out: OutOpt = Path("reports"),
    fmt: FormatOpt = "csv,md,json",
    seed: SeedOpt = 0,
) -> None:
    """Time each implementation (gated first against fp64): median, CI, GB/s, % of copy bandwidth.

    With no options, a sweep that takes about a minute on 2 CPU cores and answers whether
    RMSNorm is faster than LayerNorm here, per backend.
    """
    import torch

    from normbench.config import SpeedConfig
    from normbench.report import parse_formats
    from normbench.suites.speed import run_speed

    formats = parse_formats(fmt)
    sel = selection(variant, backend, dtype, dim, batch, seq, mode, device, pattern, seed)
    budget = min(time_budget, 0.3) if quick else time_budget
    config = SpeedConfig(
        selection=sel,
        threads=threads or torch.get_num_threads(),
        time_budget=budget,
        quick=quick,
        hot=hot,
        out=out,
        formats=formats,
    )
    bar, update = progress_bar("speed")
    with bar:
        run = run_speed(config, update, debug=STATE["debug"])
    finish(run, out, formats)
    if run.interrupted:
        raise typer.Exit(130)


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

    from normbench.env import copy_bandwidth, fingerprint, resolve_device

    dev = resolve_device(device)
    threads = torch.get_num_threads()
    info = fingerprint(dev, threads)
    info["copy_bandwidth_gbps"] = round(copy_bandwidth(dev, threads, refresh=refresh), 2)
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


def main() -> None:
    # Quiet the TorchScript deprecation and Inductor chatter that would land in the tables.
    os.environ.setdefault("TORCHINDUCTOR_LOG_LEVEL", "ERROR")
    app(prog_name="normbench")


if __name__ == "__main__":
    sys.exit(main())
