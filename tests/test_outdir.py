"""Nothing lost (issue 19): a bad --out is refused before anything is measured, a closed stdout
does not cost the reports, finished cases survive a hard crash in a partial file, --format is
parsed strictly, and a run file with an absurd integer is one sentence."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from test_results import small_run
from typer.testing import CliRunner

from normbench.cli import app
from normbench.errors import BaselineError, UsageError
from normbench.formats import parse_formats
from normbench.outdir import prepare_out
from normbench.results import dumps, load_run, tidy_rows
from normbench.results.partial import partial_results, record_finished

runner = CliRunner()
TINY = ["--variant", "rmsnorm", "--backend", "eager", "--dtype", "fp32", "--dim", "64",
        "--batch", "2", "--seq", "8", "--time-budget", "0.05", "--quick"]  # fmt: skip


def normbench(*args, cwd, **kwargs):
    return subprocess.run([sys.executable, "-m", "normbench", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=240, **kwargs)  # fmt: skip


def saved_run(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(dumps(small_run()))
    return path


# --- the destination, prepared before measuring -------------------------------------------------


def bad_outs(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    return {
        "file": (afile, "is a file, not a folder"),
        "through a file": (afile / "sub", "part of the path is a file, not a folder"),
        "proc": ("/proc/normbench-x", "cannot write reports there"),
        "long name": (tmp_path / ("a" * 300), "too long for the file system"),
    }


@pytest.mark.parametrize("kind", ["file", "through a file", "proc", "long name"])
def test_prepare_out_refuses_in_one_sentence(tmp_path, kind):
    out, message = bad_outs(tmp_path)[kind]
    with pytest.raises(UsageError, match=message) as info:
        prepare_out(out)
    assert "\n" not in str(info.value) and len(str(info.value)) < 250


def test_prepare_out_creates_the_folder_and_leaves_no_probe(tmp_path):
    out = tmp_path / "a" / "b"
    assert prepare_out(out) == out
    assert out.is_dir() and list(out.iterdir()) == []


@pytest.mark.parametrize("kind", ["file", "through a file", "proc", "long name"])
@pytest.mark.parametrize("command", ["speed", "memory", "stability", "report", "compare"])
def test_a_bad_out_is_exit_2_before_anything_is_measured(tmp_path, kind, command):
    out, message = bad_outs(tmp_path)[kind]
    run = saved_run(tmp_path)
    args = {
        "speed": ["speed", *TINY],
        "memory": ["memory", *TINY[:10]],
        "stability": ["stability", "--fp32", *TINY[:6], "--dim", "64"],
        "report": ["report", str(run)],
        "compare": ["compare", str(run), str(run)],
    }[command]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not any(p.suffix in (".csv", ".md", ".jsonl") for p in tmp_path.iterdir())


def test_the_out_check_comes_before_the_measuring(tmp_path, monkeypatch):
    import normbench.suites as suites

    def never(name):
        raise AssertionError(f"{name} was run with a bad --out")

    monkeypatch.setattr(suites, "get_suite", never)
    out, _ = bad_outs(tmp_path)["file"]
    result = runner.invoke(app, ["speed", *TINY, "--out", str(out)])
    assert result.exit_code == 2, result.output


# --- a closed stdout ----------------------------------------------------------------------------


def test_a_reader_that_leaves_early_costs_nothing(tmp_path):
    """`normbench speed | head -1`: the reports are written, no traceback, the run's own exit
    code (0), and no partial file is left behind."""
    out = tmp_path / "r"
    command = [sys.executable, "-m", "normbench", "speed", *TINY, "--out", str(out)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    proc = subprocess.Popen(command, cwd=tmp_path, text=True, **pipes)
    first = proc.stdout.readline()
    proc.stdout.close()  # as head -1 does
    err = proc.stderr.read()
    assert proc.wait(timeout=240) == 0, err
    assert first.strip() and "Traceback" not in err and "BrokenPipe" not in err
    files = {p.suffix: p for p in out.iterdir()}
    assert set(files) == {".csv", ".md", ".json"}
    df = pd.read_csv(files[".csv"])
    assert list(df[df.metric == "time"].case_id) == ["rmsnorm/eager/fp32/2x8x64/fwd"]
    assert json.loads(files[".json"].read_text())["rows"][0]["value"] > 0


def test_list_into_a_closed_pipe_is_not_an_error(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "normbench", "list"], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert "variants" in proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0 and err == "", err


# --- the partial file ---------------------------------------------------------------------------

CRASHING_PLUGIN = """
import os

import torch

def rmsnorm(x, weight, eps):
    if x.shape[-1] == 128:
        os._exit(0)  # a hard crash: no Python clean-up, no reports
    r = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)
    return (x.float() * r).to(x.dtype) * weight
"""


# Dies (os._exit) as soon as a finished case is on disk in the partial file of the folder
# NORMBENCH_TEST_OUT names: in calibrate, during the second repeat.
CRASH_ON_SECOND_CALL = """
import os
from pathlib import Path

import torch


def rmsnorm(x, weight, eps):
    out = Path(os.environ["NORMBENCH_TEST_OUT"])
    if any(p.stat().st_size for p in out.glob("*.partial.jsonl")):
        os._exit(0)
    r = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)
    return (x.float() * r).to(x.dtype) * weight
"""


def test_a_hard_crash_keeps_every_finished_case(tmp_path):
    (tmp_path / "crash.py").write_text(CRASHING_PLUGIN)
    out = tmp_path / "r"
    args = ["speed", "--plugin", "crash.py", *TINY, "--backend", "eager,crash", "--dim", "64,128"]
    normbench(*args, "--out", str(out), cwd=tmp_path)
    [partial] = out.iterdir()  # the crash left no report, only the partial file
    assert partial.name.startswith("speed-") and partial.name.endswith(".partial.jsonl")
    df = pd.read_json(partial, lines=True)
    times = df[df.metric == "time"]
    finished = ["rmsnorm/eager/fp32/2x8x64/fwd", "rmsnorm/crash/fp32/2x8x64/fwd",
                "rmsnorm/eager/fp32/2x8x128/fwd"]  # fmt: skip
    assert list(times.case_id) == finished
    assert (times.status == "ok").all() and (times.value > 0).all()
    assert all(len(s) == n for s, n in zip(times.samples, times.n, strict=True))
    # normbench report reads it back as an interrupted run.
    run = load_run(partial)
    assert run.interrupted and [r.case_id for r in run.results] == finished
    result = runner.invoke(app, ["report", str(partial), "--format", "md"])
    assert result.exit_code == 0, result.output
    assert "Partial results" in result.output
    md = (out / f"{partial.stem}-report.md").read_text()
    assert "rmsnorm" in md and "crash" in md


def test_the_partial_file_holds_the_tidy_rows_and_is_removed_after_the_reports(tmp_path):
    run = small_run()
    with partial_results(tmp_path, "speed") as partial:
        for result in run.results:
            record_finished("speed", result)
            record_finished("memory", result)  # another suite's loop (speed --memory): not here
    lines = [json.loads(line) for line in partial.path.read_text().splitlines()]
    assert lines == json.loads(json.dumps(tidy_rows(run)))  # the JSON file's rows, as written
    assert load_run(partial.path).results == run.results
    record_finished("speed", run.results[0])  # outside the block: nothing is written
    assert len(partial.path.read_text().splitlines()) == len(lines)
    partial.discard()
    assert list(tmp_path.iterdir()) == []


def unwritable_reports(out, monkeypatch, fail, match: str):
    """finish() of a one-case run whose write_reports calls `fail` (which raises OSError):
    the NormbenchError's message, and the run and its partial file."""
    import normbench.report as report
    from normbench.cli_render import finish, keep_finished
    from normbench.errors import NormbenchError

    monkeypatch.setattr(report, "write_reports", fail)
    run = small_run()
    refused = pytest.raises(NormbenchError, match=match)
    with refused as info, keep_finished(out, "speed", ("json",)) as partial:
        record_finished("speed", run.results[0])
        finish(run, out, ("json",), partial=partial)
    return str(info.value), run, partial


def test_reports_that_cannot_be_written_name_the_partial_file(tmp_path, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    message, run, partial = unwritable_reports(tmp_path, monkeypatch, full,
                                               "No space left on device")  # fmt: skip
    assert str(partial.path) in message
    assert load_run(partial.path).results == run.results[:1]  # kept: the finished case


def test_reports_that_cannot_be_written_name_no_partial_file_that_is_gone(tmp_path, monkeypatch):
    # The --out folder replaced by a file mid-run: the message named a partial file that no
    # longer existed.
    import errno
    import shutil

    out = tmp_path / "out"
    out.mkdir()

    def gone(*args, **kwargs):
        shutil.rmtree(out)
        out.write_text("not a folder")
        raise OSError(errno.ENOTDIR, "Not a directory")

    message, _, _ = unwritable_reports(out, monkeypatch, gone, "Not a directory")
    assert "the finished cases are in" not in message


def test_a_partial_file_cut_short_loads_what_is_whole(tmp_path):
    run = small_run()
    path = tmp_path / "speed-x.partial.jsonl"
    rows = [json.dumps(r) for r in tidy_rows(run)]
    path.write_text("\n".join(rows) + "\n" + rows[0][:40])  # the crash hit mid-line
    loaded = load_run(path)
    assert loaded.results == run.results
    assert "cut short" in loaded.findings[0].text
    path.write_text(rows[0][:40] + "\n" + rows[1])  # a bad line before the last: corrupt
    with pytest.raises(BaselineError, match="line 1: not valid JSON"):
        load_run(path)
    path.write_text("")
    with pytest.raises(BaselineError, match="no finished case"):
        load_run(path)


def test_a_normal_run_leaves_no_partial_file(tmp_path):
    out = tmp_path / "r"
    result = runner.invoke(app, ["speed", *TINY, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.suffix for p in out.iterdir()) == [".csv", ".json", ".md"]
    result = runner.invoke(app, ["speed", *TINY, "--out", str(out / "no"), "--format", "none"])
    assert result.exit_code == 0 and not (out / "no").exists()  # no reports: no folder made


# --- --format -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,message",
    [
        ("none,csv", "'none' means no reports and cannot be combined"),
        ("csv,NONE", "'none' means no reports and cannot be combined"),
        ("", "--format is empty"),
        (" , ", "--format is empty"),
        ("xml", "unknown report format 'xml'"),
    ],
)
def test_format_lists_are_parsed_strictly(text, message, tmp_path):
    with pytest.raises(UsageError, match=message):
        parse_formats(text)
    result = runner.invoke(app, ["report", str(saved_run(tmp_path)), "--format", text])
    assert result.exit_code == 2 and message in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_format_lists_that_are_fine():
    assert parse_formats("none") == () and parse_formats(" NONE ") == ()
    assert parse_formats("csv, md,") == ("csv", "md")


# --- absurd integers in a run file --------------------------------------------------------------


def huge(tmp_path, digits, where):
    """A saved run with an integer of `digits` digits as a row's `n` (written as text: Python
    itself refuses to print one over its limit)."""
    data = json.loads(dumps(small_run()))
    data["rows"][0][where] = "HUGE"
    path = tmp_path / f"huge-{digits}.json"
    path.write_text(json.dumps(data).replace('"HUGE"', "9" * digits))
    return path


def test_a_5000_digit_integer_is_one_sentence(tmp_path):
    path = huge(tmp_path, 5000, "n")
    with pytest.raises(BaselineError, match=f"more than {sys.get_int_max_str_digits()} digits"):
        load_run(path)
    good = saved_run(tmp_path)
    for args, code in ((["report", str(path)], 2), (["compare", str(path), str(good)], 3),
                       (["compare", str(good), str(path)], 2)):  # fmt: skip
        result = runner.invoke(app, [*args, "--out", str(tmp_path / "o")])
        assert result.exit_code == code, result.output
        assert "digits" in result.output and "Traceback" not in result.output


def test_an_integer_no_float_can_hold_is_refused(tmp_path):
    # 400 digits parse, but are over float's range (about 1.8e308): no measurement.
    assert sys.float_info.max < 10**399
    for where in ("value", "n"):
        with pytest.raises(BaselineError, match="got an integer of 400 digits"):
            load_run(huge(tmp_path, 400, where))
    ok = load_run(huge(tmp_path, 300, "value"))  # 1e300 fits a float: a number, if absurd
    assert ok.results[0].measurements[0].value == pytest.approx(float("9" * 300))


def test_a_hard_crash_in_ab_keeps_both_sides_of_every_finished_case(tmp_path):
    (tmp_path / "crash.py").write_text(CRASHING_PLUGIN)
    out = tmp_path / "r"
    args = ["ab", "--a", "eager", "--b", "crash", "--plugin", "crash.py", "--variant", "rmsnorm",
            "--dtype", "fp32", "--dim", "64,128", "--batch", "2", "--seq", "8",
            "--time-budget", "0.05", "--quick"]  # fmt: skip
    normbench(*args, "--out", str(out), cwd=tmp_path)
    [partial] = out.iterdir()  # the crash at N = 128 left no report, only the partial file
    assert partial.name.startswith("ab-") and partial.name.endswith(".partial.jsonl")
    times = pd.read_json(partial, lines=True).query("metric == 'time'")
    assert sorted(times.side) == ["A", "B"] and set(times.dim) == {64}
    assert (times.status == "ok").all() and (times.value > 0).all()


def test_a_finished_ab_leaves_no_partial_file(tmp_path):
    out = tmp_path / "r"
    args = [
        "ab",
        "--a",
        "eager",
        "--b",
        "composite",
        "--variant",
        "rmsnorm",
        "--dtype",
        "fp32",
        "--dim",
        "64",
        "--batch",
        "2",
        "--seq",
        "8",
        "--time-budget",
        "0.05",
        "--quick",
    ]
    done = normbench(*args, "--out", str(out), "--format", "json", cwd=tmp_path)
    assert done.returncode in (0, 1, 4), done.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names and not any(n.endswith(".partial.jsonl") for n in names), names


def test_a_hard_crash_in_calibrate_keeps_the_finished_repeats(tmp_path):
    """calibrate's repeats are speed runs: their finished cases are flushed to the partial file
    too, so a plugin that kills the process in the second repeat leaves the first on disk."""
    (tmp_path / "crash_later.py").write_text(CRASH_ON_SECOND_CALL)
    out = tmp_path / "r"
    tiny = [a for a in TINY if a != "eager"]  # TINY's --backend eager, without its value
    tiny.remove("--backend")
    args = ["calibrate", "--plugin", "crash_later.py", *tiny, "--backend", "crash_later",
            "--repeats", "2"]  # fmt: skip
    env = {**os.environ, "NORMBENCH_TEST_OUT": str(out)}
    normbench(*args, "--out", str(out), cwd=tmp_path, env=env)
    [partial] = out.iterdir()  # no calibrate report: only the partial file
    times = pd.read_json(partial, lines=True).query("metric == 'time'")
    assert list(times.case_id) == ["rmsnorm/crash_later/fp32/2x8x64/fwd/repeat-1"]
    assert (times.status == "ok").all() and (times.value > 0).all()
