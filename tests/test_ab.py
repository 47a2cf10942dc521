"""Same-job A/B, A/A calibration, `speed --baseline` and the slowed fixture, end to end on tiny
cases (timings are never asserted: only the plumbing, the matching and the exit codes)."""

from __future__ import annotations

import json
import time

import pytest
import torch
from typer.testing import CliRunner

from normbench.cli import app
from normbench.fixtures import register_slowed, slowed, slowed_backend
from normbench.registry import unregister_backend
from normbench.results import load_run
from normbench.results.compare import (
    BetweenRunNoise,
    CaseComparison,
    CaseNoise,
    MinMargin,
    SideResult,
    Verdict,
)

runner = CliRunner()
TINY = ["--variant", "rmsnorm", "--dim", "64", "--batch", "1", "--seq", "8", "--mode", "fwd",
        "--dtype", "fp32", "--device", "cpu", "--quick", "--time-budget", "0.02"]  # fmt: skip


@pytest.fixture(autouse=True)
def _no_leftover_fixture_backends():
    yield
    for name in ("eager_slow15", "eager_slow5"):
        unregister_backend(name)


def test_slowed_backend_matches_eager_and_takes_longer():
    import torch.nn.functional as F

    x, w = torch.randn(2, 64, 256), torch.randn(256)
    fn = slowed(lambda x, weight, eps: F.rms_norm(x, (256,), weight, eps), 0.5)
    assert torch.equal(fn(x=x, weight=w, eps=1e-6), F.rms_norm(x, (256,), w, 1e-6))
    # Tied to its own time: a call of the wrapper lasts at least 1.5x its inner call.
    calls = []

    def timed(**kw):
        t0 = time.perf_counter()
        out = F.rms_norm(kw["x"], (256,), kw["weight"], kw["eps"])
        calls.append(time.perf_counter() - t0)
        return out

    t0 = time.perf_counter()
    slowed(timed, 0.5)(x=x, weight=w, eps=1e-6)
    assert time.perf_counter() - t0 >= 1.5 * calls[0]
    assert slowed_backend(0.15).name == "eager_slow15"
    with pytest.raises(ValueError):
        slowed_backend(0)


def test_register_slowed_is_idempotent():
    assert register_slowed(0.15) == register_slowed(0.15) == "eager_slow15"


def test_ab_cli_pairs_sides_by_case(tmp_path):
    out = tmp_path / "r"
    r = runner.invoke(app, ["ab", "--a", "eager", "--b", "eager_slow15", "--plugin",
                            "normbench.fixtures", *TINY, "--out", str(out),
                            "--format", "json"])  # fmt: skip
    assert r.exit_code in (0, 1), r.output  # 1 when the 15% is confirmed
    files = sorted(p.name for p in out.glob("ab-*.json"))
    assert len(files) == 3 and files[0].endswith("-A.json") and files[1].endswith("-B.json")
    cmp = load_run(next(p for p in out.glob("ab-*.json") if p.stem[-2:] not in ("-A", "-B")))
    ratio = cmp.of(CaseComparison)
    assert [c.case_id for c in ratio] == ["rmsnorm/fp32/1x8x64/fwd"]
    assert ratio[0].verdict in (Verdict.REGRESSION, Verdict.INCONCLUSIVE, Verdict.SAME)
    assert ratio[0].base_n >= 8  # at least min_rounds blocks per side
    side_a = load_run(next(out.glob("ab-*-A.json")))
    assert side_a.suite == "speed" and side_a.results[0].backend == "eager"
    assert isinstance(side_a.results[0], SideResult) and side_a.results[0].side == "A"
    assert (r.exit_code == 1) == (ratio[0].verdict is Verdict.REGRESSION)
    # Interleaved sides: a case timed while the machine was busy is still judged (with a
    # warning), and no between-run floor is assumed.
    assert cmp.config["judge_unreliable"] is True and cmp.config["between_run_floor"] is False


def test_ab_cli_refuses_unknown_sides():
    r = runner.invoke(app, ["ab", "--a", "eager", "--b", "nosuch", *TINY, "--format", "none"])
    assert r.exit_code == 2
    assert r.output.strip().startswith("normbench: --b 'nosuch': unknown backend")
    r = runner.invoke(app, ["ab", "--a", "plugin:normbench.fixtures", "--b", "eager", *TINY])
    assert r.exit_code == 2
    assert "defines 2 backends" in r.output


def quiet_machine(monkeypatch) -> None:
    """Timings never judged unreliable: the plumbing, not the reliability rules (those are
    tests/test_honest_timing.py), on a shared CPU where tiny cases often are."""
    import normbench.timing

    real = normbench.timing.assess
    monkeypatch.setattr(normbench.timing, "assess", lambda *a, **k: (real(*a, **k)[0], ()))


def test_calibrate_then_compare_with_it(tmp_path, monkeypatch):
    quiet_machine(monkeypatch)
    out = tmp_path / "c"
    r = runner.invoke(app, ["calibrate", "--backend", "eager", *TINY, "--repeats", "3",
                            "--out", str(out), "--format", "json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "only 3 A/A case comparisons" in r.output  # 3 pairs x 1 case: too few for 1%
    cal = next(out.glob("calibrate-*.json"))
    data = load_run(cal)
    (margin,) = data.of(MinMargin)
    assert margin.n == 3
    if margin.value is None:  # a machine so busy that repeats differ past 49.5%: said so
        assert "No margin the gate takes keeps the false alarms under 1%" in r.output
        from normbench.compare_inputs import read_calibration
        from normbench.errors import BaselineError

        with pytest.raises(BaselineError, match="found no margin under 50%"):
            read_calibration(cal)
        return
    assert "Smallest margin with under 1% false alarms" in r.output
    assert 0.5 <= margin.value <= 49.5
    floor = next(r for r in data.of(CaseNoise) if r.case_id == "rmsnorm/eager/fp32/1x8x64/fwd")
    assert floor.measurements[0].n == 3 and len(floor.ratios) == 3
    # The calibration feeds compare: the margin is never below the calibrated one.
    r1 = runner.invoke(app, ["speed", "--backend", "eager", *TINY, "--out", str(tmp_path / "s"),
                             "--format", "json"])  # fmt: skip
    assert r1.exit_code == 0, r1.output
    run = str(next((tmp_path / "s").glob("speed-*.json")))
    r = runner.invoke(app, ["compare", run, run, "--calibration", str(cal), "--threshold", "1%",
                            "--format", "json", "--out", str(tmp_path / "k")])  # fmt: skip
    assert r.exit_code == 0, r.output
    saved = json.loads(next((tmp_path / "k").glob("compare-*.json")).read_text())
    assert saved["config"]["margin"] == pytest.approx(max(0.01, margin.value / 100))
    # One case is too few to estimate the between-run noise. The calibration measured one over
    # its 3 A/A comparisons, too few to stand for the floor (compare_inputs), so the floor is
    # used, and the calibration says so.
    (noise,) = data.of(BetweenRunNoise)
    assert noise.n == 3 and noise.tau >= 0
    assert "too few comparisons to stand for the stated floor" in " ".join(data.summary)
    assert saved["config"]["between_run_source"] == "floor"


def test_speed_with_baseline(tmp_path):
    s = tmp_path / "s"
    r = runner.invoke(app, ["speed", "--backend", "eager", *TINY, "--out", str(s),
                            "--format", "json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    base = next(s.glob("speed-*.json"))
    md = tmp_path / "summary.md"
    gate = ["--baseline", str(base), "--md", str(md)]
    r = runner.invoke(app, ["speed", "--backend", "eager", *TINY, "--out", str(s),
                            "--format", "json", *gate])  # fmt: skip
    assert "normbench compare:" in md.read_text()
    assert len(list(s.glob("compare-*.json"))) == 1
    # The run exits with its comparison's verdict. Two real runs on a shared CPU can differ
    # by more than the noise floor (CI once saw 26 us then 44 us, tight within each run), so
    # the verdict itself is not asserted here; the A/A property is, on one run compared with
    # itself (test_calibrate_then_compare_with_it) and on fixed samples (test_compare.py).
    cmp = load_run(next(s.glob("compare-*.json")))
    verdicts = {c.verdict for c in cmp.of(CaseComparison)}
    failing = any(v.failing for v in verdicts)
    expected = 1 if failing else 4 if Verdict.UNRELIABLE in verdicts else 0
    assert r.exit_code == expected, r.output
    # A baseline from another machine is refused before anything is measured.
    data = json.loads(base.read_text())
    data["env"]["device_name"] = "NVIDIA H100 80GB HBM3"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    r = runner.invoke(app, ["speed", "--backend", "eager", *TINY, "--format", "none",
                            "--baseline", str(other)])  # fmt: skip
    assert r.exit_code == 3, r.output
    assert "different setup" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["speed", "--backend", "eager", *TINY, "--format", "none",
                            "--baseline", str(tmp_path / "none.json")])  # fmt: skip
    assert r.exit_code == 3
    assert r.output.strip() == f"normbench: baseline {tmp_path / 'none.json'}: no such file"
    # What compare would refuse after the run is refused before it (they were measured first):
    # a run of another suite, one without raw samples, one timed with the other cache state.
    for row in data["rows"]:
        row.pop("samples", None)
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({**data, "env": json.loads(base.read_text())["env"]}))
    memory = tmp_path / "memory.json"
    memory.write_text(json.dumps({**json.loads(base.read_text()), "suite": "memory", "rows": []}))
    refused = ((memory, [], "has no timing rows (suite 'memory')"),
               (bare, [], "holds no raw timing samples"),
               (base, ["--hot"], "was timed with a cold cache and the new run hot"))  # fmt: skip
    for path, extra, words in refused:
        r = runner.invoke(app, ["speed", "--backend", "eager", *TINY, "--format", "none", *extra,
                                "--baseline", str(path)])  # fmt: skip
        assert r.exit_code == 3 and words in r.output, r.output
        assert "cases (" not in r.output  # nothing measured


def test_calibrate_on_a_machine_too_busy_for_any_comparison_cannot_judge(tmp_path, monkeypatch):
    """Every A/A comparison with a side timed while the machine was busy is not bad input (2):
    it is the gate's "could not judge" (4), which a quieter machine answers."""
    import normbench.timing

    real = normbench.timing.assess
    busy = ("other processes used 60% of the CPUs",)
    monkeypatch.setattr(normbench.timing, "assess", lambda *a, **k: (real(*a, **k)[0], busy))
    r = runner.invoke(app, ["calibrate", "--backend", "eager", *TINY, "--repeats", "2",
                            "--out", str(tmp_path), "--format", "json"])  # fmt: skip
    assert r.exit_code == 4, r.output
    assert "had a side timed while the machine was unreliable" in r.output
    assert "Traceback" not in r.output
    # What was timed is kept, under the command's name, and the sentence says where.
    [partial] = tmp_path.iterdir()
    assert partial.name.startswith("calibrate-") and partial.name.endswith(".partial.jsonl")
    assert r.output.strip().endswith(f"; the finished cases are in {partial}")
    # Each repeat's case reads back as its own (one id for both read back as one repeat).
    kept = load_run(partial)
    assert [c.case_id for c in kept.results] == [
        f"rmsnorm/eager/fp32/1x8x64/fwd/repeat-{k}" for k in (1, 2)
    ]
    assert all(c.measurements[0].n >= 6 for c in kept.results)


def test_calibrate_where_no_case_can_be_timed_says_why_not_interrupted(tmp_path):
    """Every case an error (a backend that raises): it read as a stop before the first case,
    exit 130 and "interrupted" with no signal sent."""
    from normbench.backends.base import backend_from_functions
    from normbench.registry import register_backend

    def broken(x, weight, eps):
        raise RuntimeError("kernel launch failed")

    register_backend(backend_from_functions("always_raises", {"rmsnorm": broken}))
    try:
        r = runner.invoke(app, ["calibrate", "--backend", "always_raises", *TINY, "--repeats",
                                "3", "--out", str(tmp_path), "--format", "json"])  # fmt: skip
    finally:
        unregister_backend("always_raises")
    assert r.exit_code == 2, r.output
    said = r.output.strip().splitlines()[-1]  # after the progress lines
    assert said.startswith("normbench: no case could be timed in repeat 1 (1 error; "), said
    assert "kernel launch failed" in r.output and "interrupted" not in r.output.lower()
    [partial] = tmp_path.iterdir()  # the error row is kept, and named
    assert r.output.strip().endswith(f"; the finished cases are in {partial}")


def test_calibrate_interleaved(tmp_path):
    args = ["--repeats", "2", "--interleaved", "--out", str(tmp_path), "--format", "json"]
    r = runner.invoke(app, ["calibrate", "--backend", "eager", *TINY, *args])
    assert r.exit_code == 0, r.output
    data = load_run(next(tmp_path.glob("calibrate-*.json")))
    assert data.config["interleaved"] is True
    case = next(r for r in data.of(CaseNoise) if r.measurements[0].n)
    assert case.case_id == "rmsnorm/fp32/1x8x64/fwd"  # ab matches on the id without backend
    assert case.measurements[0].n == 2  # one A/A comparison per repeat
    assert not data.of(BetweenRunNoise)  # interleaved: no between-run noise of separate runs


def test_a_partial_file_of_interleaved_calibrate_keeps_every_repeat_and_side(tmp_path, monkeypatch):
    """calibrate --interleaved runs `ab --a X --b X` per repeat: one case id for both sides and
    every repeat read back as one case, side A's first repeat."""
    from normbench.results.partial import PartialFile

    monkeypatch.setattr(PartialFile, "discard", PartialFile.close)  # keep it to read it
    args = ["--repeats", "2", "--interleaved", "--out", str(tmp_path), "--format", "json"]
    r = runner.invoke(app, ["calibrate", "--backend", "eager", *TINY, *args])
    assert r.exit_code == 0, r.output
    kept = load_run(next(tmp_path.glob("calibrate-*.partial.jsonl")))
    assert [(c.case_id, c.side) for c in kept.results] == [
        (f"rmsnorm/eager/fp32/1x8x64/fwd/repeat-{k}", side) for k in (1, 2) for side in "AB"
    ]


def test_time_sides_visits_every_process_and_reverses_each_round():
    from normbench.suites.ab_timing import Sampler, time_sides
    from normbench.timing import TimingConfig

    calls = []

    def taker(name, value):
        def take(k):
            calls.append(name)
            return [value] * k

        return Sampler(take, 1e-3, 1, 0.0, 10, "fake")

    sides = [[taker("A0", 1e-3), taker("A1", 2e-3)], [taker("B0", 3e-3), taker("B1", 4e-3)]]
    config = TimingConfig(budget_s=10.0, block_size=5)  # constant samples: converged at 3
    timings, counts = time_sides(sides, config, min_rounds=3)
    # Round 1 forward, round 2 backward, round 3 forward: drift linear over two rounds cancels.
    assert calls == ["A0", "B0", "A1", "B1", "B1", "A1", "B0", "A0", "A0", "B0", "A1", "B1"]
    assert counts == [[15, 15], [15, 15]]
    # A side's samples: its processes one after the other.
    assert timings[0].samples == (1e-3,) * 15 + (2e-3,) * 15
    assert timings[1].samples == (3e-3,) * 15 + (4e-3,) * 15


def test_a_side_that_cannot_time_cold_makes_both_sides_hot():
    """A worker of an install older than the cache states answers `setup` without `rotations`
    and times back to back: both sides are then set up again hot, so A and B are timed alike,
    and their rows say so."""
    from dataclasses import replace as dc_replace

    from normbench.cases import Case
    from normbench.compare import CompareConfig
    from normbench.config import Selection, SpeedConfig
    from normbench.suites.ab import ABCase, ABConfig
    from normbench.suites.ab_timing import LocalSide
    from normbench.suites.common import PreparedCache
    from normbench.variants.base import Shape

    class OldSide(LocalSide):
        def setup(self, case, timing):
            self.asked = timing.hot
            return dc_replace(super().setup(case, timing), rotations=None)

    sel = Selection(("rmsnorm",), ("eager",), ("fp32",), (64,), (1,), (8,), ("fwd",))
    speed = SpeedConfig(sel, threads=1, time_budget=0.05, quick=True)
    config = ABConfig(speed, "eager", "composite", CompareConfig())
    cache = PreparedCache(0)
    old, new = OldSide("eager", cache), LocalSide("composite", cache)
    a, b = ABCase(config, [[old], [new]])(Case("rmsnorm", "eager", "fp32", Shape(1, 8, 64), "fwd"))
    assert old.asked is True  # set up again, hot
    assert a.cache == b.cache == "hot"
    assert a.rotations is None and b.rotations == 1
    assert "timed hot: an install of a side cannot rotate" in b.get("time").note
