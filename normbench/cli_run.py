"""How a command runs: errors as one sentence and their exit code (`guarded`, with the signal
policy), a suite under a progress bar, its reports written and its exit code (`run_suite`), and
the regression gate's ending (`gate_finish`). normbench.cli's commands are thin shells over
these."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from normbench.cli_render import finish, keep_finished, progress_bar

STATE = {"debug": False}


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"normbench: {message}", err=True)
    raise typer.Exit(code)


def _document_only(out: Any) -> Any:
    """`--out -`: stdout kept for the document (cli_render.stdout_for_the_document)."""
    from contextlib import nullcontext

    from normbench.cli_render import stdout_for_the_document
    from normbench.formats import is_stdout

    return stdout_for_the_document() if out is not None and is_stdout(out) else nullcontext()


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn normbench's errors into one sentence and their exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from normbench.errors import NormbenchError
        from normbench.signals import stop_on_signals

        try:
            # TERM and HUP (CI cancellation, `timeout`) stop a run as Ctrl-C does, and a second
            # signal cannot cut the writing of the finished cases' reports short.
            with stop_on_signals(exiting=True) as stop, _document_only(kwargs.get("out")):
                try:
                    result = fn(*args, **kwargs)
                except typer.Exit as exc:
                    if not stop.requested or exc.exit_code == 130:
                        raise
                    result = None
                if stop.requested:
                    # Held after the last case (normbench.signals.measuring): nothing was cut
                    # short, and the command still ends as interrupted.
                    fail("interrupted after the last case; its reports are complete", 130)
                return result
        except NormbenchError as exc:
            if STATE["debug"]:  # the traceback, and still the error's own exit code
                import traceback

                traceback.print_exc()
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except SystemExit as exc:
            # normbench exits through typer.Exit (not a SystemExit), and a case's own code is
            # caught by the case loop: this is plugin code (a backend's available() or
            # supports() while the cases are set up) ending the process. Never a silent 0.
            fail(f"plugin code called sys.exit({exc.code!r}) while the run was set up; nothing "
                 "was measured", 2)  # fmt: skip

    return wrapper


def measure(suite: str, config: Any, label: str | None = None) -> Any:
    """Run `suite` on `config` under a progress bar."""
    from normbench.suites import get_suite

    bar, update = progress_bar(label or suite)
    with bar:
        return get_suite(suite).run(config, update, debug=STATE["debug"])


# The suite whose case loop a command's finished cases come from, where it is not its own:
# calibrate's repeats are speed runs, and ab's sides are speed cases.
CASE_LOOP = {"calibrate": "speed", "ab": "speed"}


def run_suite(
    suite: str,
    config: Any,
    out: Path,
    formats: tuple[str, ...],
    plot: bool = False,
    columns: tuple[str, ...] = (),
    stem: str | None = None,
    gated: bool = False,
) -> Any:
    """Run `suite`, print and write its reports (`columns`: the tables' columns shown, checked
    by the caller before; `stem`: their name, when the run chose it), then exit with the code
    its results call for (0 returns the run; `gated`: see exit_for)."""
    from normbench.errors import NormbenchError
    from normbench.outdir import prepare_reports

    prepare_reports(out, formats, plot)
    with keep_finished(out, CASE_LOOP.get(suite, suite), formats, suite) as partial:  # on disk
        try:
            run = measure(suite, config)
        except NormbenchError as exc:
            # Refused after measuring (calibrate with nothing to calibrate): say where the
            # cases that were timed are, rather than leave a file nobody mentioned.
            if partial is None or not partial.rows:
                raise
            partial.close()
            raise type(exc)(f"{exc}; the finished cases are in {partial.path}") from None
        finish(run, out, formats, plot, stem=stem, partial=partial, columns=columns)
    exit_for(suite, config, run, gated)
    return run


def exit_for(suite: str, config: Any, run: Any, gated: bool = False) -> None:
    """Exit with the code `suite` gives `run` (once its reports are written). `gated`: a
    comparison follows (speed --baseline) and gives the code, unless the run was interrupted."""
    from normbench.suites import get_suite

    code = get_suite(suite).exit_code(config, run)
    if code and (code == 130 or not gated):
        raise typer.Exit(code)


# --- the regression gate: compare, speed --baseline, ab, calibrate -------------------------------


def gate_finish(
    cmp,
    out: Path,
    formats: tuple[str, ...],
    md: Path | None,
    stem=None,
    plot: bool = False,
    columns: tuple[str, ...] = (),
    least: int = 0,
) -> None:
    """Print and write the comparison, append the Markdown summary, exit 1 on a regression
    (4 when it could not judge). `least`: the code where the gate finds nothing (speed
    --baseline: 4 when the run itself has a mismatch the gate did not call broken, a case new
    to the baseline or broken in both)."""
    from normbench.compare import exit_code
    from normbench.report.compare_view import append_markdown

    finish(cmp, out, formats, plot, stem=stem, columns=columns)
    # ab cut short: its finished cases, exit 130
    code = 130 if cmp.interrupted else (exit_code(cmp) or least)
    if md is not None:
        try:
            append_markdown(cmp, md)
        except OSError as exc:
            # Checked before measuring, so the file changed since: the verdict's code stands.
            fail(f"--md {md}: cannot write ({exc.strerror})", code or 2)
    if code:
        raise typer.Exit(code)
