"""Progress while a command measures: plain, greppable lines on stderr when it is not a terminal
(a few per run, at least every EVERY_S of slow cases, and the last), rich's bar with an ETA on
one; every command's --help without a `<bool>` after a flag; `--quick` on every command whose
sweep has a quick form; shell completion on."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from normbench.cli import app
from normbench.cli_progress import EVERY_S, PlainProgress, clock_text, unit_of

runner = CliRunner()
LINE = re.compile(
    r"^normbench speed: (\d+)/(\d+) cases \((\d+)%\), \d+:\d\d elapsed(, ETA \d+:\d\d)?"
    r"(, last: \S+)?$"
)
ANSI = "\x1b"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run_loop(total: int, seconds_per_case: float, stop_at: int | None = None) -> list[str]:
    """Drive PlainProgress as CaseLoop does: (i, total, case i+1) before each case, then
    (done, total, "done"); the bar is closed as `measure` closes it."""
    clock, lines = FakeClock(), []
    with PlainProgress("speed", write=lines.append, clock=clock) as bar:
        for i in range(total if stop_at is None else stop_at):
            bar.update(i, total, f"case{i + 1}")
            clock.now += seconds_per_case
        bar.update(total if stop_at is None else stop_at, total, "done")
    return lines


def test_four_cases_show_each():
    lines = run_loop(4, 1.0)
    assert lines == [
        "normbench speed: 1/4 cases (25%), 0:01 elapsed, ETA 0:03, last: case1",
        "normbench speed: 2/4 cases (50%), 0:02 elapsed, ETA 0:02, last: case2",
        "normbench speed: 3/4 cases (75%), 0:03 elapsed, ETA 0:01, last: case3",
        "normbench speed: 4/4 cases (100%), 0:04 elapsed, last: case4",
    ]


def test_forty_eight_fast_cases_print_eight_lines():
    lines = run_loop(48, 1.25)  # 60 s in all: no gap reaches EVERY_S
    done = [int(LINE.match(line).group(1)) for line in lines]
    assert done == [6, 12, 18, 24, 30, 36, 42, 48]
    assert lines[0] == "normbench speed: 6/48 cases (12%), 0:07 elapsed, ETA 0:52, last: case6"
    assert lines[1] == "normbench speed: 12/48 cases (25%), 0:15 elapsed, ETA 0:45, last: case12"
    assert "ETA" not in lines[-1] and lines[-1].endswith("48/48 cases (100%), 1:00 elapsed, "
                                                         "last: case48")  # fmt: skip


def test_slow_cases_print_a_line_at_least_every_few_seconds():
    lines = run_loop(48, EVERY_S + 1)  # each case slower than the interval: each one shows
    assert len(lines) == 48
    lines = run_loop(48, 4.0)  # 4 s a case: a line every 4 cases (16 s), before the 6th
    done = [int(LINE.match(line).group(1)) for line in lines]
    assert done[:3] == [4, 8, 12] and done[-1] == 48


def test_an_interrupted_run_says_where_it_stopped():
    lines = run_loop(48, 1.0, stop_at=9)  # Ctrl-C after 9 cases: the last line says 9/48
    assert [int(LINE.match(line).group(1)) for line in lines] == [6, 9]
    assert lines[-1].startswith("normbench speed: 9/48 cases (18%), 0:09 elapsed, ETA 0:39")


def test_no_eta_before_a_case_finished_nor_without_a_total():
    clock, lines = FakeClock(), []
    bar = PlainProgress("audit", unit=unit_of("audit"), write=lines.append, clock=clock)
    assert "ETA" not in bar.line() and bar.line().startswith("normbench audit: 0 steps, 0:00")
    bar.update(1, 0, "compiling 12 distinct configurations")  # no total: shown at once
    for step in range(2, 6):
        clock.now += 5.0
        bar.update(step, 0, f"[{step}/12] rmsnorm sm_80")
    with bar:
        pass  # closed: the last step is shown
    assert lines == [
        "normbench audit: 1 step, 0:00 elapsed, last: compiling 12 distinct configurations",
        "normbench audit: 4 steps, 0:15 elapsed, last: [4/12] rmsnorm sm_80",
        "normbench audit: 5 steps, 0:20 elapsed, last: [5/12] rmsnorm sm_80",
    ]


def test_diagnose_is_a_percentage_and_repeats_of_a_count_are_one_line():
    clock, lines = FakeClock(), []
    bar = PlainProgress("diagnose", unit=unit_of("diagnose"), write=lines.append, clock=clock)
    for permille in (0, 125, 125, 250):
        clock.now += 1.0
        bar.update(permille, 1000, f"grad-init at {permille}")
    assert lines == [
        "normbench diagnose: 12%, 0:02 elapsed, ETA 0:14, last: grad-init at 125",
        "normbench diagnose: 25%, 0:04 elapsed, ETA 0:12, last: grad-init at 250",
    ]


def test_a_closed_stderr_does_not_stop_the_run():
    def closed(_line: str) -> None:
        raise BrokenPipeError

    bar = PlainProgress("speed", write=closed, clock=FakeClock())
    bar.update(0, 2, "a")
    bar.update(1, 2, "b")  # would print: the write fails, the run goes on
    bar.update(2, 2, "done")
    assert bar.broken and bar.done == 2


def test_clock_text():
    assert [clock_text(s) for s in (0, 5.4, 59.6, 754, 3723, -1)] == [
        "0:00", "0:05", "0:59", "12:34", "1:02:03", "0:00"
    ]  # fmt: skip


def test_on_a_terminal_the_bar_has_an_eta(monkeypatch):
    from rich.progress import Progress

    from normbench.cli_render import progress_bar

    # Draw as on a terminal: rich's switch since 14.1, and FORCE_COLOR for 14.0 (a terminal
    # that is not dumb is interactive there).
    monkeypatch.setenv("TTY_INTERACTIVE", "1")
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("TERM", raising=False)
    bar, update = progress_bar("speed")
    assert isinstance(bar, Progress)
    clock = FakeClock()
    bar.get_time = clock
    eta = next(c for c in bar.columns if type(c).__name__ == "EtaColumn")
    task = bar.tasks[0]
    assert str(eta.render(task)) == ""  # no total, no finished case: no ETA yet
    update(0, 4, "case1")
    for done in (1, 2):
        clock.now += 10.0
        update(done, 4, f"case{done + 1}")
    assert str(eta.render(task)) == "ETA 0:00:20"  # 10 s a case, 2 left


def test_piped_speed_prints_plain_progress_and_no_ansi(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_INTERACTIVE")}
    proc = subprocess.run(
        [sys.executable, "-m", "normbench", "speed", "--quick", "--backend", "eager",
         "--variant", "rmsnorm", "--dim", "256,512", "--batch", "1", "--seq", "64",
         "--time-budget", "0.05", "--format", "none", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=180, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert ANSI not in proc.stdout and ANSI not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("normbench speed:")]
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    assert [(m.group(1), m.group(2)) for m in matches] == [("1", "2"), ("2", "2")]
    assert matches[0].group(4) and not matches[1].group(4)  # ETA once one finished, not at the end
    assert matches[1].group(5) == ", last: rmsnorm/eager/fp32/1x64x512/fwd"


def commands() -> list[str]:
    return sorted(typer.main.get_command(app).commands)


@pytest.mark.parametrize("command", [None, *commands()])
def test_help_shows_no_type_after_a_flag(command):
    args = ["--help"] if command is None else [command, "--help"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output and "BOOLEAN" not in result.output
    assert re.search(r"--help\s+Show this message and exit", result.output)
    if command in ("speed", "memory", "ab", "calibrate", "diagnose"):
        assert re.search(r"--quick\s{2,}\S", result.output)  # a flag: help text, no type
    if command == "speed":
        # values keep theirs (typer 0.16 names a list TEXT)
        assert re.search(r"--dim\s+-n\s+(<list\[str\]>|TEXT)", result.output)


def test_shell_completion_is_on():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert "--install-completion" in result.output and "--show-completion" in result.output
    # typer asks shellingham for the parent shell and ignores the argument when it finds one;
    # with no shell above pytest (a CI runner) it found none and printed "Shell  not supported".
    # typer's own switch makes --show-completion take the shell as its value, wherever it runs.
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "normbench", "--show-completion", "bash"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "_NORMBENCH_COMPLETE=complete_bash" in proc.stdout
    assert "complete -o default -F _normbench_completion normbench" in proc.stdout


QUICK = ("speed", "memory", "stability", "ab", "calibrate", "diagnose")  # audit: no quick form


def test_quick_wherever_a_sweep_has_a_quick_form():
    group = typer.main.get_command(app)
    have = sorted(n for n, c in group.commands.items() if any(p.name == "quick" for p in c.params))
    assert have == sorted(QUICK)


def test_stability_quick_leaves_out_the_widest_row(tmp_path):
    from normbench.config_args import SelectionArgs, build_stability_selection
    from normbench.results import load_run

    full = build_stability_selection(SelectionArgs(device="cpu"))
    quick = build_stability_selection(SelectionArgs(device="cpu"), quick=True)
    assert full.dims == (1000, 4096, 8192) and quick.dims == (1000, 4096)
    assert (quick.dtypes, quick.backends) == (full.dtypes, full.backends)
    assert 3 * len(quick.cases()) == 2 * len(full.cases())
    given = build_stability_selection(SelectionArgs(device="cpu", dim=["64"]), quick=True)
    assert given.dims == (64,)
    result = runner.invoke(app, ["stability", "--quick", "-v", "rmsnorm", "-b", "eager", "--fp32",
                                 "--dist", "normal", "--no-determinism", "--device", "cpu",
                                 "--format", "json", "--out", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    run = load_run(next(tmp_path.glob("*.json")))
    assert sorted({r.shape.dim for r in run.cases()}) == [1000, 4096]
