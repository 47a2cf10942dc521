"""The regression gate: two timing runs in, one verdict per case out (docs/numerics.md section 7).

Per case, the ratio of medians new/base with a bootstrap 95% CI (blocks of consecutive samples
resampled, `stats.block_median_replicates`). With margin d (default 5%, raised to a calibrated
A/A margin when one is given):

- regression:   the whole CI is above 1 + d, AND the one-sided test of "ratio <= 1 + d" still
                rejects after Holm's step-down correction over all compared cases (alpha 0.05);
- improvement:  the whole CI is below 1 - d, AND "ratio >= 1 - d" is rejected after Holm;
- same:         the whole CI is inside [1 - d, 1 + d];
- inconclusive: anything else (a CI straddling a margin, or above it but not significant once
                the number of cases is accounted for).

Noise between the two runs, which no within-run CI sees, is estimated from the spread of the
cases' log ratios (robust MAD, minus the within-run variance) and added to every case's variance;
the CIs and tests then use Student's t (normbench.compare_judge: `between_run_noise`, `widen`;
off with between_runs="off"). With too few cases to estimate it, a stated floor per device kind
(`BETWEEN_RUN_FLOOR`) or a calibration's measured value is added instead. docs/regression-gate.md
has the measured reason.

A case timed while the machine could not be trusted (`SpeedResult.unreliable`) is `unreliable`
in a comparison of separate runs: its ratio and CI are shown, it is never judged, and it is left
out of the noise estimate, the Holm family and the geometric mean. Interleaved sides (`ab`,
`judge_unreliable`) share the machine's state block by block and are judged, with a warning.
Timings that are not positive numbers (NaN, zero, negative) are `not compared`, with the reason.

The p-values come from the same bootstrap: log(ratio) ~ Normal(c, s) with c the midpoint of the
95% percentile interval and s its half-width / 1.96, so "CI wholly above 1 + d" is exactly
"p < 0.025". Holm needs continuous p-values (0.05 / 300 is finer than any percentile of 2000
replicates). With one case the CI rule is the binding one; with m cases the smallest p must be
below 0.05 / m. The family-wise rate of false regressions is at most 0.05 (Holm alone guarantees
it; the CI condition can only remove rejections), and likewise for improvements.

A case that ran in the baseline but fails its correctness gate or errors in the new run is
`broken`: a gate must not pass a kernel that now computes wrong numbers. Cases on one side only
are listed as `missing` / `new`, never dropped silently.

The runs are read through their typed results (`SpeedResult`, its `time`); the answer is a Run
of `CaseComparison`s and a `GeomeanRatio` (normbench.results.compare) with findings by level
(normbench.compare_summary). The library never exits: `exit_code(run)` tells the CLI what to
return (0; 1 on a confirmed regression or a broken case; 4 when it could not judge: a case was
unreliable or none was compared); incompatible or unreadable baselines raise BaselineError (3).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from normbench.compare_inputs import (
    Calibration,
    check_calibration_setup,
    load_baseline,
    load_calibrated_noise,
    load_calibration,
    read_calibration,
)
from normbench.compare_judge import (
    ALPHA,
    BETWEEN_RUN_FLOOR,
    Judgement,
    between_run_noise,
    judge,
    no_same_when_busy,
    not_judged,
    pick_noise,
    widen,
    widen_by,
)
from normbench.compare_pairs import (
    block_of,
    case_comparison,
    check_cache_states,
    check_compatible,
    comparable,
    fingerprint_diffs,
    one_backend_each,
    pair_results,
    process_groups_of,
    samples_of,
    unpaired_verdict,
    unreliable_sides,
)
from normbench.compare_summary import (
    CANT_JUDGE,
    DEFAULT_THRESHOLD,
    FAILING,
    VERDICTS,
    counts,
    exit_code,
    findings,
    geomean,
    headline,
)
from normbench.errors import BaselineError, UsageError
from normbench.results import Level, Run, load_run
from normbench.results.compare import GEOMEAN_ID, CaseComparison, GeomeanRatio, Verdict

if TYPE_CHECKING:
    from normbench.stats import RatioCI

# The gate's public names (some live in the modules split from this one).
__all__ = [
    "ALPHA", "BETWEEN_RUN_FLOOR", "BROKEN", "CANT_JUDGE", "DEFAULT_THRESHOLD", "FAILING",
    "IMPROVEMENT", "INCONCLUSIVE", "MISSING", "NEW", "NOT_COMPARED", "REGRESSION", "RESAMPLES",
    "SAME", "UNRELIABLE", "VERDICTS", "CompareConfig", "Judgement", "between_run_noise",
    "check_compatible", "compare_files", "compare_runs", "counts", "exit_code",
    "fingerprint_diffs", "geomean", "headline", "judge", "load_baseline", "load_calibrated_noise",
    "load_calibration", "parse_threshold", "read_calibration", "widen",
]  # fmt: skip

SUITE = "compare"
RESAMPLES = 2000
REGRESSION, IMPROVEMENT, SAME, INCONCLUSIVE = (
    Verdict.REGRESSION, Verdict.IMPROVEMENT, Verdict.SAME, Verdict.INCONCLUSIVE,
)  # fmt: skip
BROKEN, MISSING, NEW, NOT_COMPARED, UNRELIABLE = (
    Verdict.BROKEN, Verdict.MISSING, Verdict.NEW, Verdict.NOT_COMPARED, Verdict.UNRELIABLE,
)  # fmt: skip


def parse_threshold(text: str | float) -> float:
    """'5%' -> 0.05; a bare number is a fraction below 1 ('0.05') and a percent from 1 on ('5')."""
    raw = str(text).strip()
    try:
        value = float(raw.rstrip("%").strip())
    except ValueError:
        raise UsageError(f"--threshold expects a percentage such as 5%, got {raw!r}") from None
    if raw.endswith("%") or value >= 1:
        value /= 100
    if not 0 < value < 0.5 or not math.isfinite(value):
        raise UsageError(f"--threshold must be between 0% and 50%, got {raw!r}")
    return value


@dataclass(frozen=True)
class CompareConfig:
    threshold: float = DEFAULT_THRESHOLD
    alpha: float = ALPHA
    resamples: int = RESAMPLES
    seed: int = 0
    force: bool = False
    # The smallest margin a calibration (`normbench calibrate`) found to keep A/A false alarms
    # under 1%: the margin used is never below it.
    calibrated_margin: float | None = None
    # How cases are matched: "case" (the full case id) or "group" (the id without the backend,
    # for comparing two implementations of the same case: `normbench ab`).
    match: str = "case"
    # Noise between two runs that no within-run CI can see (a case timed a few seconds later
    # lands elsewhere): "auto" estimates it from the spread of the cases' ratios and widens
    # every CI by it; "off" trusts the within-run CIs alone (interleaved data, or a quiet GPU).
    between_runs: str = "auto"
    # What the two sides are called in notes and tables ("A", "B" for `normbench ab`).
    labels: tuple[str, str] = ("base", "new")
    # Judge a case timed while the machine could not be trusted (SpeedResult.unreliable) like
    # any other, with a warning naming it. Right for sides interleaved block by block (`ab`
    # sets it): a busy moment slows both alike. Separate runs: such a case is not judged.
    judge_unreliable: bool = False
    # With too few cases to estimate the between-run noise, assume the calibration's measured
    # value or compare_judge.BETWEEN_RUN_FLOOR instead of the within-run CIs alone. Off for
    # interleaved sides (`ab`) and for `calibrate`, which measures that noise.
    between_run_floor: bool = True
    # The between-run noise (1 sd of log ratio) a `calibrate` of separate runs measured.
    calibrated_noise: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 0.5:
            raise UsageError(f"threshold must be between 0% and 50%, got {self.threshold:.1%}")
        if not 0 < self.alpha < 1:
            raise UsageError(f"alpha must be between 0 and 1, got {self.alpha}")
        from normbench.validate import check_seed

        check_seed(self.seed)
        if self.resamples < 100:
            raise UsageError(f"resamples must be at least 100, got {self.resamples}")
        if self.match not in ("case", "group"):
            raise UsageError(f"match must be 'case' or 'group', got {self.match!r}")
        if self.between_runs not in ("auto", "off"):
            raise UsageError(f"between_runs must be 'auto' or 'off', got {self.between_runs!r}")
        noise = self.calibrated_noise
        if noise is not None and not (math.isfinite(noise) and noise >= 0):
            raise UsageError(f"calibrated_noise must be a number >= 0, got {noise!r}")

    @property
    def margin(self) -> float:
        return max(self.threshold, self.calibrated_margin or 0.0)


# --- the comparison ----------------------------------------------------------------------------


def _seed(seed: int, key: str) -> list[int]:
    # Per-case streams: a case's CI does not depend on which other cases are in the run.
    return [seed, zlib.crc32(key.encode())]


def compare_runs(
    base: Run,
    new: Run,
    config: CompareConfig | None = None,
    names: tuple[str, str] = ("baseline", "new run"),
) -> Run:
    """Compare two runs case by case; a Run of suite 'compare' with one CaseComparison per case
    (the ratio new/base, its CI and verdict), the GeomeanRatio over the compared cases, and the
    findings. Raises BaselineError when the fingerprints differ (unless config.force) or a run
    holds no timed cases."""
    import numpy as np

    from normbench.stats import WORKSPACE, log_ratio_replicates, process_ci, ratio_ci

    config = config or CompareConfig()
    diffs = check_compatible(base.env, new.env, config.force, names[0])
    regrouped = one_backend_each(base, new) if config.match == "case" else None
    if regrouped:
        config = replace(config, match="group")
    pairs = pair_results(base, new, config.match, names)  # refuses runs of other suites first
    diffs += check_cache_states(base, new, config.force, names[0])
    d = config.margin
    workspace = np.empty(WORKSPACE, dtype=np.int64)

    cis: dict[str, RatioCI] = {}
    reps: dict[str, np.ndarray] = {}
    per_process: set[str] = set()  # cases whose CI is over processes: never widened
    unreliable: dict[str, list[str]] = {}  # key -> each unreliable side's reason
    for p in pairs:
        if not comparable(p):
            continue
        assert p.base is not None and p.new is not None
        seed = _seed(config.seed, p.key)
        groups = process_groups_of(p.base), process_groups_of(p.new)
        if groups[0] and groups[1]:
            ci = process_ci(*groups)
            # Replicates for the geometric mean's CI, drawn from the case's t distribution.
            rng = np.random.default_rng(seed)
            rep = ci.log_center + ci.log_se * rng.standard_t(ci.df, config.resamples)
            per_process.add(p.key)
        else:
            b, n = samples_of(p.base), samples_of(p.new)
            rep = log_ratio_replicates(
                b, block_of(p.base), n, block_of(p.new), config.resamples, seed, workspace
            )
            ci = ratio_ci(b, n, rep)
        if math.isfinite(ci.low):
            cis[p.key] = ci
            reps[p.key] = rep
            if why := unreliable_sides(p, config.labels):
                unreliable[p.key] = why
    # Separate runs: an unreliable case is shown, never judged, and is left out of the noise
    # estimate, the Holm family and the geometric mean. Interleaved sides (`ab`) share the
    # machine's state block by block, so there it is judged, with a warning.
    shown_only = set() if config.judge_unreliable else set(unreliable)
    judged_keys = [k for k in cis if k not in shown_only]
    # The between-run noise is what one process's CI misses; a CI over processes holds it.
    single_keys = [k for k in judged_keys if k not in per_process]
    single = [cis[k] for k in single_keys]
    backend_of = {p.key: p.new.backend for p in pairs if p.new is not None}
    noise = None
    if config.between_runs == "auto" and any(k not in per_process for k in cis):
        device = base.env.get("device") or new.env.get("device")
        noise = pick_noise(single, config.between_run_floor, config.calibrated_noise, device,
                           [backend_of[k] for k in single_keys])  # fmt: skip
    tau = noise.tau if noise else None
    if noise and tau:
        cis = {k: c if k in per_process else widen_by(c, noise) for k, c in cis.items()}
    judged = dict(zip(judged_keys, judge([cis[k] for k in judged_keys], d, config.alpha)))

    results: list[CaseComparison | GeomeanRatio] = []
    for k, why in unreliable.items():
        if k in judged:  # ab judges its busy cases, with a warning, but never calls them same
            judged[k] = no_same_when_busy(judged[k], why)
    for p in pairs:
        if p.key in judged:
            results.append(case_comparison(p, judged[p.key], d, cis[p.key]))
        elif p.key in cis:
            results.append(case_comparison(p, not_judged(cis[p.key], unreliable[p.key]), d,
                                       cis[p.key]))  # fmt: skip
        else:
            verdict, note = unpaired_verdict(p, config.labels)
            results.append(case_comparison(p, Judgement(verdict, note, {}), d, None))

    run = Run(SUITE, dict(new.env), _config_dict(base, new, config, names, diffs), results)
    run.config["between_run_noise"] = tau
    run.config["between_run_df"] = noise.df if noise and math.isfinite(noise.df) else None
    run.config["between_run_source"] = noise.source if noise else None
    run.config["between_run_estimate"] = noise.estimate if noise else None
    run.config["per_process_cases"] = sum(1 for k in judged_keys if k in per_process)
    run.config["unreliable_cases"] = {k: "; ".join(v) for k, v in unreliable.items()}
    if judged_keys:
        run.results.append(_geomean([reps[k] for k in judged_keys],
                                    [cis[k] for k in judged_keys], tau))  # fmt: skip
    run.findings = findings(run, config, diffs, base, new)
    if regrouped:
        run.add(f"One backend on each side ({regrouped[0]} in {names[0]}, {regrouped[1]} in "
                f"{names[1]}): cases are matched on the case without the backend, as "
                "`normbench ab` matches them.", Level.NOTE)  # fmt: skip
    return run


def _geomean(reps: list, cis: list[RatioCI], tau: float | None) -> GeomeanRatio:
    """The geometric mean of the ratios, its CI from the mean of the cases' replicates."""
    import numpy as np

    from normbench.stats import mean_log_interval

    lo, hi = mean_log_interval(reps) or (math.nan, math.nan)
    point = float(np.exp(np.mean([math.log(c.ratio) for c in cis])))
    if tau:  # independent between-run noise per case: tau^2 / m on the mean
        from scipy.stats import norm

        z = float(norm.ppf(0.975))  # two-sided 95%: the level of the quantiles above
        se = math.sqrt(((hi - lo) / (2 * z)) ** 2 + tau**2 / len(cis))
        mid = (lo + hi) / 2
        lo, hi = mid - z * se, mid + z * se
    m = len(cis)
    return GeomeanRatio(
        GEOMEAN_ID, value=point, ci_low=float(np.exp(lo)), ci_high=float(np.exp(hi)), n=m,
        note=f"geometric mean of new/base over {m} cases",
    )  # fmt: skip


def _config_dict(base: Run, new: Run, config: CompareConfig, names, diffs) -> dict[str, Any]:
    return {
        "base": {"name": names[0], "created": base.created, "suite": base.suite},
        "new": {"name": names[1], "created": new.created, "suite": new.suite},
        "threshold": config.threshold,
        "calibrated_margin": config.calibrated_margin,
        "margin": config.margin,
        "alpha": config.alpha,
        "resamples": config.resamples,
        "seed": config.seed,
        "match": config.match,
        "between_runs": config.between_runs,
        "judge_unreliable": config.judge_unreliable,
        "between_run_floor": config.between_run_floor,
        "calibrated_noise": config.calibrated_noise,
        "labels": list(config.labels),
        "forced": bool(diffs),
        "fingerprint_diffs": diffs,
        **config.extra,
    }


# --- files -------------------------------------------------------------------------------------


def compare_files(
    base_path: str | Path,
    new_path: str | Path,
    config: CompareConfig | None = None,
    calibration: Calibration | None = None,
) -> Run:
    """`compare`: two saved runs, and the `calibrate` run whose margin and noise `config`
    carries, checked to come from the new run's setup."""
    from normbench.env import FINGERPRINT_KEYS

    base = load_baseline(base_path)
    try:
        new = load_run(new_path)
    except BaselineError as exc:  # the new run is input, not a baseline: exit 2
        raise UsageError(f"new run {exc}") from None
    config = config or CompareConfig()
    if not config.force and not any(k in new.env for k in FINGERPRINT_KEYS):
        # Then every fingerprint key would differ, and the baseline be blamed (exit 3).
        raise UsageError(
            f"new run {new_path}: it has no device fingerprint ('env'; a .partial.jsonl has "
            "none), so nothing says where it was timed; pass --force to compare it anyway"
        )
    if calibration is not None:
        check_calibration_setup(calibration, new.env, config.force)
    run = compare_runs(base, new, config, (f"baseline {Path(base_path).name}",
                                           f"new run {Path(new_path).name}"))  # fmt: skip
    run.config["base"]["path"] = str(base_path)
    run.config["new"]["path"] = str(new_path)
    return run
