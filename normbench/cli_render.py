"""What the command line prints: the progress bar, a run's tables and where its reports went, and
the tables of `normbench env` and `normbench list`."""

from __future__ import annotations

import os
import sys
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from normbench.results.partial import PartialFile
    from normbench.suites.ab import ABResult


def progress_bar(description: str) -> tuple[Any, Callable[[int, int, str], None]]:
    """The progress display and the callback the library calls: (done, total, label). It is
    drawn on stderr: stdout holds only the results, so a reader of the pipe that leaves early
    (`| head -1`) cannot break the run while it measures. On an interactive terminal a rich bar
    with an ETA; otherwise (a pipe, a CI log, TERM=dumb: rich's own test) plain lines, a few per
    run (normbench.cli_progress)."""
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_interactive:
        from normbench.cli_progress import PlainProgress, unit_of

        plain = PlainProgress(description, unit=unit_of(description))
        return plain, plain.update
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(
        TextColumn("[bold]" + description),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        _eta_column(),
        TextColumn("{task.fields[label]}"),
        transient=True,
        console=console,
        # The ETA from the whole run's pace, as the plain lines give it: rich's default
        # 30 s window forgets every case when one case takes longer than that.
        speed_estimate_period=24 * 3600,
    )
    task = bar.add_task(description, total=None, label="")

    def update(done: int, total: int, label: str) -> None:
        bar.update(task, completed=done, total=total or None, label=label)  # 0: not known

    return bar, update


def _eta_column() -> Any:
    """rich's TimeRemainingColumn, shown as "ETA 0:45" once a case has finished and the total
    is known, and as nothing before (never a bare -:--:--)."""
    from rich.progress import TimeRemainingColumn
    from rich.text import Text

    class EtaColumn(TimeRemainingColumn):
        def render(self, task: Any) -> Text:
            if task.total is None or task.time_remaining is None or task.finished:
                return Text("")
            return Text("ETA ", style="progress.remaining") + super().render(task)

    return EtaColumn()


@contextmanager
def keep_finished(
    out: Path, suite: str, formats: tuple[str, ...], name: str = ""
) -> Iterator[PartialFile | None]:
    """While a suite measures, its finished cases go to out/<name>-<time>.partial.jsonl as
    they finish (none when no reports are asked for; `name`: the command, default `suite`), so
    a crash keeps them; `finish` gives the reports the same name and removes the file once they
    are written. `--out -` writes no file, this one neither."""
    from normbench.formats import is_stdout
    from normbench.results.partial import partial_results

    if not formats or is_stdout(out):
        yield None
        return
    with partial_results(out, suite, name) as partial:
        yield partial


def finish(
    run: Any,
    out: Path,
    formats: tuple[str, ...],
    plot: bool = False,
    stem: str | None = None,
    partial: PartialFile | None = None,
    columns: tuple[str, ...] = (),
) -> None:
    """Write the reports (and with `plot` the PNGs, written first so the Markdown and HTML can
    link and embed them), then print the tables and say where the reports are. The reports come
    first: a console that is gone (`| head`) or a Ctrl-C while printing cannot lose them. The
    partial file of the run, if any, is removed once they are written. `columns` (--columns)
    chooses the columns of the console, Markdown and HTML tables. With `--out -` the one format
    goes to stdout instead and the tables to stderr (`stream`)."""
    from normbench.errors import NormbenchError
    from normbench.formats import is_stdout
    from normbench.report import console, write_reports

    if is_stdout(out):
        stream(run, formats, columns)
        return
    if stem is None and partial is not None:
        stem = partial.stem  # the reports are named as the partial file that held their cases
    try:
        paths = write_reports(run, out, formats, stem=stem, plots=plot, columns=columns)
    except OSError as exc:
        # Only where the partial file is still there (the folder itself may be what went away).
        kept = (f"; the finished cases are in {partial.path}"
                if partial is not None and partial.path.is_file() else "")  # fmt: skip
        raise NormbenchError(
            f"cannot write the reports in {out} ({exc.strerror or exc}){kept}"
        ) from None
    if partial is not None:
        partial.discard()

    def show() -> None:
        con = console.make_console()
        con.on_broken_pipe = _pipe_closed  # rich's default exits 1: the run's code is due
        console.render(run, con, columns)
        if partial is not None and partial.failed:
            con.print(f"Warning: the partial file stopped early ({partial.failed}).")
        if paths:
            con.print("Reports: " + ", ".join(str(p) for p in paths.values()))

    to_stdout(show)


def stream(run: Any, formats: tuple[str, ...], columns: tuple[str, ...] = ()) -> None:
    """`--out -`: the run in its one format on stdout, nothing else there (a pipe reads a file's
    worth of CSV or JSON), then the tables on stderr for the person watching; no file is
    written. One document per stdout: `speed --baseline` streams the run, and its comparison
    shows only its tables (the exit code carries the verdict)."""
    from normbench.formats import metrics_of
    from normbench.report import console, render_one

    # One document per stdout stream, not per process: a test runner that invokes several
    # commands in one process gives each its own stdout.
    key, out = _document[-1] if _document else (sys.stdout, sys.stdout)
    first = key not in _streamed
    if first:
        text = render_one(run, formats[0], metrics_of(formats), columns)
        _streamed[key] = run.suite
        to_stdout(lambda: out.write(text), out)
    con = console.make_console(stderr=True)
    console.render(run, con, columns)
    if not first:
        con.print(f"Note: stdout holds the {_streamed[key]} run; this {run.suite} run is shown "
                  "here only.")  # fmt: skip


# The stdout streams a run was streamed to, with its suite (weakly: a closed runner's stream
# is forgotten).
_streamed: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _pipe_closed() -> None:
    raise BrokenPipeError


def to_stdout(show: Callable[[], None], stream: Any = None) -> None:
    """Run `show`, which prints to `stream` (sys.stdout); a reader that closed the pipe
    (`normbench speed | head -1`) is not an error of the run: the rest of the output goes to
    /dev/null and the command exits with the run's own code (the idiom of Python's signal
    module docs, "Note on SIGPIPE")."""
    stream = stream if stream is not None else sys.stdout
    try:
        show()
        stream.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())  # so the interpreter's last flush cannot fail
        os.close(devnull)


# (the stdout the command was given, a stream writing to it) while a `--out -` command runs.
_document: list[tuple[Any, Any]] = []


@contextmanager
def stdout_for_the_document() -> Iterator[None]:
    """While a `--out -` command runs, anything else written to stdout (a plugin's print at
    import or in its kernel, a C library's) goes to stderr, so stdout holds the document alone
    (`stream` writes it to the stdout the command was given). At the descriptor where stdout has
    one, so a print from C is moved too; a test runner's captured stdout has none."""
    real = sys.stdout
    try:
        fd = real.fileno()
        err = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    saved = doc = None
    try:
        if fd is None:
            doc = real
        else:
            real.flush()
            saved = os.dup(fd)  # the stdout the command was given, kept for the document
            encoding = getattr(real, "encoding", None) or "utf-8"
            doc = os.fdopen(os.dup(saved), "w", encoding=encoding)
            os.dup2(err, fd)  # last: nothing after it can fail before the `finally`
        sys.stdout = sys.stderr
        _document.append((real, doc))
        yield
    finally:
        if _document and _document[-1][1] is doc:
            _document.pop()
        sys.stdout = real
        if saved is not None:
            try:
                if doc is not None:
                    with suppress(OSError):  # the reader went away: nothing left to give it
                        doc.close()
                with suppress(OSError, ValueError):
                    real.flush()
            finally:
                os.dup2(saved, fd)
                os.close(saved)


def rerender(
    files: list[Path],
    folder: Path,
    formats: tuple[str, ...],
    plot: bool,
    columns: list[str] | None = None,
) -> None:
    """`normbench report`: the saved runs merged (one run per suite), each finished as a new
    run would be, named after the file or, merged from several, the suite and the time. The
    files are read first (a bad one leaves nothing behind), and --columns checked against their
    tables and --metrics against their rows, then the folder is made ready before anything is
    written there."""
    import time

    from normbench.errors import UsageError
    from normbench.formats import is_stdout, metrics_of
    from normbench.outdir import prepare_out
    from normbench.report.columns import check_columns, parse_columns
    from normbench.report.merge import merge, read_runs
    from normbench.report.tables import tables
    from normbench.results.files import tidy_rows
    from normbench.results.metrics import select_rows

    loaded = read_runs(files)
    runs = merge(loaded, [str(f) for f in files])
    names = parse_columns(columns)
    if names:
        headers = [c for run in runs for _, cols, _ in tables(run) for c in cols]
        check_columns(names, headers, "the saved runs' tables")
    from normbench.results.metrics import check_export_files, not_in_run

    for run in runs:
        rows = tidy_rows(run, samples=False)
        if metrics_of(formats):  # a saved run has no catalogue check before it: its rows are
            select_rows(rows, run.suite, metrics_of(formats))  # the test
        # Judged by what the saved run holds (a stability run without a sweep has no
        # bigger-is-better metric for gab-bigger).
        lacking = not_in_run(run.suite, (str(r.get("metric")) for r in rows))
        check_export_files(run.suite, formats, metrics_of(formats), lacking)
    if is_stdout(folder) and len(runs) > 1:  # one format, no plot: checked by parse_formats
        raise UsageError(f"--out - streams one run; these files hold {len(runs)} suites "
                         f"({', '.join(r.suite for r in runs)}): give a folder")  # fmt: skip
    if formats or plot:
        prepare_out(folder)
    for run in runs:
        # A suite given by one file is that file's run (merge returns it as it is) and keeps
        # the file's name; only a suite merged from several is named anew.
        own = next((f for f, r in zip(files, loaded, strict=True) if r is run), None)
        if own is not None:
            stem = f"{Path(own).stem}-report"
        else:
            stem = f"{run.suite}-merged-{time.strftime('%Y%m%d-%H%M%S')}"
        finish(run, folder, formats, plot, stem=stem, columns=names)


def chosen_columns(given: list[str] | None, *suites: str, config: Any = None) -> tuple[str, ...]:
    """--columns as given, each name checked against the suites' headers before anything is
    measured (normbench.report.columns): an unknown one is one sentence listing them, exit 2."""
    from normbench.report.columns import check_for_suites, parse_columns

    names = parse_columns(given)
    check_for_suites(names, suites, config)
    return names


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
    """Variants, backends (available or not, and why), the input distributions and the
    diagnose probes."""
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
        trap += "".join(f"; {dt}: {text}" for dt, text in d.dtype_traps)
        name = d.name + ("" if d.default else " [dim](sweep)[/dim]")
        t.add_row(name, escape(d.description), escape(trap))  # E[x^2] is not markup
    con.print(t)
    from normbench.suites.diagnose import PROBES  # cheap: a probe's module loads when it runs

    t = Table(title="diagnose probes (normbench diagnose NAME)")
    for c in ("probe", "claim", "source"):
        t.add_column(c, overflow="fold")
    for p in PROBES.values():
        t.add_row(p.name, escape(p.claim), escape(p.source))
    con.print(t)


def write_sides(
    result: ABResult, out: Path, formats: tuple[str, ...], stem: str
) -> dict[str, Path]:
    """With json among the formats, both sides of an ab run as <stem>-A.json and <stem>-B.json:
    speed runs, re-comparable later with `normbench compare` (none with `--out -`)."""
    from normbench.formats import is_stdout
    from normbench.report import write_reports

    if "json" not in formats or is_stdout(out):
        return {}
    written = {}
    for side, side_run in (("A", result.a), ("B", result.b)):
        written[side] = write_reports(side_run, out, ("json",), stem=f"{stem}-{side}")["json"]
    return written
