"""The statistics of an A/A calibration (normbench.suites.calibrate), from the comparisons of
its repeats: the between-run noise, the percentile of how far the CIs reach, and the false-alarm
curve over the margins `compare --threshold` takes."""

from __future__ import annotations

import math

from normbench.results import Run
from normbench.results.compare import CaseComparison, Verdict

# margins 0.5% ... 49.5%: what --threshold takes (under 50%), so the answer is one it accepts
GRID = tuple(k / 1000 for k in range(5, 500, 5))
TARGET_RATE = 0.01
MIN_FOR_PERCENTILE = 100


def _judged(run: Run) -> list[CaseComparison]:
    """The cases of one comparison that were judged on a CI."""
    return [r for r in run.of(CaseComparison) if r.compared and r.ratio.ci_low]


def between_run_tau(comparisons: list[Run]) -> tuple[float, int] | None:
    """(tau, n): the between-run noise of separate runs, 1 sd of the log ratio that the
    within-run CIs miss, over the n judged single-process A/A case comparisons. A/A, so every
    log ratio is noise around 0: tau^2 = mean(log r^2) - mean(s^2), s each case's within-run
    standard error (its CI's, less the between-run term its comparison added). A mean, not a
    robust spread: a case that flips between runs is noise the floor must hold. None: none."""
    sq, within = [], []
    for c in comparisons:
        added = (c.config.get("between_run_noise") or 0.0) ** 2
        for r in _judged(c):
            if r.processes or r.log_se is None or not r.ratio.value:
                continue  # a CI over processes holds the between-run noise already
            sq.append(math.log(r.ratio.value) ** 2)
            within.append(max(0.0, r.log_se**2 - added))
    if not sq:
        return None
    return math.sqrt(max(0.0, sum(sq) / len(sq) - sum(within) / len(within))), len(sq)


def quantile(values: list[float], q: float) -> float:
    """The q quantile of `values`; the largest one where there are too few for it."""
    import numpy as np

    if not values:
        return math.nan
    if len(values) < MIN_FOR_PERCENTILE:
        return float(max(values))  # too few for a 99th percentile: the worst one seen
    return float(np.quantile(values, q))


def false_alarm_curve(comparisons: list[Run], alpha: float) -> list[tuple[float, int, int, int]]:
    """(margin, alarmed case comparisons, all case comparisons, comparisons with any alarm) for
    each margin of the grid, judging every A/A comparison as `compare` would."""
    from normbench.compare import judge

    alarm = (Verdict.REGRESSION, Verdict.IMPROVEMENT)
    # Each case again with the CI it was judged with (its test center, spread and df).
    families = [[r.ratio_ci() for r in _judged(c)] for c in comparisons]
    total = sum(len(f) for f in families)
    curve = []
    for d in GRID:
        alarms = any_alarm = 0
        for f in families:
            v = [x.verdict for x in judge(f, d, alpha)] if f else []
            k = sum(1 for x in v if x in alarm)
            alarms += k
            any_alarm += k > 0
        curve.append((d, alarms, total, any_alarm))
        if alarms == 0:
            break  # larger margins only remove alarms
    return curve
