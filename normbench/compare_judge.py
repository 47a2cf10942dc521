"""The verdicts of one comparison family (docs/numerics.md section 7): each case's CI against
the margin, with Holm's step-down correction over the family, and the between-run noise that
widens single-process CIs, estimated or, with too few cases, a stated floor
(docs/regression-gate.md).

Used by normbench.compare on two runs and by `calibrate` to judge A/A comparisons again at
every margin of its grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from normbench.results.compare import Verdict

if TYPE_CHECKING:
    from normbench.stats import RatioCI

ALPHA = 0.05
MIN_CASES_FOR_SPREAD = 6
# The between-run noise (1 sd of the log ratio of one case between two separate runs) assumed
# when a comparison has too few cases to estimate it, per device kind: a stated, conservative
# floor rather than the within-run CIs alone (which call a busy moment a regression). CPU: on the
# project's 2-core VM a case's median moved 4.0% (1 sd) between visits inside a process and 5.0%
# between processes, so the log ratio of two separate runs has about sqrt(2) x 6.4% = 9%
# (docs/benchmarks.md "Run-to-run spread"); 10% is that, rounded up. CUDA: assumed, not yet
# measured (no GPU has run normbench; an L2-flushed GPU kernel is far steadier than a shared
# VM). A `calibrate` file of separate runs (`compare --calibration`) replaces them with the
# machine's own measured value.
BETWEEN_RUN_FLOOR = {"cpu": 0.10, "cuda": 0.03}
# Efficiency of the MAD as a scale estimator for normal data (0.37): its estimate is about as
# uncertain as a standard deviation from 0.37 x (m - 1) degrees of freedom.
MAD_EFFICIENCY = 0.37
# ... and of the median pairwise difference (the Shamos estimator), 0.86.
PAIRWISE_EFFICIENCY = 0.86


class Noise(NamedTuple):
    """The between-run noise added to single-process CIs: tau (1 sd of log ratio), the degrees
    of freedom of the tests (inf: a stated value, not estimated), and where it came from:
    "estimated" (the spread of the cases' ratios), "calibration" or "floor"."""

    tau: float
    df: float
    source: str
    estimate: float | None = None  # the spread's estimate, where one was made
    estimate_df: float = math.inf  # its degrees of freedom


def between_run_floor(device: str | None) -> tuple[float, str]:
    """BETWEEN_RUN_FLOOR for a run's env["device"] ('cpu', 'cuda', 'cuda:1') and the kind it was
    read for; an unknown device gets the largest floor (the conservative side) and kind ''."""
    kind = str(device or "").split(":")[0]
    if kind in BETWEEN_RUN_FLOOR:
        return BETWEEN_RUN_FLOOR[kind], kind
    return max(BETWEEN_RUN_FLOOR.values()), ""


def pick_noise(
    judged: list[RatioCI],
    floor: bool,
    calibrated: float | None,
    device: str | None,
    groups: Sequence[str] | None = None,
) -> Noise | None:
    """The between-run noise for a comparison whose judged single-process cases are `judged`:
    the larger of the estimate from their spread (between_run_noise, when there are enough)
    and, with `floor`, the stated noise: the calibration's measured value, else the device's
    BETWEEN_RUN_FLOOR. The spread sees how cases move apart, never a shift of the whole run
    (a process's own speed, 5% sd on this project's VM: docs/regression-gate.md "Method"),
    which the stated noise holds; so an estimate never goes below it. `groups`: each judged
    case's backend, for the spread inside each (between_run_noise). None: within-run CIs
    only."""
    estimate = between_run_noise(judged, groups)
    stated = None
    if floor:
        stated = (Noise(calibrated, math.inf, "calibration") if calibrated is not None
                  else Noise(between_run_floor(device)[0], math.inf, "floor"))  # fmt: skip
    if estimate is not None and (stated is None or estimate[0] >= stated.tau):
        return Noise(*estimate, "estimated", estimate[0])
    if stated is not None and estimate is not None:
        return stated._replace(estimate=estimate[0], estimate_df=estimate[1])
    return stated


class Judgement(NamedTuple):
    """One case's verdict, the reason in words, and the tests behind it (the CaseComparison
    fields of the same names)."""

    verdict: Verdict
    note: str
    tests: dict[str, Any]


def not_judged(ci: RatioCI, why: list[str]) -> Judgement:
    """An unreliable case of separate runs (`why`: each side's reason): its CI is kept for
    information, no test is run and it is in no Holm family."""
    tests = {"log_center": ci.log_center, "log_se": ci.log_se,
             "df": ci.df if math.isfinite(ci.df) else None, "processes": ci.processes}  # fmt: skip
    note = f"not judged, timed while unreliable ({'; '.join(why)}); ratio and CI for information"
    return Judgement(Verdict.UNRELIABLE, note, tests)


def no_same_when_busy(j: Judgement, why: list[str]) -> Judgement:
    """An interleaved (`ab`) case judged although a side was timed on a busy machine: a stall
    that holds up every call for a fixed time (a descheduled thread) slows both
    sides alike and pulls their ratio toward 1, so a real 15% slowdown can read 1.00x with a
    tight CI. A regression or an improvement seen through that is only understated; "same" is
    not supported, and becomes inconclusive."""
    if j.verdict is not Verdict.SAME:
        return j
    note = (f"inconclusive, not same: timed while unreliable ({'; '.join(why)}), and a stall "
            "that slows both sides alike pulls the ratio toward 1")  # fmt: skip
    return Judgement(Verdict.INCONCLUSIVE, note, j.tests)


def judge(cis: list[RatioCI], margin: float, alpha: float = ALPHA) -> list[Judgement]:
    """The judgement of each case of one comparison; Holm runs over all of them, separately for
    the regression and the improvement family."""
    from normbench.stats import holm, p_above, p_below

    p_reg = [p_above(c.log_center, c.log_se, 1 + margin, c.df) for c in cis]
    p_imp = [p_below(c.log_center, c.log_se, 1 - margin, c.df) for c in cis]
    h_reg, h_imp = holm(p_reg), holm(p_imp)
    out = []
    for i, ci in enumerate(cis):
        verdict, note = _verdict(ci, margin, h_reg[i], h_imp[i], alpha, len(cis))
        tests = {
            "log_center": ci.log_center,
            "log_se": ci.log_se,
            "df": ci.df if math.isfinite(ci.df) else None,
            "p_regression": p_reg[i],
            "p_improvement": p_imp[i],
            "p_regression_holm": h_reg[i],
            "p_improvement_holm": h_imp[i],
            "processes": ci.processes,
        }
        out.append(Judgement(verdict, note, tests))
    return out


def _verdict(
    ci: RatioCI, d: float, p_reg: float, p_imp: float, alpha: float, m: int
) -> tuple[Verdict, str]:
    up, down = 1 + d, 1 - d
    if ci.low > up:
        if p_reg <= alpha:
            return Verdict.REGRESSION, f"slower: the whole CI is above +{d:.0%}"
        return Verdict.INCONCLUSIVE, (
            f"CI above +{d:.0%} but not significant after Holm over {m} cases "
            f"(adjusted p {p_reg:.2g} > {alpha:g})"
        )
    if ci.high < down:
        if p_imp <= alpha:
            return Verdict.IMPROVEMENT, f"faster: the whole CI is below -{d:.0%}"
        return Verdict.INCONCLUSIVE, (
            f"CI below -{d:.0%} but not significant after Holm over {m} cases "
            f"(adjusted p {p_imp:.2g} > {alpha:g})"
        )
    if ci.low >= down and ci.high <= up:
        return Verdict.SAME, f"within +-{d:.0%}"
    if ci.processes:  # the processes' spread sets the width: more processes narrow it
        hint = f"; over {ci.processes} processes a side: raise --processes"
    else:
        hint = "; too few samples: raise --time-budget" if min(ci.n_base, ci.n_new) < 8 else ""
    return Verdict.INCONCLUSIVE, (
        f"CI {ci.low:.3f}-{ci.high:.3f} straddles the +-{d:.0%} margin{hint}"
    )


def between_run_noise(
    cis: list[RatioCI], groups: Sequence[str] | None = None
) -> tuple[float, float] | None:
    """(tau, df): the standard deviation of log(ratio) between runs that the within-run CIs miss,
    from the spread of the cases' ratios, and the degrees of freedom of that estimate.
    tau^2 = S^2 - median(s_i^2), S a robust scale of log r_i:
    - with `groups` (each case's backend) of which at least MIN_CASES_FOR_SPREAD cases have
      another case in their group: the spread inside the groups, from the pairwise differences
      of cases in one group (S = 1.4826 median|log r_i - log r_j| / sqrt 2, each difference
      free of its group's own shift). A change that moves one backend as a whole, the usual
      change a gate is for, is no spread there; around the overall median it is, and at half
      of the cases it looked like noise of the change's own size (a 3x slowdown of one of two
      backends passed as "inconclusive");
    - else the normalized median absolute deviation around their median (robust to a minority
      of truly changed cases).
    None with fewer than MIN_CASES_FOR_SPREAD cases (too few to tell noise from change)."""
    import numpy as np

    if len(cis) < MIN_CASES_FOR_SPREAD:
        return None
    logs = np.log([c.ratio for c in cis])
    inside = _spread_inside(logs, groups) if groups is not None and len(set(groups)) > 1 else None
    if inside is not None:
        scale, df = inside
    else:
        scale = 1.4826 * float(np.median(np.abs(logs - np.median(logs))))
        df = max(2.0, math.floor(MAD_EFFICIENCY * (len(cis) - 1)))
    within = float(np.median([c.log_se**2 for c in cis]))
    tau = math.sqrt(max(0.0, scale**2 - within))
    return tau, df


def _spread_inside(logs: Any, groups: Sequence[str]) -> tuple[float, float] | None:
    """(scale, df) from the pairwise differences of log ratios inside each group, or None where
    fewer than MIN_CASES_FOR_SPREAD cases share a group with another (between_run_noise)."""
    import numpy as np

    members: dict[str, list[float]] = {}
    for g, v in zip(groups, logs):
        members.setdefault(g, []).append(float(v))
    paired = [vs for vs in members.values() if len(vs) > 1]
    n_paired = sum(len(vs) for vs in paired)
    if n_paired < MIN_CASES_FOR_SPREAD:
        return None
    diffs = [abs(a - b) for vs in paired for i, a in enumerate(vs) for b in vs[i + 1 :]]
    scale = 1.4826 * float(np.median(diffs)) / math.sqrt(2)
    return scale, max(2.0, math.floor(PAIRWISE_EFFICIENCY * (n_paired - len(paired))))


def widen_by(ci: RatioCI, noise: Noise) -> RatioCI:
    """The CI with the between-run noise added. Where the stated noise stood in for a smaller
    estimate, the wider of the two CIs: the stated tau on normal tests, or the estimate on its
    Student's t, which for a case whose own CI is wide can be the wider (a small family's t
    quantile against 1.96). Never narrower than either alone."""
    out = widen(ci, noise.tau, noise.df)
    if noise.estimate is not None and noise.source != "estimated":
        other = widen(ci, noise.estimate, noise.estimate_df)
        if other.high / other.low > out.high / out.low:
            out = other
    return out


def widen(ci: RatioCI, tau: float, df: float) -> RatioCI:
    """The CI with the between-run variance added, s' = sqrt(s^2 + tau^2), same center, and a
    Student-t quantile: tau is an estimate, so the tests use t with `df` degrees of freedom."""
    from dataclasses import replace

    from scipy.stats import t

    se = math.sqrt(ci.log_se**2 + tau**2)
    q = float(t.ppf(0.975, df))
    c = ci.log_center
    return replace(ci, low=math.exp(c - q * se), high=math.exp(c + q * se), log_se=se, df=df)
