"""The gate refuses to over-claim (docs/regression-gate.md "What the gate will not judge"): a case
timed while the machine was unreliable is never a regression or an improvement between separate
runs, too few cases get a stated between-run floor instead of the within-run CIs alone, timings
that are not positive numbers are not compared, and "could not judge" has its own exit code."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm
from typer.testing import CliRunner

from normbench.cli import app
from normbench.compare import (
    BETWEEN_RUN_FLOOR,
    CANT_JUDGE,
    IMPROVEMENT,
    INCONCLUSIVE,
    MISSING,
    NEW,
    NOT_COMPARED,
    REGRESSION,
    SAME,
    UNRELIABLE,
    CompareConfig,
    compare_runs,
    counts,
    exit_code,
    geomean,
    headline,
    load_calibrated_noise,
)
from normbench.compare_inputs import MIN_CALIBRATION_COMPARISONS
from normbench.compare_judge import MIN_CASES_FOR_SPREAD, between_run_floor
from normbench.report.compare_view import case_table, markdown_summary
from normbench.results import Level, Measurement, Run, dumps, load_run
from normbench.results.compare import (
    BETWEEN_ID,
    MARGIN_ID,
    BetweenRunNoise,
    CaseComparison,
    MinMargin,
    Verdict,
)
from normbench.results.speed import SpeedResult
from normbench.stats import holm
from normbench.variants.base import Shape

ENV = {"device_name": "cpu: test", "driver": "n/a", "torch": "2.13", "triton": "3.9", "threads": 2,
       "device": "cpu"}  # fmt: skip
BUSY = "other processes used 94% of the CPUs while it was timed"
Z = float(norm.ppf(0.975))
runner = CliRunner()


def case_id(i: int) -> str:
    return f"rmsnorm/eager/fp32/1x{i + 1}x1024/fwd"


def timing(case: str, samples, unreliable: str | None = None, value=None) -> SpeedResult:
    variant, backend, dtype, shape, mode = case.split("/")
    batch, seq, dim = (int(x) for x in shape.split("x"))
    samples = tuple(float(s) for s in samples)
    median = float(np.median(samples)) if value is None and samples else value
    time = Measurement("time", median, "ms", n=len(samples), samples=samples)
    return SpeedResult(
        case_id=case, variant=variant, backend=backend, dtype=dtype,
        shape=Shape(batch, seq, dim), mode=mode, measurements=(time,), block_size=5,
        unreliable=unreliable,
    )  # fmt: skip


def make_run(shifts, seed: int, sigma: float = 0.02, n: int = 40, env=ENV, busy=()) -> Run:
    """One case per shift, lognormal samples around 1 ms x shift; the cases in `busy` marked
    unreliable."""
    rng = np.random.default_rng(seed)
    results = [
        timing(case_id(i), rng.lognormal(math.log(s), sigma, n), BUSY if i in busy else None)
        for i, s in enumerate(shifts)
    ]
    return Run("speed", dict(env), {}, results)


def by_case(run: Run) -> dict[str, CaseComparison]:
    return {r.case_id: r for r in run.of(CaseComparison)}


def log_ratio(base: Run, new: Run, i: int) -> float:
    b, n = (r.results[i].get("time").samples for r in (base, new))
    return math.log(np.median(n) / np.median(b))


# --- an unreliable case is not judged ----------------------------------------------------------


def test_a_busy_new_side_is_unreliable_and_exit_4():
    # The reproduction: one case, the second run taken while other processes loaded
    # both cores, 16.5x slower with a tight within-run CI: never a regression.
    base = make_run([1.0], seed=1)
    new = make_run([16.5], seed=2, busy=(0,))
    cmp = compare_runs(base, new)
    row = by_case(cmp)[case_id(0)]
    assert row.verdict is UNRELIABLE and not row.compared
    assert f"new: {BUSY}" in row.note and "base:" not in row.note
    # The ratio and CI for information: the ratio of medians, the CI around it.
    assert row.ratio.value == pytest.approx(math.exp(log_ratio(base, new, 0)))
    assert row.ratio.ci_low < row.ratio.value < row.ratio.ci_high
    assert row.p_regression is None and row.p_regression_holm is None  # in no Holm family
    c = counts(cmp)
    assert c[REGRESSION] == c[IMPROVEMENT] == 0 and c[UNRELIABLE] == 1
    assert exit_code(cmp) == CANT_JUDGE == 4
    assert headline(cmp).startswith("CAN'T JUDGE: 1 unreliable case not judged, no case judged")
    warning = next(f for f in cmp.findings if f.level is Level.WARNING)
    assert case_id(0) in warning.text and BUSY in warning.text
    assert geomean(cmp) is None  # over the judged cases only


def test_a_busy_baseline_is_named_as_the_unreliable_side():
    base = make_run([1.0], seed=1, busy=(0,))
    cmp = compare_runs(base, make_run([0.5], seed=2))
    row = by_case(cmp)[case_id(0)]
    assert row.verdict is UNRELIABLE
    assert row.note.startswith(f"not judged, timed while unreliable (base: {BUSY})")
    assert exit_code(cmp) == 4


def test_a_real_slowdown_still_fails_beside_an_unreliable_case():
    # 8 reliable cases, one 2x slower, and a ninth timed on a busy machine: the regression is
    # confirmed (exit 1 wins over "could not judge"), and the unreliable case changes nothing
    # else: the noise estimate, the Holm family and the geometric mean are those of the 8.
    base, new = make_run([1.0] * 8, seed=3), make_run([1.0] * 7 + [2.0], seed=4)
    alone = compare_runs(base, new)
    base.results.append(timing(case_id(8), [1.0] * 40))
    new.results.append(timing(case_id(8), [9.0] * 40, unreliable=BUSY))
    cmp = compare_runs(base, new)
    rows = by_case(cmp)
    assert rows[case_id(7)].verdict is REGRESSION
    assert rows[case_id(8)].verdict is UNRELIABLE
    assert exit_code(cmp) == 1 and headline(cmp).startswith("FAIL: 1 confirmed regression")
    assert cmp.config["between_run_noise"] == alone.config["between_run_noise"]
    assert cmp.config["between_run_estimate"] == alone.config["between_run_estimate"]
    for i in range(8):
        a, b = by_case(alone)[case_id(i)], rows[case_id(i)]
        assert (b.ratio.ci_low, b.ratio.ci_high, b.verdict) == (
            a.ratio.ci_low, a.ratio.ci_high, a.verdict)  # fmt: skip
    # Holm over exactly the 8 judged cases, by hand.
    p = [rows[case_id(i)].p_regression for i in range(8)]
    assert [rows[case_id(i)].p_regression_holm for i in range(8)] == pytest.approx(holm(p))
    assert geomean(cmp).value == pytest.approx(geomean(alone).value) and geomean(cmp).n == 8
    assert "Holm-corrected over 8 compared cases" in cmp.summary[1]


def test_judged_and_unreliable_without_a_regression_is_cant_judge():
    base, new = make_run([1.0] * 3, seed=5), make_run([1.0] * 3, seed=6, busy=(2,))
    cmp = compare_runs(base, new)
    assert counts(cmp)[UNRELIABLE] == 1
    assert exit_code(cmp) == 4
    assert headline(cmp).startswith(
        "CAN'T JUDGE: 1 unreliable case not judged, no confirmed regression among the 2 judged"
    )


def test_ab_keeps_judging_unreliable_cases_with_a_warning():
    # Interleaved sides share the machine's state block by block: `ab`'s config judges them.
    ab = CompareConfig(judge_unreliable=True, between_run_floor=False, labels=("A x", "B y"))
    base = make_run([1.0, 1.0], seed=7, busy=(1,))
    new = make_run([1.0, 1.3], seed=8, busy=(1,))
    cmp = compare_runs(base, new, ab)
    rows = by_case(cmp)
    assert rows[case_id(1)].verdict is REGRESSION  # the within-run CI, as before
    assert rows[case_id(1)].p_regression_holm is not None
    assert exit_code(cmp) == 1
    warning = next(f for f in cmp.findings if f.level is Level.WARNING)
    assert warning.text.startswith("1 case timed while the machine was unreliable, judged anyway")
    assert f"{case_id(1)} (A x: {BUSY}; B y: {BUSY})" in warning.text
    # A/A with an unreliable case: judged, so no "could not judge"; but a stall that slows both
    # sides alike pulls a real slowdown's ratio toward 1, so busy is never called "same".
    aa = compare_runs(base, make_run([1.0, 1.0], seed=9, busy=(1,)), ab)
    assert counts(aa)[UNRELIABLE] == 0 and exit_code(aa) == 0
    aa_rows = by_case(aa)
    assert aa_rows[case_id(0)].verdict is SAME  # the quiet case
    busy = aa_rows[case_id(1)]
    assert busy.verdict is INCONCLUSIVE and busy.ratio.ci_high < 1.05  # its CI alone says same
    assert busy.note.startswith("inconclusive, not same: timed while unreliable (")
    # No between-run floor for interleaved sides: the note of the within-run CIs, as before.
    assert any("too few to estimate the between-run noise" in line for line in aa.summary)
    assert aa.config["between_run_noise"] is None


# --- too few cases: the between-run floor ------------------------------------------------------


def test_one_case_gets_the_floor_not_the_within_run_ci():
    # One case, 20% slower with a 2% within-run noise: the within-run CI alone calls it a
    # regression; the CPU floor (tau 0.10) widens it to straddle the margin.
    base, new = make_run([1.0], seed=10), make_run([1.2], seed=11)
    within = by_case(compare_runs(base, new, CompareConfig(between_runs="off")))[case_id(0)]
    assert within.verdict is REGRESSION
    cmp = compare_runs(base, new)
    row = by_case(cmp)[case_id(0)]
    tau = BETWEEN_RUN_FLOOR["cpu"]
    se = math.sqrt(within.log_se**2 + tau**2)
    lo, hi = math.exp(within.log_center - Z * se), math.exp(within.log_center + Z * se)
    assert (row.ratio.ci_low, row.ratio.ci_high) == pytest.approx((lo, hi))
    assert lo < 1.05 < hi
    assert row.verdict is INCONCLUSIVE and exit_code(cmp) == 0
    assert row.df is None  # a stated value, not an estimate: normal tests
    assert cmp.config["between_run_source"] == "floor"
    assert cmp.config["between_run_noise"] == tau
    note = next(f for f in cmp.findings if "floor" in f.text)
    assert note.level is Level.NOTE
    assert note.text.startswith(
        "Between-run noise: the conservative floor of +-10% (1 sd of log ratio) for a CPU, added "
        f"to the CIs (1 judged case is too few to estimate it (needs {MIN_CASES_FOR_SPREAD})"
    )
    assert "--calibration FILE" in note.text
    assert f"> {note.line}" in markdown_summary(cmp)


def test_the_floor_still_catches_a_large_slowdown():
    base, new = make_run([1.0], seed=12), make_run([1.6], seed=13)
    row = by_case(compare_runs(base, new))[case_id(0)]
    # log 1.6 = 0.47 is 4.2 floors above log 1.05: the widened CI clears the margin.
    assert row.ratio.ci_low > 1.05 and row.verdict is REGRESSION


def test_aa_single_cases_under_the_floor_stay_quiet():
    # 20 A/A one-case comparisons whose runs each moved by a run-level 5% (1 sd: a log ratio sd
    # of 0.07 between two runs, inside the CPU floor of 0.10): no regression, no improvement.
    rng = np.random.default_rng(14)
    alarms = 0
    for k in range(20):
        base = make_run([float(np.exp(rng.normal(0, 0.05)))], seed=100 + 2 * k)
        new = make_run([float(np.exp(rng.normal(0, 0.05)))], seed=101 + 2 * k)
        c = counts(compare_runs(base, new))
        alarms += c[REGRESSION] + c[IMPROVEMENT]
    assert alarms == 0


@pytest.mark.parametrize(
    ("device", "tau", "words"),
    [("cuda:1", 0.03, "+-3% (1 sd of log ratio) for a CUDA GPU"),
     ("cuda", 0.03, "for a CUDA GPU"), ("mps", 0.10, "for an unknown device")],
)  # fmt: skip
def test_the_floor_follows_the_device_kind(device, tau, words):
    env = {**ENV, "device": device}
    assert between_run_floor(device)[0] == tau
    base, new = make_run([1.0], seed=15, env=env), make_run([1.0], seed=16, env=env)
    within = by_case(compare_runs(base, new, CompareConfig(between_runs="off")))[case_id(0)]
    cmp = compare_runs(base, new)
    row = by_case(cmp)[case_id(0)]
    se = math.sqrt(within.log_se**2 + tau**2)
    assert row.ratio.ci_high == pytest.approx(math.exp(within.log_center + Z * se))
    assert any(words in line for line in cmp.summary)


def test_a_calibration_replaces_the_floor(tmp_path):
    base, new = make_run([1.0] * 2, seed=17), make_run([1.0] * 2, seed=18)
    within = by_case(compare_runs(base, new, CompareConfig(between_runs="off")))
    cmp = compare_runs(base, new, CompareConfig(calibrated_margin=0.05, calibrated_noise=0.04))
    assert cmp.config["between_run_source"] == "calibration"
    for key, row in by_case(cmp).items():
        se = math.sqrt(within[key].log_se ** 2 + 0.04**2)
        assert row.ratio.ci_low == pytest.approx(math.exp(within[key].log_center - Z * se))
    assert any(
        "Between-run noise: +-4.1% (1 sd, tau 0.040), as the calibration (--calibration) "
        "measured it on separate runs" in line
        for line in cmp.summary
    )
    # A calibration that recorded none (interleaved, or older): the floor, and the note says so.
    floor = compare_runs(base, new, CompareConfig(calibrated_margin=0.05))
    assert floor.config["between_run_source"] == "floor"
    assert any("the calibration has no noise of separate runs measured over 20" in line
               for line in floor.summary)  # fmt: skip
    # The file: the measured value is read back; none recorded, or one measured over too few
    # comparisons to stand for the floor (one once gave tau 0), reads as None.
    margin = MinMargin(MARGIN_ID, value=5.0, n=3, curve=((0.05, 0, 3, 0),))

    def calibration(name, *rows, env=ENV):
        path = tmp_path / f"{name}.json"
        path.write_text(dumps(Run("calibrate", dict(env), {}, [margin, *rows])))
        return path

    def noise(tau, n=MIN_CALIBRATION_COMPARISONS):
        return BetweenRunNoise(BETWEEN_ID, value=5.0, n=n, tau=tau)

    assert load_calibrated_noise(calibration("cal", noise(0.04))) == pytest.approx(0.04)
    assert load_calibrated_noise(calibration("old")) is None
    few = calibration("few", noise(0.0, n=MIN_CALIBRATION_COMPARISONS - 1))
    assert load_calibrated_noise(few) is None


@pytest.mark.parametrize(
    ("margin", "tau", "problem"),
    [(60.0, 0.04, "min_margin 60.0 is not a margin the gate takes (0 to 50%"),
     (-5.0, 0.04, "min_margin -5.0 is not a margin"),
     (5.0, 1e6, "between-run noise tau 1000000.0 is not a noise (a number from 0 to 1)"),
     (5.0, -1.0, "tau -1.0 is not a noise")],
)  # fmt: skip
def test_a_calibration_the_gate_cannot_use_is_one_sentence_and_exit_3(tmp_path, margin, tau,
                                                                      problem):  # fmt: skip
    # Each of these once passed anything (a 1e9% margin) or ended in a traceback (tau 1e6).
    base, new = tmp_path / "base.json", tmp_path / "new.json"
    base.write_text(dumps(make_run([1.0] * 2, seed=17)))
    new.write_text(dumps(make_run([1.0] * 2, seed=18)))
    cal = tmp_path / "cal.json"
    rows = [MinMargin(MARGIN_ID, value=margin, n=3),
            BetweenRunNoise(BETWEEN_ID, value=5.0, n=40, tau=tau)]  # fmt: skip
    cal.write_text(dumps(Run("calibrate", dict(ENV), {}, rows)))
    result = CliRunner().invoke(app, ["compare", str(base), str(new), "--calibration", str(cal),
                                      "--format", "none"])  # fmt: skip
    assert result.exit_code == 3, result.output
    assert problem in result.output and "Traceback" not in result.output


def test_a_calibration_from_another_setup_is_refused_unless_forced(tmp_path):
    base, new = tmp_path / "base.json", tmp_path / "new.json"
    base.write_text(dumps(make_run([1.0] * 2, seed=17)))
    new.write_text(dumps(make_run([1.0] * 2, seed=18)))
    cal = tmp_path / "cal.json"
    rows = [MinMargin(MARGIN_ID, value=5.0, n=3)]
    cal.write_text(dumps(Run("calibrate", {**ENV, "threads": 1}, {}, rows)))
    args = ["compare", str(base), str(new), "--calibration", str(cal), "--format", "none"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 3, result.output
    assert f"calibration {cal} was measured on a different setup (threads: 1 vs 2)" in (
        result.output)  # fmt: skip
    assert CliRunner().invoke(app, [*args, "--force"]).exit_code == 0


def test_a_new_run_without_a_fingerprint_is_the_new_runs_problem(tmp_path):
    # It was blamed on the baseline (exit 3): every fingerprint key differed.
    base, new = tmp_path / "base.json", tmp_path / "new.json"
    base.write_text(dumps(make_run([1.0] * 2, seed=17)))
    new.write_text(dumps(make_run([1.0] * 2, seed=18, env={})))
    args = ["compare", str(base), str(new), "--format", "none"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"new run {new}: it has no device fingerprint" in result.output


def test_an_estimate_above_the_floor_is_used_and_states_no_floor():
    # Cases that move apart by 30% (1 sd) between runs: more than the CPU floor's 10%.
    rng = np.random.default_rng(21)
    shifts = list(np.exp(rng.normal(0.0, 0.30, 8)))
    base, new = make_run([1.0] * 8, seed=19), make_run(shifts, seed=20)
    cmp = compare_runs(base, new)
    assert cmp.config["between_run_source"] == "estimated"
    assert cmp.config["between_run_noise"] > BETWEEN_RUN_FLOOR["cpu"]
    assert not any("floor" in line for line in cmp.summary)


def test_a_shift_of_the_whole_run_is_held_by_the_floor_however_many_cases():
    # The audit's reproduction: every sample 12% slower. 5 cases got the floor (inconclusive)
    # and 6 cases, whose ratios were all alike (spread 0), 4 confirmed regressions. The spread
    # of the cases cannot see a shift of the whole run (a process's own speed), so the
    # estimate never goes below the stated floor.
    for m in (5, 6, 12):
        base, new = make_run([1.0] * m, seed=22), make_run([1.12] * m, seed=23)
        cmp = compare_runs(base, new)
        assert counts(cmp)[REGRESSION] == 0, m
        assert exit_code(cmp) == 0
        assert cmp.config["between_run_source"] == "floor"
        assert cmp.config["between_run_noise"] == BETWEEN_RUN_FLOOR["cpu"]
        if m >= 6:  # estimated, and less than the floor: the summary says both
            assert cmp.config["between_run_estimate"] < 0.02
            line = next(s for s in cmp.summary if "conservative floor" in s)
            assert f"the spread of the {m} cases' ratios gives +-" in line
            assert "a shift of the whole run, which no spread shows" in line
    # A real change far above it is still confirmed: 1.6x, every case.
    cmp = compare_runs(make_run([1.0] * 6, seed=24), make_run([1.6] * 6, seed=25))
    assert counts(cmp)[REGRESSION] == 6 and exit_code(cmp) == 1


# --- timings that are not positive numbers, nothing in common ----------------------------------


@pytest.mark.parametrize(
    ("samples", "value", "why"),
    [([math.nan] + [1.0] * 39, None, "1 of 40 timing samples are not positive numbers (e.g. nan)"),
     ([-1.0] * 40, None, "40 of 40 timing samples are not positive numbers (e.g. -1.0)"),
     ([0.0] * 40, None, "40 of 40 timing samples are not positive numbers (e.g. 0.0)"),
     ([1.0] * 40, math.nan, "its median time is nan, not a positive number"),
     ([1.0] * 40, -1.0, "its median time is -1.0, not a positive number")],
)  # fmt: skip
@pytest.mark.parametrize("side", ["base", "new"])
def test_bad_timings_are_not_compared_never_a_pass(samples, value, why, side):
    bad = Run("speed", dict(ENV), {}, [timing(case_id(0), samples, value=value)])
    good = make_run([1.0], seed=21)
    base, new = (bad, good) if side == "base" else (good, bad)
    cmp = compare_runs(base, new)
    row = by_case(cmp)[case_id(0)]
    assert row.verdict is NOT_COMPARED
    assert row.note == f"{side}: {why}"
    assert exit_code(cmp) == 4
    assert headline(cmp).startswith("CAN'T JUDGE: no case was compared")


def test_nothing_in_common_is_cant_judge():
    base = make_run([1.0], seed=22)
    new = Run("speed", dict(ENV), {}, [timing(case_id(5), [1.0] * 40)])
    cmp = compare_runs(base, new)
    assert {r.verdict for r in cmp.of(CaseComparison)} == {MISSING, NEW}
    assert exit_code(cmp) == 4
    assert headline(cmp) == (
        "CAN'T JUDGE: no case was compared (none in common, or none comparable on both sides) "
        "(margin +-5%; 1 missing, 1 new)."
    )


def test_broken_wins_over_cant_judge():
    base = make_run([1.0, 1.0], seed=23)
    new = make_run([1.0], seed=24, busy=(0,))
    new.results.append(replace(timing(case_id(1), []), measurements=(
        Measurement("time", None, "ms", status="mismatch", note="dx differs"),)))  # fmt: skip
    cmp = compare_runs(base, new)
    assert counts(cmp)[Verdict.BROKEN] == 1 and counts(cmp)[UNRELIABLE] == 1
    assert exit_code(cmp) == 1


# --- the views and the file --------------------------------------------------------------------


def test_views_show_the_verdict_and_a_file_keeps_it(tmp_path):
    from normbench.report.figures.compare import COMPARE_COLORS, _notes, points
    from normbench.report.figures.data import plot_input

    cmp = compare_runs(make_run([1.0, 1.0], seed=25), make_run([1.0, 3.0], seed=26, busy=(1,)))
    _, cols, rows = case_table(cmp)
    # Worst first: the unreliable case heads the table, before the inconclusive one.
    assert rows[0][0] == case_id(1) and rows[0][cols.index("verdict")] == "unreliable"
    md = markdown_summary(cmp)
    assert md.startswith("### :warning: normbench compare: CAN'T JUDGE")
    flagged = md.split("<details>")[0]
    assert "unreliable" in flagged and case_id(1) in flagged
    frame, ctx = plot_input(cmp)
    pts = points(frame, ctx)
    assert "unreliable" in set(pts.label) and "unreliable" in COMPARE_COLORS
    assert any("not judged" in n for n in _notes(frame))
    path = tmp_path / "cmp.json"
    path.write_text(dumps(cmp))
    loaded = load_run(path)
    assert loaded.results == cmp.results
    assert exit_code(loaded) == 4 and by_case(loaded)[case_id(1)].verdict is UNRELIABLE


# --- the command -------------------------------------------------------------------------------


def save(run: Run, path) -> str:
    path.write_text(dumps(run))
    return str(path)


def test_cli_exit_4_for_a_busy_run_and_for_nan(tmp_path):
    base = save(make_run([1.0], seed=27), tmp_path / "base.json")
    busy = save(make_run([16.5], seed=28, busy=(0,)), tmp_path / "busy.json")
    r = runner.invoke(app, ["compare", base, busy, "--format", "none"])
    assert r.exit_code == 4, r.output
    assert "CAN'T JUDGE: 1 unreliable case not judged" in r.output
    assert "│ unreliable │" in r.output and "FAIL" not in r.output
    # JSON has no NaN, but Python's reader accepts the token: such a baseline is not compared.
    data = json.loads(Path(base).read_text())
    row = next(x for x in data["rows"] if x["metric"] == "time")
    row["samples"][0] = math.nan
    nan = tmp_path / "nan.json"
    nan.write_text(json.dumps(data))
    r = runner.invoke(app, ["compare", str(nan), base, "--format", "none"])
    assert r.exit_code == 4, r.output
    assert "not compared" in r.output and "CAN'T JUDGE: no case was compared" in r.output


@pytest.mark.parametrize(
    ("field", "bad", "words"),
    [("value", "fast", "'value' must be a number or null, got 'fast'"),
     ("samples", ["x"], "'samples' must be a list of numbers")],
)  # fmt: skip
def test_cli_rows_of_the_wrong_type_are_one_sentence(tmp_path, field, bad, words):
    good = save(make_run([1.0], seed=29), tmp_path / "good.json")
    data = json.loads(Path(good).read_text())
    next(x for x in data["rows"] if x["metric"] == "time")[field] = bad
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data))
    for args, code, who in (([str(broken), good], 3, "baseline"), ([good, str(broken)], 2,
                                                                  "new run")):  # fmt: skip
        r = runner.invoke(app, ["compare", *args, "--format", "none"])
        assert r.exit_code == code, r.output
        lines = [line for line in r.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"normbench: {who} "), r.output
        assert words in lines[0] and "Traceback" not in r.output


# --- calibrate: the between-run noise it records, unreliable comparisons left out ------------


class _Speed:
    """What CalibrateConfig reads of a speed config when its runs are given, not measured."""

    def to_dict(self) -> dict:
        return {}


def aa_repeats(busy_repeat: int | None = None) -> list[Run]:
    """Three separate A/A runs of 8 cases, each run moved as a whole per case by a 10% (1 sd)
    run-level factor; case 0 of repeat `busy_repeat` timed on a busy machine."""
    rng = np.random.default_rng(30)
    runs = []
    for k in range(3):
        shifts = np.exp(rng.normal(0, 0.10, 8))
        runs.append(make_run(shifts, seed=40 + k, busy=(0,) if k == busy_repeat else ()))
    return runs


def aa_pairs(runs: list[Run], config: CompareConfig) -> list[Run]:
    return [compare_runs(runs[i], runs[j], config) for i, j in ((0, 1), (0, 2), (1, 2))]


def test_calibrate_records_the_between_run_noise_and_leaves_out_unreliable(monkeypatch):
    import normbench.suites.calibrate as cal

    runs = aa_repeats(busy_repeat=1)
    comparisons = aa_pairs(runs, CompareConfig(between_run_floor=False))  # as calibrate does
    # Reference from the unwidened within-run CIs (between_runs off), by hand: A/A, so
    # tau^2 = mean(log r^2) - mean(s^2) over the judged case comparisons.
    sq, within = [], []
    for c in aa_pairs(runs, CompareConfig(between_runs="off")):
        for r in c.of(CaseComparison):
            if r.verdict is not UNRELIABLE:
                sq.append(math.log(r.ratio.value) ** 2)
                within.append(r.log_se**2)
    tau = math.sqrt(np.mean(sq) - np.mean(within))
    assert len(sq) == 22  # 3 pairs x 8 cases, less case 0 in the 2 pairs with repeat 1
    got = cal.between_run_tau(comparisons)
    assert got[0] == pytest.approx(tau) and got[1] == 22
    assert 0.07 < tau < 0.25  # the truth: sqrt(2) x 0.10 = 0.14
    monkeypatch.setattr(cal, "aa_comparisons", lambda *a, **k: (comparisons, dict(ENV)))
    run = cal.run_calibrate(cal.CalibrateConfig(_Speed(), repeats=3))
    (noise,) = run.of(BetweenRunNoise)
    assert noise.tau == pytest.approx(tau) and noise.n == 22
    assert noise.value == pytest.approx(100 * math.expm1(tau))
    busy = next(r for r in run.of(cal.CaseNoise) if r.case_id == case_id(0))
    assert busy.measurements[0].n == 1  # only the pair without repeat 1
    warning = next(f for f in run.findings if f.level is Level.WARNING and "left out" in f.text)
    assert warning.text.startswith("2 A/A case comparisons left out")
    # Interleaved A/A measures no between-run noise of separate runs: none recorded.
    inter = cal.run_calibrate(cal.CalibrateConfig(_Speed(), repeats=3, interleaved=True))
    assert not inter.of(BetweenRunNoise)


def test_calibrate_with_every_comparison_unreliable_says_so(monkeypatch):
    import normbench.suites.calibrate as cal
    from normbench.errors import CannotJudgeError

    runs = [make_run([1.0], seed=50 + k, busy=(0,)) for k in range(3)]
    comparisons = aa_pairs(runs, CompareConfig(between_run_floor=False))
    monkeypatch.setattr(cal, "aa_comparisons", lambda *a, **k: (comparisons, dict(ENV)))
    # Not bad input: the gate's "could not judge" (exit 4), which a quieter machine answers.
    with pytest.raises(CannotJudgeError, match="all 3 A/A case comparisons had a side timed while"):
        cal.run_calibrate(cal.CalibrateConfig(_Speed(), repeats=3))
    assert CannotJudgeError.exit_code == 4


def test_calibrate_that_finds_no_margin_says_so_and_compare_refuses_its_file(monkeypatch, tmp_path):
    """4 cases a run, each moved by a factor e^N(0, 1.5) between runs: no margin under 50% keeps
    the false alarms under 1%. It was "50.0%" with 18% alarmed, then `--threshold 50%`, which
    compare refuses; and a tau over 1 was recorded, which compare --calibration refuses."""
    import normbench.suites.calibrate as cal

    rng = np.random.default_rng(7)
    runs = [make_run(np.exp(rng.normal(0, 1.5, 4)), seed=60 + k) for k in range(3)]
    comparisons = aa_pairs(runs, CompareConfig(between_run_floor=False))
    monkeypatch.setattr(cal, "aa_comparisons", lambda *a, **k: (comparisons, dict(ENV)))
    run = cal.run_calibrate(cal.CalibrateConfig(_Speed(), repeats=3))
    (margin,) = run.of(MinMargin)
    assert margin.value is None and margin.curve[-1][0] == pytest.approx(0.495)
    texts = [f.text for f in run.findings]
    assert any(t.startswith("No margin the gate takes keeps the false alarms under 1%: at 49.5%")
               for t in texts), texts  # fmt: skip
    assert not any("--threshold" in t for t in texts)
    assert not run.of(BetweenRunNoise)  # beyond any noise compare takes: not recorded
    assert any("beyond any machine worth gating on" in t for t in texts)
    path = tmp_path / "calibrate.json"
    path.write_text(dumps(run))
    loaded = load_run(path)  # the file is a valid run
    assert loaded.of(MinMargin)[0].value is None
    from normbench.compare_inputs import read_calibration
    from normbench.errors import BaselineError

    with pytest.raises(BaselineError, match="found no margin under 50%"):
        read_calibration(path)


# --- hand-edited files -------------------------------------------------------------------------


def test_a_hand_edited_file_cannot_contradict_or_outvote_its_samples(tmp_path):
    """A doubled `value` with its samples left alone showed base 120 us, new 60 us at ratio
    1.003x; a second copy of a case was dropped without a word (and `report` kept the other);
    one sample a side confirmed a regression with --between-runs off."""
    from normbench.errors import BaselineError, UsageError

    base, new = make_run([1.0] * 3, seed=1), make_run([1.0] * 3, seed=2)
    r = base.results[0]
    t = r.get("time")
    edited = replace(base, results=[r.replace_measurements([replace(t, value=2 * t.value)]),
                                    *base.results[1:]])  # fmt: skip
    row = by_case(compare_runs(edited, new))[case_id(0)]
    assert row.base_ms == pytest.approx(float(np.median(t.samples)))  # what the ratio is from
    assert row.base_ms / row.new_ms == pytest.approx(row.ratio.value, rel=0.05)
    doubled = replace(base, results=[*base.results, base.results[1]])
    with pytest.raises(BaselineError, match=f"holds case {case_id(1)} twice"):
        compare_runs(doubled, new)
    with pytest.raises(UsageError, match=f"holds case {case_id(1)} twice"):
        compare_runs(base, replace(new, results=[*new.results, new.results[1]]))
    # In a file the two copies are two rows of one case: refused when it is read (exit 3 as a
    # baseline, 2 for report or as the new run), whoever reads it.
    data = json.loads(dumps(base))
    data["rows"].append(data["rows"][0])
    path = tmp_path / "joined.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BaselineError, match="has a second 'time' row"):
        load_run(path)
    one = make_run([1.0], seed=3, n=1)
    slow = make_run([1.07], seed=4, n=1)
    (row,) = compare_runs(one, slow, CompareConfig(between_runs="off")).of(CaseComparison)
    assert row.verdict is NOT_COMPARED
    assert "1 timing sample, fewer than the 6 a 95% CI of the median needs" in row.ratio.note


# --- cache states ------------------------------------------------------------------------------


def test_a_hot_baseline_and_a_cold_run_are_not_compared():
    """The same code is 1.5x slower cold than hot on a CPU: comparing across cache states would
    call every case a regression. Refused like a different fingerprint (exit 3), unless
    --force, which compares and says why they may differ."""
    from normbench.compare_pairs import cache_states
    from normbench.errors import BaselineError

    hot = make_run([1.0] * 8, seed=1)
    cold = make_run([1.5] * 8, seed=2)
    cold = replace(cold, results=[replace(r, cache="cold") for r in cold.results])
    assert cache_states(hot) == {"hot"}  # no cache recorded, a CPU run: it was hot
    assert cache_states(cold) == {"cold"}
    gpu_v1 = Run("speed", {**ENV, "device": "cuda"}, {"hot": False}, hot.results)
    assert cache_states(gpu_v1) == {"cold"}  # the L2 was flushed
    with pytest.raises(BaselineError, match="hot cache and the new run cold"):
        compare_runs(hot, cold)
    forced = compare_runs(hot, cold, CompareConfig(force=True))
    assert "cache state hot vs cold" in forced.config["fingerprint_diffs"]


def test_another_suite_as_the_new_run_is_a_usage_error(tmp_path):
    """A memory run has no timings: as the new run it is bad input (exit 2), as the baseline an
    unusable baseline (exit 3), each one sentence, before any cache-state check."""
    speed = tmp_path / "speed.json"
    speed.write_text(dumps(make_run([1.0] * 2, seed=3)))
    memory = tmp_path / "memory.json"
    memory.write_text(dumps(Run("memory", dict(ENV), {}, [])))
    as_new = runner.invoke(app, ["compare", str(speed), str(memory), "--format", "none"])
    assert as_new.exit_code == 2, as_new.output
    assert "has no timing rows (suite 'memory')" in as_new.output
    assert "Traceback" not in as_new.output
    as_base = runner.invoke(app, ["compare", str(memory), str(speed), "--format", "none"])
    assert as_base.exit_code == 3, as_base.output
    assert "has no timing rows (suite 'memory')" in as_base.output


def test_an_interrupted_comparison_never_reads_pass_in_markdown():
    cmp = compare_runs(make_run([1.0] * 8, seed=1), make_run([1.0] * 8, seed=2))
    assert "PASS" in markdown_summary(cmp).splitlines()[0]
    cmp.interrupted = True
    first = markdown_summary(cmp).splitlines()[0]
    assert first.startswith("### :warning: normbench compare: INTERRUPTED, over the finished")


def test_the_floor_over_a_smaller_estimate_keeps_the_wider_ci_of_the_two():
    # The floor's normal quantile against the estimate's t on 5 df: for a case with a wide CI
    # of its own the estimate's is the wider; the gate takes whichever is, never the narrower
    # (a v1 pair of runs turned an inconclusive 2.6x into a regression before this).
    from normbench.compare_judge import Noise, widen, widen_by
    from normbench.stats import RatioCI

    noise = Noise(0.10, math.inf, "floor", estimate=0.043, estimate_df=5)
    for se in (0.02, 0.35):
        ci = RatioCI(1.2, 1.1, 1.3, math.log(1.2), se, 40, 40)
        a, b = widen(ci, 0.10, math.inf), widen(ci, 0.043, 5)
        wider = max(a, b, key=lambda c: c.high / c.low)
        got = widen_by(ci, noise)
        assert (got.low, got.high, got.df) == (wider.low, wider.high, wider.df)
    assert widen_by(ci, noise).df == 5  # se 0.35: the estimate's t
    tight = RatioCI(1.2, 1.1, 1.3, math.log(1.2), 0.02, 40, 40)
    assert widen_by(tight, noise).df == math.inf  # the floor's
