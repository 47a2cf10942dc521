"""What the command line prints: the progress bar, a run's tables and where its reports went, and
the tables of `normbench env` and `normbench list`."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from normbench.results.partial import PartialFile
    from normbench.suites.ab import ABResult


def progress_bar(description: str) -> tuple[Any, Callable[[int, int, str], None]]:
    """A rich progress bar and the callback the library calls: (done, total, label). It is
    drawn on stderr: stdout holds only the results, so a reader of the pipe that leaves early
    (`| head -1`) cannot break the run while it measures."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]" + description),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[label]}"),
        transient=True,
        console=Console(stderr=True),
    )
    task = bar.add_task(description, total=None, label="")

    def update(done: int, total: int, label: str) -> None:
        bar.update(task, completed=done, total=total, label=label)

    return bar, update


@contextmanager
def keep_finished(out: Path, suite: str, formats: tuple[str, ...]) -> Iterator[PartialFile | None]:
    """While a suite measures, its finished cases go to out/<suite>-<time>.partial.jsonl as
    they finish (none when no reports are asked for), so a crash keeps them; `finish` removes
    the file once the reports are written."""
    from normbench.results.partial import partial_results

    if not formats:
        yield None
        return
    with partial_results(out, suite) as partial:
        yield partial


def finish(
    run: Any,
    out: Path,
    formats: tuple[str, ...],
    plot: bool = False,
    stem: str | None = None,
    partial: PartialFile | None = None,
) -> None:
    """Write the reports (and with `plot` the PNGs, written first so the Markdown and HTML can
    link and embed them), then print the tables and say where the reports are. The reports come
    first: a console that is gone (`| head`) or a Ctrl-C while printing cannot lose them. The
    partial file of the run, if any, is removed once they are written."""
    from normbench.errors import NormbenchError
    from normbench.report import console, write_reports

    try:
        paths = write_reports(run, out, formats, stem=stem, plots=plot)
    except OSError as exc:
        kept = f"; the finished cases are in {partial.path}" if partial is not None else ""
        raise NormbenchError(
            f"cannot write the reports in {out} ({exc.strerror or exc}){kept}"
        ) from None
    if partial is not None:
        partial.discard()

    def show() -> None:
        con = console.make_console()
        con.on_broken_pipe = _pipe_closed  # rich's default exits 1: the run's code is due
        console.render(run, con)
        if partial is not None and partial.failed:
            con.print(f"Warning: the partial file stopped early ({partial.failed}).")
        if paths:
            con.print("Reports: " + ", ".join(str(p) for p in paths.values()))

    to_stdout(show)


def _pipe_closed() -> None:
    raise BrokenPipeError


def to_stdout(show: Callable[[], None]) -> None:
    """Run `show`, which prints; a reader that closed the pipe (`normbench speed | head -1`) is
    not an error of the run: the rest of the output goes to /dev/null and the command exits
    with the run's own code (the idiom of Python's signal module docs, "Note on SIGPIPE")."""
    try:
        show()
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's last flush cannot fail
        os.close(devnull)


def rerender(files: list[Path], folder: Path, formats: tuple[str, ...], plot: bool) -> None:
    """`normbench report`: the saved runs merged (one run per suite), each finished as a new
    run would be, named after the file or, merged from several, the suite and the time. The
    files are read first (a bad one leaves nothing behind), then the folder is made ready
    before anything is written there."""
    import time

    from normbench.outdir import prepare_out
    from normbench.report.merge import merge, read_runs

    runs = merge(read_runs(files), [str(f) for f in files])
    if formats or plot:
        prepare_out(folder)
    for run in runs:
        if len(files) == 1:
            stem = f"{files[0].stem}-report"
        else:
            stem = f"{run.suite}-merged-{time.strftime('%Y%m%d-%H%M%S')}"
        finish(run, folder, formats, plot, stem=stem)


def print_env(info: dict[str, Any], as_json: bool = False) -> None:
    if as_json:
        import json

        import typer

        to_stdout(lambda: typer.echo(json.dumps(info, indent=2)))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="normbench env", show_header=False)
    for k, v in info.items():
        table.add_row(k, str(v))
    con = Console()
    con.on_broken_pipe = _pipe_closed
    to_stdout(lambda: con.print(table))


def print_list() -> None:
    """Variants, backends (available or not, and why) and the input distributions."""
    from rich.console import Console

    con = Console()
    con.on_broken_pipe = _pipe_closed  # `normbench list | head` is not an error
    to_stdout(lambda: _list_tables(con))


def _list_tables(con: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    from normbench.inputs import DISTRIBUTIONS
    from normbench.registry import backends
    from normbench.variants import VARIANTS

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
