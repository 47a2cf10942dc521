"""One signal policy for every long command (normbench.signals, docs/design.md "Exit codes"):
SIGTERM and SIGHUP stop a run as Ctrl-C does, a second signal cannot cut the writing of the
reports short, and an interrupted run exits 130 with the finished cases on disk. Real processes,
real signals: a plugin backend writes each new shape it is called with to a file, so the test
knows when a case has finished before it sends the signal."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from normbench.cli import app
from normbench.results import Measurement, Run
from normbench.results.speed import SpeedResult
from normbench.signals import STOP_SIGNALS, measuring, stop_on_signals, stop_requested
from normbench.suites import get_suite
from normbench.variants.base import Shape

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

ROOT = Path(__file__).resolve().parents[1]
DIMS = (64, 128, 192, 256, 320, 384, 448, 512)
BANNER = "Interrupted: the reports hold the cases that finished."

# rmsnorm as eager computes it; the shape of each call that differs from the last one goes to
# $NB_MARK, one line each: a new line means the case before it has finished.
PLUGIN = """
import os
import torch

_last = [None]


def rmsnorm(x, weight, eps):
    shape = tuple(x.shape)
    if shape != _last[0]:
        _last[0] = shape
        with open(os.environ["NB_MARK"], "a") as f:
            f.write(f"{shape[-1]}\\n")
    return torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps)
"""


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    path = tmp_path / "mark.py"
    path.write_text(PLUGIN)
    return path


def _default_stop_signals() -> None:
    """In the child: the stop signals at their defaults. Started from a background job (`make
    test &` in a script) SIGINT arrives ignored, and normbench rightly keeps an inherited ignore
    (test_an_inherited_ignore_is_kept), so the signal under test would never stop the run."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)


def start(args: list[str], tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    mark = tmp_path / "calls.txt"
    env = dict(os.environ, NB_MARK=str(mark), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "normbench", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_stop_signals,
    )
    return proc, mark


def wait_for_lines(proc: subprocess.Popen, mark: Path, lines: int, timeout: float = 240) -> None:
    """Until `mark` holds `lines` lines (the case before the last one has finished)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if mark.exists() and len(mark.read_text().split()) >= lines:
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"normbench ended early (rc {proc.returncode}): {out[-2000:]} {err}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no case finished in time")


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=240)
    return proc.returncode, out, err


def speed_args(plugin: Path, out: str = "rep") -> list[str]:
    return [
        "speed", "--plugin", str(plugin), "--backend", "mark", "--variant", "rmsnorm",
        "--dtype", "fp32", "--dim", ",".join(map(str, DIMS)), "--batch", "2", "--seq", "8",
        "--mode", "fwd", "--time-budget", "0.5", "--threads", "1", "--out", out,
    ]  # fmt: skip


def finished_rows(folder: Path, pattern: str) -> tuple[dict, pd.DataFrame]:
    """The run's JSON (loaded with json) and its CSV (loaded with pandas)."""
    (js,) = folder.glob(f"{pattern}.json")
    (csv,) = folder.glob(f"{pattern}.csv")
    return json.loads(js.read_text()), pd.read_csv(csv)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stop_signal_keeps_the_finished_cases_and_exits_130(tmp_path, plugin, sig):
    proc, mark = start(speed_args(plugin), tmp_path)
    wait_for_lines(proc, mark, 3)  # two cases finished, the third under way
    proc.send_signal(sig)
    rc, out, err = finish(proc)
    assert rc == 130, (out[-2000:], err)
    assert out.count(BANNER) == 1
    assert "Traceback" not in err
    run, frame = finished_rows(tmp_path / "rep", "speed-*")
    assert run["interrupted"] is True
    ok = [r for r in run["rows"] if r.get("status") == "ok"]
    # Every case that finished before the signal is there, and the run stopped early.
    assert 2 <= len({r["case_id"] for r in ok}) < len(DIMS)
    assert len(frame) >= 2 and set(frame["status"]) >= {"ok"}
    assert "64" in frame["shape"].astype(str).iloc[0]


def test_a_second_sigint_50_ms_later_still_leaves_the_reports(tmp_path, plugin):
    proc, mark = start(speed_args(plugin), tmp_path)
    wait_for_lines(proc, mark, 2)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # and a third, of the other kind
    rc, out, err = finish(proc)
    assert rc == 130, (out[-2000:], err)
    assert out.count(BANNER) == 1 and "Traceback" not in err
    run, frame = finished_rows(tmp_path / "rep", "speed-*")
    assert run["interrupted"] is True and len(frame) >= 1
    assert frame["status"].iloc[0] == "ok"


def test_ab_interrupted_is_130_and_says_so(tmp_path, plugin):
    args = ["ab", "--a", "eager", "--b", f"plugin:{plugin}", "--variant", "rmsnorm",
            "--dtype", "fp32", "--dim", ",".join(map(str, DIMS)), "--batch", "2", "--seq", "8",
            "--mode", "fwd", "--time-budget", "0.3", "--threads", "1", "--out", "rep"]  # fmt: skip
    proc, mark = start(args, tmp_path)
    wait_for_lines(proc, mark, 3)
    proc.send_signal(signal.SIGTERM)
    rc, out, err = finish(proc)
    assert rc == 130, (out[-2000:], err)
    assert "INTERRUPTED, over the finished cases only" in out and "Traceback" not in err
    folder = tmp_path / "rep"
    (cmp_file,) = [p for p in folder.glob("ab-*.json") if not p.stem.endswith(("-A", "-B"))]
    cmp = json.loads(cmp_file.read_text())
    assert cmp["interrupted"] is True
    assert cmp["findings"][0]["text"].startswith("INTERRUPTED")
    for side in ("A", "B"):
        (side_file,) = folder.glob(f"ab-*-{side}.json")
        data = json.loads(side_file.read_text())
        assert data["interrupted"] is True
        ok = {r["case_id"] for r in data["rows"] if r.get("status") == "ok"}
        assert 2 <= len(ok) < len(DIMS)


def test_calibrate_interrupted_stops_and_is_130(tmp_path, plugin):
    dims = DIMS[:2]
    args = ["calibrate", "--plugin", str(plugin), "--backend", "mark", "--variant", "rmsnorm",
            "--dtype", "fp32", "--dim", ",".join(map(str, dims)), "--batch", "2", "--seq", "8",
            "--mode", "fwd", "--time-budget", "0.3", "--threads", "1", "--repeats", "5",
            "--out", "rep"]  # fmt: skip
    proc, mark = start(args, tmp_path)
    # Repeat 1 is dims 64, 128; the 4th new shape is repeat 2's second case: its first is done.
    wait_for_lines(proc, mark, 4)
    proc.send_signal(signal.SIGHUP)
    rc, out, err = finish(proc)
    assert rc == 130, (out[-2000:], err)
    assert "Traceback" not in err
    assert len(mark.read_text().split()) == 4  # no further repeat was started
    (js,) = (tmp_path / "rep").glob("calibrate-*.json")
    run = json.loads(js.read_text())
    assert run["interrupted"] is True
    texts = [f["text"] for f in run["findings"]]
    assert any("Interrupted during repeat 2 of 5" in t for t in texts)
    if run["rows"]:  # on a busy machine every A/A case may be unreliable: nothing to calibrate
        assert any(t.startswith("A/A calibration over 2 repeats") for t in texts)
    else:
        assert any("Nothing to calibrate" in t for t in texts)


def _speed_run(cases: int, seed: int, interrupted: bool = False) -> Run:
    """A speed run of `cases` rmsnorm cases, 40 lognormal samples around 1 ms each."""
    rng = np.random.default_rng(seed)
    results = []
    for i in range(cases):
        samples = tuple(float(x) for x in rng.lognormal(0.0, 0.02, 40))
        time_ = Measurement("time", float(np.median(samples)), "ms", n=40, samples=samples)
        results.append(SpeedResult(
            case_id=f"rmsnorm/eager/fp32/1x{i + 1}x1024/fwd", variant="rmsnorm", backend="eager",
            dtype="fp32", shape=Shape(1, i + 1, 1024), mode="fwd", measurements=(time_,),
            block_size=5,
        ))  # fmt: skip
    env = {"device_name": "cpu: test", "device": "cpu", "threads": 1}
    return Run("speed", env, {}, results, interrupted=interrupted)


class _NoSpeed:
    def to_dict(self) -> dict:
        return {}


def test_calibrate_stops_after_the_interrupted_repeat(monkeypatch):
    import normbench.suites.calibrate as cal
    import normbench.suites.speed as speed

    # Repeat 1 times 4 cases, repeat 2 is cut short after 2: repeats 3 to 5 must not start.
    repeats = [_speed_run(4, 1), _speed_run(2, 2, interrupted=True)]
    calls = []

    def fake_run_speed(config, progress=None, debug=False):
        calls.append(1)
        return repeats[len(calls) - 1]

    monkeypatch.setattr(speed, "run_speed", fake_run_speed)
    run = cal.run_calibrate(cal.CalibrateConfig(_NoSpeed(), repeats=5))
    assert len(calls) == 2 and run.interrupted
    noise = run.of(cal.CaseNoise)
    # One A/A comparison (repeat 1 with repeat 2) over the 2 cases both timed.
    assert [r.case_id for r in noise] == [r.case_id for r in repeats[1].results]
    assert all(len(r.ratios) == 1 for r in noise)
    for r, a, b in zip(noise, repeats[0].results, repeats[1].results):
        assert r.ratios[0] == pytest.approx(b.measurements[0].value / a.measurements[0].value)
    texts = [f.text for f in run.findings]
    assert (
        texts[0] == "A/A calibration over 2 repeats (separate runs): 1 comparisons, 2 case "
        "comparisons."
    )
    assert any(t.startswith("Interrupted during repeat 2 of 5") for t in texts)
    assert get_suite("calibrate").exit_code(None, run) == 130


@pytest.mark.parametrize("held_after", [2, 5])
def test_calibrate_with_a_stop_held_between_repeats(monkeypatch, held_after):
    # A stop that lands between two repeats is held (normbench.signals.measuring): the next
    # repeat must not start (it came back empty and was compared: exit 2). Held after the
    # last repeat, it cut nothing short: the calibration is whole.
    import normbench.suites.calibrate as cal
    import normbench.suites.speed as speed

    calls = []

    def fake_run_speed(config, progress=None, debug=False):
        calls.append(1)
        with measuring():
            pass
        if len(calls) == held_after:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        return _speed_run(4, len(calls))

    monkeypatch.setattr(speed, "run_speed", fake_run_speed)
    with stop_on_signals():
        run = cal.run_calibrate(cal.CalibrateConfig(_NoSpeed(), repeats=5))
    assert len(calls) == held_after
    assert run.interrupted is (held_after < 5)


# --- the policy in process -----------------------------------------------------------------------


def test_the_first_signal_raises_once_and_the_handlers_come_back():
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    with stop_on_signals() as state:
        assert not stop_requested()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs between bytecodes
        assert state.name == "SIGTERM" and stop_requested()
        os.kill(os.getpid(), signal.SIGINT)  # ignored now: no KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.05)
        with stop_on_signals() as inner:  # nested: the standing policy, not a new one
            assert inner is state
    assert not stop_requested()
    assert {s: signal.getsignal(s) for s in STOP_SIGNALS} == before


def test_a_stop_between_measuring_blocks_waits_for_the_next_one():
    with stop_on_signals() as state:
        with measuring():
            pass  # the command has begun measuring: from now on stops outside a case wait
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # held: no KeyboardInterrupt here, in the bookkeeping between cases
        assert state.name == "SIGINT"
        with pytest.raises(KeyboardInterrupt), measuring():  # the next case stops at once
            pytest.fail("a held stop let the next case run")


def test_a_stop_after_the_last_case_leaves_complete_reports_and_exits_130(monkeypatch, tmp_path):
    # A signal that came after the last case, while the reports were being put together, used
    # to raise there: exit 130 with no report written. It now waits until they are written.
    import normbench.report as report

    original = report.write_reports

    def signalled_then_write(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        return original(*args, **kwargs)

    monkeypatch.setattr(report, "write_reports", signalled_then_write)
    out = tmp_path / "rep"
    args = ["speed", "--backend", "eager", "--variant", "rmsnorm", "--dim", "64,128",
            "--batch", "1", "--seq", "8", "--quick", "--time-budget", "0.05", "--out", str(out),
            "--format", "json,csv"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 130, result.output
    assert "interrupted after the last case; its reports are complete" in result.output
    run, frame = finished_rows(out, "speed-*")
    assert run["interrupted"] is False
    assert {r["case_id"] for r in run["rows"] if r["status"] == "ok"} == {
        "rmsnorm/eager/fp32/1x8x64/fwd", "rmsnorm/eager/fp32/1x8x128/fwd"}  # fmt: skip
    assert not list(out.glob("*.partial.jsonl"))


def test_an_inherited_ignore_is_kept():
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with stop_on_signals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)  # nohup: not a stop
            time.sleep(0.05)
            assert not stop_requested()
    finally:
        signal.signal(signal.SIGHUP, old)


# --- audit and diagnose: one arch, one probe at a time -------------------------------------------


def test_audit_interrupted_keeps_the_finished_archs(monkeypatch, tmp_path):
    import normbench.suites.audit as audit

    calls = []

    def fake_run_audit(archs, dtypes, dims=None, progress=None):
        calls.append(list(archs))
        if len(calls) == 2:
            raise KeyboardInterrupt  # as the stop signal's handler raises it
        jobs = [dict(kernel=k, arch=a, dtype=d, n=n) for a in archs for d in dtypes
                for n in dims for k in ("rmsnorm_fwd", "layernorm_fwd")]  # fmt: skip
        return [audit._error_row(j, "fake") for j in jobs]

    monkeypatch.setattr(audit, "run_audit", fake_run_audit)
    out = tmp_path / "rep"
    res = CliRunner().invoke(app, ["audit", "--arch", "sm_80,sm_90", "--dtype", "fp16,bf16",
                                   "--dim", "1024,4096", "--out", str(out)])  # fmt: skip
    assert res.exit_code == 130, res.output
    assert calls == [["sm_80"], ["sm_90"]]
    assert res.output.count(BANNER) == 1
    run, frame = finished_rows(out, "audit-*")
    assert run["interrupted"] is True and run["wall_s"] > 0  # it was 0.0 for audit
    # sm_80's 2 dtypes x 2 N x 2 kernels, none of sm_90.
    assert len({r["case_id"] for r in run["rows"]}) == 8
    assert set(frame["arch"]) == {"sm_80"}


def test_audit_refuses_an_unknown_arch_before_compiling(monkeypatch, tmp_path):
    import normbench.suites.audit as audit

    monkeypatch.setattr(audit, "run_audit", lambda *a, **k: pytest.fail("compiled"))
    res = CliRunner().invoke(app, ["audit", "--arch", "sm_80,sm_1", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown arch 'sm_1'" in res.output


def test_diagnose_interrupted_keeps_the_finished_probes(monkeypatch, tmp_path):
    import normbench.suites.diagnose as diagnose

    real = diagnose.run_diagnose
    calls = []

    def fake_run_diagnose(probes, **kw):
        calls.append(list(probes))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(probes, **kw)

    monkeypatch.setattr(diagnose, "run_diagnose", fake_run_diagnose)
    out = tmp_path / "rep"
    res = CliRunner().invoke(app, ["diagnose", "--quick", "overflow", "lipschitz", "amplify",
                                   "--out", str(out)])  # fmt: skip
    assert res.exit_code == 130, res.output
    assert calls == [["overflow"], ["lipschitz"]]
    assert res.output.count(BANNER) == 1
    run, frame = finished_rows(out, "diagnose-*")
    assert run["interrupted"] is True and run["wall_s"] > 0  # it was 0.0 for diagnose
    assert {r["case_id"] for r in run["rows"]} == {"overflow"}
    assert len(frame) >= 1


def test_ab_stopped_in_its_first_case_is_130_with_its_reports(monkeypatch, tmp_path):
    # Nothing timed on either side: compare_runs refused the empty sides ("has no timing
    # rows", exit 3) and the command ended without a report.
    import normbench.suites.ab as ab

    def stopped(self, case):
        raise KeyboardInterrupt  # as the stop signal's handler raises it inside the case

    monkeypatch.setattr(ab.ABCase, "__call__", stopped)
    out = tmp_path / "rep"
    res = CliRunner().invoke(app, ["ab", "--a", "eager", "--b", "composite", "--variant",
                                   "rmsnorm", "--dim", "64", "--batch", "1", "--seq", "8",
                                   "--out", str(out), "--format", "json"])  # fmt: skip
    assert res.exit_code == 130, res.output
    assert "Interrupted before any case was timed on both sides" in res.output
    (run,) = [json.loads(p.read_text()) for p in out.glob("ab-*[0-9].json")]
    assert run["interrupted"] is True and run["rows"] == []


HUNG = """
import sys, time
import normbench.signals as s
from pathlib import Path
from normbench.pipe import Child
from normbench.results.partial import partial_results
s.FORCE_AFTER_S = {force}
with s.stop_on_signals(exiting=True), partial_results(Path({out!r}), "speed") as partial:
    partial.rows = 1  # as if a case had finished
    with s.measuring():
        pass  # measuring has begun: a stop between cases is held
    worker = Child("stuck", cwd={out!r})  # a worker stuck in a call, deaf to every stop
    print(worker.proc.pid, flush=True)
    print("ready", flush=True)
    while True:  # a phase outside any case that never ends (a worker that never answers)
        time.sleep(0.01)
"""


STUCK = """
import signal, subprocess, sys, time
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, signal.SIG_IGN)
# a process of its own, as torch.compile's compile workers or a plugin's, deaf to stops too
deaf = "import signal, time; [signal.signal(s, signal.SIG_IGN) for s in (2, 15, 1)]; time.sleep(60)"
helper = subprocess.Popen([sys.executable, "-c", deaf])
open("helper.pid", "w").write(str(helper.pid))
while True:
    time.sleep(0.01)
"""


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def test_a_later_signal_ends_a_stop_that_hangs_and_a_quick_one_does_not(tmp_path):
    (tmp_path / "stuck.py").write_text(STUCK)
    code = HUNG.format(force=1.0, out=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        worker = int(proc.stdout.readline())
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        while not (tmp_path / "helper.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.02)  # the worker has started its own process
        proc.send_signal(signal.SIGINT)  # held: the process goes on
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # a reflexive second one: still ignored
        time.sleep(0.2)
        assert proc.poll() is None
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)  # past FORCE_AFTER_S: the stop is stuck, end it now
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    # It names the partial file only because the run has one, still on disk.
    [partial] = tmp_path.glob("speed-*.partial.jsonl")
    assert re.fullmatch(
        r"normbench: stopped at once by a second signal \d+ s after the first"
        rf"; the cases that finished are in {re.escape(str(partial))}\n",
        err,
    ), err
    assert "Traceback" not in err
    # The stuck worker and the process it started do not outlive the command (os._exit closes
    # nothing).
    helper = int((tmp_path / "helper.pid").read_text())
    deadline = time.monotonic() + 5
    while (_alive(worker) or _alive(helper)) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [pid for pid in (worker, helper) if _alive(pid)]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"outlived the forced exit: {alive} (worker {worker}, its helper {helper})"
