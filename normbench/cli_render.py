"""What the command line prints: the progress bar, a run's tables and where its reports went, and
the tables of `normbench env` and `normbench list`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from normbench.suites.ab import ABResult


def progress_bar(description: str) -> tuple[Any, Callable[[int, int, str], None]]:
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
    run: Any, out: Path, formats: tuple[str, ...], plot: bool = False, stem: str | None = None
) -> None:
    """Print the tables, write the reports (and with `plot` the PNGs, written first so the
    Markdown and HTML can link and embed them) and say where they are."""
    from normbench.report import console, write_reports

    con = console.make_console()
    console.render(run, con)
    paths = write_reports(run, out, formats, stem=stem, plots=plot)
    if paths:
        con.print("Reports: " + ", ".join(str(p) for p in paths.values()))


def rerender(files: list[Path], folder: Path, formats: tuple[str, ...], plot: bool) -> None:
    """`normbench report`: the saved runs merged (one run per suite), each finished as a new
    run would be, named after the file or, merged from several, the suite and the time."""
    import time

    from normbench.report.merge import merge, read_runs

    for run in merge(read_runs(files), [str(f) for f in files]):
        if len(files) == 1:
            stem = f"{files[0].stem}-report"
        else:
            stem = f"{run.suite}-merged-{time.strftime('%Y%m%d-%H%M%S')}"
        finish(run, folder, formats, plot, stem=stem)


def print_env(info: dict[str, Any], as_json: bool = False) -> None:
    if as_json:
        import json

        import typer

        typer.echo(json.dumps(info, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="normbench env", show_header=False)
    for k, v in info.items():
        table.add_row(k, str(v))
    Console().print(table)


def print_list() -> None:
    """Variants, backends (available or not, and why) and the input distributions."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from normbench.inputs import DISTRIBUTIONS
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
    t = Table(title="input distributions (normbench stability --dist)")
    for c in ("input", "description", "what it breaks"):
        t.add_column(c, overflow="fold")
    for d in DISTRIBUTIONS.values():
        trap = d.trap + (f" ({', '.join(d.trap_dtypes)})" if d.trap and d.trap_dtypes else "")
        name = d.name + ("" if d.default else " [dim](sweep)[/dim]")
        t.add_row(name, escape(d.description), escape(trap))  # E[x^2] is not markup
    con.print(t)


def write_sides(
    result: ABResult, out: Path, formats: tuple[str, ...], stem: str
) -> dict[str, Path]:
    """With json among the formats, both sides of an ab run as <stem>-A.json and <stem>-B.json:
    speed runs, re-comparable later with `normbench compare`."""
    from normbench.report import write_reports

    if "json" not in formats:
        return {}
    written = {}
    for side, side_run in (("A", result.a), ("B", result.b)):
        written[side] = write_reports(side_run, out, ("json",), stem=f"{stem}-{side}")["json"]
    return written
