"""A/A calibration: how far apart two measurements of the same code land on this machine, and
the smallest `compare` margin that keeps false alarms under 1%.

The selected cases are measured `repeats` times (separate speed runs in one process, the way CI
measures a baseline and a pull request; or, with `interleaved`, A/A in `ab` mode). Every pair
of repeats is compared exactly as `compare` would (bootstrap CI, Holm within each comparison):

- noise floor: the 99th percentile, over cases and pairs, of how far an A/A CI reaches from 1
  (max(|log low|, |log high|), shown as a percentage);
- smallest margin: the smallest d on a 0.5% grid for which fewer than 1% of the A/A case
  comparisons get a regression or improvement verdict. `compare --calibration FILE` never uses
  a margin below it.
- between-run noise (separate runs only): 1 sd of the log ratio that the within-run CIs miss,
  which `compare --calibration FILE` assumes when a comparison has too few cases to estimate it.

Case comparisons with a side timed while the machine was unreliable are left out, with a warning.

The pairs share runs, so they are not independent: with few repeats the 1% is resolved only as
"none seen", and the report says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from normbench.compare_inputs import MAX_TAU, MIN_CALIBRATION_COMPARISONS
from normbench.errors import CannotJudgeError, UsageError
from normbench.results import Finding, Level, Measurement, Run
from normbench.results.compare import (
    BETWEEN_ID,
    FLOOR_ID,
    MARGIN_ID,
    BetweenRunNoise,
    CaseComparison,
    CaseNoise,
    MinMargin,
    SuiteNoiseFloor,
    Verdict,
)
from normbench.results.partial import partial_group
from normbench.signals import stop_requested
from normbench.suites.calibrate_stats import (
    MIN_FOR_PERCENTILE,
    TARGET_RATE,
    between_run_tau,
    false_alarm_curve,
    quantile,
)

if TYPE_CHECKING:
    from normbench.config import SpeedConfig
    from normbench.suites.common import Progress

SUITE = "calibrate"
REPEATS = 5  # runs measured, each compared with every other


@dataclass(frozen=True)
class CalibrateConfig:
    speed: SpeedConfig
    repeats: int = REPEATS
    interleaved: bool = False
    alpha: float = 0.05
    resamples: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        from normbench.validate import REPEATS_MAX, REPEATS_MIN, check_range

        check_range(self.repeats, "--repeats", REPEATS_MIN, REPEATS_MAX,
                    "A/A needs two runs; every pair is compared")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "speed": self.speed.to_dict(),
            "repeats": self.repeats,
            "interleaved": self.interleaved,
            "alpha": self.alpha,
            "resamples": self.resamples,
            "seed": self.seed,
        }


def _scaled(progress: Progress | None, k: int, of: int) -> Progress | None:
    if progress is None:
        return None

    def update(done: int, total: int, label: str) -> None:
        progress(k * total + done, of * total, f"repeat {k + 1}/{of}: {label}")

    return update


@dataclass
class Measured:
    """How many repeats `aa_comparisons` measured, and whether a stop signal (Ctrl-C, TERM,
    HUP) cut the calibration short: then no further repeat is started (normbench.signals)."""

    repeats: int = 0
    interrupted: bool = False


def aa_comparisons(
    config: CalibrateConfig, progress=None, debug=False, measured: Measured | None = None
) -> tuple[list[Run], dict]:
    """The A/A comparison runs (each one `compare` family) and the environment. A repeat that
    was interrupted keeps its finished cases and ends the calibration."""
    from normbench.compare import CompareConfig, compare_runs

    measured = measured if measured is not None else Measured()
    # No between-run floor: the calibration measures that noise, it must not assume it.
    cmp = CompareConfig(alpha=config.alpha, resamples=config.resamples, seed=config.seed,
                        between_run_floor=False)  # fmt: skip
    if config.interleaved:
        from normbench.suites.ab import ABConfig, run_ab

        sel = config.speed.selection
        out = []
        steps = config.repeats * len(sel.backends)
        env: dict = {}
        for k in range(config.repeats):
            for j, b in enumerate(sel.backends):
                if stop_requested():  # held between repeats: start no workers
                    _end_early(out, measured)
                    return out, env
                speed = replace(config.speed, selection=replace(sel, backends=(b,)))
                step = k * len(sel.backends) + j
                with partial_group(f"repeat-{k + 1}"):  # each repeat's rows kept apart
                    res = run_ab(ABConfig(speed, b, b, cmp), _scaled(progress, step, steps), debug)
                res.comparison.interrupted = res.a.interrupted
                out.append(res.comparison)
                env = res.a.env
                if _stopped(res.a, measured, last=step + 1 == steps):
                    measured.repeats = k + 1
                    return out, env
            measured.repeats = k + 1
        return out, env
    from itertools import combinations

    from normbench.suites.speed import run_speed

    runs: list[Run] = []
    for k in range(config.repeats):
        if stop_requested():  # held between repeats
            _end_early(runs, measured)
            break
        try:
            with partial_group(f"repeat-{k + 1}"):  # each repeat's rows kept apart
                run = run_speed(config.speed, _scaled(progress, k, config.repeats), debug)
        except KeyboardInterrupt:  # outside a case: the repeat was setting up
            run = None
        if run is None or (run.interrupted and not _timed(run)):  # stopped before a case
            _end_early(runs, measured)
            break
        if not _timed(run):  # every case failed: a further repeat would fail the same way
            raise UsageError(f"no case could be timed in repeat {k + 1} ({_why_untimed(run)}): "
                             "nothing to calibrate")  # fmt: skip
        runs.append(run)
        measured.repeats = k + 1
        if _stopped(runs[-1], measured, last=k + 1 == config.repeats):
            break
    pairs = combinations(range(len(runs)), 2)
    comparisons = []
    for i, j in pairs:
        c = compare_runs(runs[i], runs[j], cmp)
        c.interrupted = runs[i].interrupted or runs[j].interrupted
        comparisons.append(c)
    return comparisons, runs[-1].env


def _stopped(run: Run, measured: Measured, last: bool = False) -> bool:
    """The run was cut short by a stop signal, or one came after it: no further repeat
    (before, a Ctrl-C cut one repeat short and the calibration went on as if nothing had
    happened). A stop held after the `last` repeat cut nothing short: the calibration is whole
    (the command still exits 130)."""
    held = stop_requested() and not last
    measured.interrupted = measured.interrupted or run.interrupted or held
    return measured.interrupted or stop_requested()


def _end_early(done: list, measured: Measured) -> None:
    """A stop before a repeat timed anything: the repeats `done` stand, the calibration
    interrupted; with none, KeyboardInterrupt (the command ends as interrupted)."""
    if not done:
        raise KeyboardInterrupt
    measured.interrupted = True


def _why_untimed(run: Run) -> str:
    """A run without a timed case in words: its statuses counted, and the first one's note."""
    from collections import Counter

    from normbench.results.speed import SpeedResult

    cases = run.of(SpeedResult)
    if not cases:
        return "it selected no case"
    counts = Counter(r.status.value for r in cases)
    first = cases[0]
    said = ", ".join(f"{n} {status}" for status, n in counts.items())
    return f"{said}; {first.case_id}: {first.note or first.status.value}"


def _timed(run: Run) -> bool:
    """Whether the run holds a timed case."""
    from normbench.results.speed import SpeedResult

    return any(r.value("time") is not None for r in run.of(SpeedResult))


def run_calibrate(config: CalibrateConfig, progress=None, debug: bool = False) -> Run:
    import time

    start = time.perf_counter()
    measured = Measured()
    comparisons, env = aa_comparisons(config, progress, debug, measured)
    per_case: dict[str, list[CaseComparison]] = {}
    unreliable = 0  # A/A case comparisons with a side timed while the machine was unreliable
    for c in comparisons:
        for r in c.of(CaseComparison):
            unreliable += r.verdict is Verdict.UNRELIABLE
            if r.compared and r.ratio.ci_low and r.ratio.ci_high:
                per_case.setdefault(r.case_id, []).append(r)
    results: list[CaseNoise | SuiteNoiseFloor | MinMargin | BetweenRunNoise] = []
    edges: list[float] = []
    for key, rs in per_case.items():
        cis = [(r.ratio.ci_low, r.ratio.ci_high) for r in rs]
        reach = [max(abs(math.log(lo)), abs(math.log(hi))) for lo, hi in cis]
        edges += reach
        floor = math.expm1(quantile(reach, 0.99))
        ratios = [r.ratio.value for r in rs]
        ref = rs[0]
        results.append(CaseNoise(
            case_id=key, variant=ref.variant, backend=ref.backend, dtype=ref.dtype,
            shape=ref.shape, mode=ref.mode, options=ref.options,
            measurements=(Measurement("noise_floor", 100 * floor, "%", n=len(rs)),),
            ratios=tuple(ratios), ci=tuple(cis),
            worst_ratio_change_pct=100 * max(abs(x - 1) for x in ratios),
        ))  # fmt: skip
    if not results and measured.interrupted:
        return _cut_short(config, env, measured, unreliable, time.perf_counter() - start)
    if not results and unreliable:
        raise CannotJudgeError(
            f"all {unreliable} A/A case comparisons had a side timed while the machine was "
            "unreliable (see each case's note): nothing to calibrate; re-run on a quiet machine "
            "or raise --time-budget"
        )
    if not results:
        raise UsageError("no case was timed in every repeat: nothing to calibrate")
    curve = false_alarm_curve(comparisons, config.alpha)
    total = curve[0][2]
    # None: no margin the gate takes (under 50%) keeps the false alarms under the target; the
    # figures at the widest margin tried are still shown.
    margin = next((d for d, a, n, _ in curve if a < TARGET_RATE * n), None)
    at_margin = next(x for x in curve if x[0] == margin) if margin is not None else curve[-1]
    floor = math.expm1(quantile(edges, 0.99))
    results.append(SuiteNoiseFloor(FLOOR_ID, value=100 * floor, n=len(edges)))
    results.append(MinMargin(
        MARGIN_ID, value=None if margin is None else 100 * margin, n=total,
        alarms_at_margin=at_margin[1], comparisons_alarmed_at_margin=at_margin[3],
        comparisons=len(comparisons), curve=tuple(curve),
    ))  # fmt: skip
    # Interleaved A/A has no between-run noise to measure for separate runs: none recorded.
    tau = None if config.interleaved else between_run_tau(comparisons)
    wild = tau is not None and not tau[0] <= MAX_TAU
    if tau is not None and not wild:
        results.append(BetweenRunNoise(BETWEEN_ID, value=100 * math.expm1(tau[0]), n=tau[1],
                                       tau=tau[0]))  # fmt: skip
    run = Run(SUITE, env, config.to_dict(), results, interrupted=measured.interrupted,
              wall_s=time.perf_counter() - start)  # fmt: skip
    repeats = measured.repeats if measured.interrupted else config.repeats
    run.findings += _findings(config, repeats, len(comparisons), total, floor, len(edges), margin,
                              at_margin)  # fmt: skip
    if measured.interrupted:
        run.add(_interrupted_note(config, measured), Level.WARNING)
    if wild:
        run.add(
            f"Between-run noise of separate runs: tau {tau[0]:.2f} (a factor "
            f"{math.exp(tau[0]):.0f} between runs, 1 sd), beyond any machine worth gating on "
            f"(compare takes up to {MAX_TAU:g}): not recorded; time these backends with "
            "normbench ab.",
            Level.WARNING,
        )
    elif tau is not None:
        use = (
            "what compare --calibration assumes when a comparison has too few cases to estimate it."
            if tau[1] >= MIN_CALIBRATION_COMPARISONS
            else f"too few comparisons to stand for the stated floor (compare --calibration "
            f"needs {MIN_CALIBRATION_COMPARISONS}: more --repeats or cases)."
        )
        run.add(
            f"Between-run noise of separate runs: +-{math.expm1(tau[0]):.1%} (1 sd, tau "
            f"{tau[0]:.3f}, over {tau[1]} A/A case comparisons): {use}"
        )
    if unreliable:
        run.add(
            f"{unreliable} A/A case comparisons left out: a side was timed while the machine "
            "was unreliable (see each speed run); re-run on a quiet machine.",
            Level.WARNING,
        )
    return run


def _interrupted_note(config: CalibrateConfig, measured: Measured) -> str:
    return (
        f"Interrupted during repeat {measured.repeats} of {config.repeats}: the calibration "
        "covers the cases that finished, the last repeat's only in part."
    )


def _cut_short(
    config: CalibrateConfig, env: dict, measured: Measured, unreliable: int, wall: float
) -> Run:
    """An interrupted calibration with no A/A case comparison to use: nothing to calibrate, and
    the run says so (exit 130, not a usage error)."""
    why = "no case was timed in two repeats"
    if unreliable:
        why = (f"the {unreliable} A/A case comparisons had a side timed while the machine was "
               "unreliable")  # fmt: skip
    run = Run(SUITE, env, config.to_dict(), [], interrupted=True, wall_s=wall)
    run.add(f"{_interrupted_note(config, measured)} Nothing to calibrate: {why}.", Level.WARNING)
    return run


def _findings(config: CalibrateConfig, repeats: int, comparisons: int, total: int, floor: float,
              edges: int, margin: float | None,
              at_margin: tuple[float, int, int, int]) -> list[Finding]:  # fmt: skip
    mode = "interleaved A/A (ab)" if config.interleaved else "separate runs"
    out = [
        Finding(
            f"A/A calibration over {repeats} repeats ({mode}): {comparisons} "
            f"comparisons, {total} case comparisons."
        ),
        Finding(
            f"Noise floor: {floor:.1%} (99th percentile of how far an A/A 95% CI reaches from 1"
            + ("; fewer than 100 values, so the largest" if edges < MIN_FOR_PERCENTILE else "")
            + ")."
        ),
    ]
    if margin is None:
        out.append(Finding(
            f"No margin the gate takes keeps the false alarms under 1%: at {at_margin[0]:.1%}, "
            f"{at_margin[1]} of {total} case comparisons still alarmed ({at_margin[3]} of "
            f"{comparisons} comparisons). Separate runs on this machine cannot be gated: "
            "compare the two versions side by side with normbench ab, or calibrate on a "
            "quieter machine.",
            Level.WARNING,
        ))  # fmt: skip
    else:
        out += [
            Finding(
                f"Smallest margin with under 1% false alarms: {margin:.1%} ({at_margin[1]} of "
                f"{total} case comparisons alarmed; {at_margin[3]} of {comparisons} "
                "comparisons)."
            ),
            Finding(
                f"Use it: normbench compare --calibration THIS.json (margin = max(--threshold, "
                f"{margin:.1%})), or --threshold {margin:.1%}."
            ),
        ]
    if total < MIN_FOR_PERCENTILE:
        out.append(Finding(
            f"only {total} A/A case comparisons: 'under 1%' here means none was seen; "
            "raise --repeats or select more cases for a rate that means 1%.",
            Level.WARNING,
        ))  # fmt: skip
    return out
