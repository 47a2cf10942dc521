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
the CIs and tests then use Student's t (`between_run_noise`, `widen`; off with
between_runs="off"). docs/regression-gate.md has the measured reason.

The p-values come from the same bootstrap: log(ratio) ~ Normal(c, s) with c the midpoint of the
95% percentile interval and s its half-width / 1.96, so "CI wholly above 1 + d" is exactly
"p < 0.025". Holm needs continuous p-values (0.05 / 300 is finer than any percentile of 2000
replicates). With one case the CI rule is the binding one; with m cases the smallest p must be
below 0.05 / m. The family-wise rate of false regressions is at most 0.05 (Holm alone guarantees
it; the CI condition can only remove rejections), and likewise for improvements.

A case that ran in the baseline but fails its correctness gate or errors in the new run is
`broken`: a gate must not pass a kernel that now computes wrong numbers. Cases on one side only
are listed as `missing` / `new`, never dropped silently.

The library never exits: `exit_code(run)` tells the CLI what to return (0, or 1 on a confirmed
regression or a broken case); incompatible or unreadable baselines raise BaselineError (exit 3).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from normbench.errors import BaselineError, UsageError
from normbench.report import compare_view as _compare_view  # noqa: F401  (registers the view)

if TYPE_CHECKING:
    from normbench.results import Row, Run
    from normbench.stats import RatioCI

SUITE = "compare"
DEFAULT_THRESHOLD = 0.05
ALPHA = 0.05
RESAMPLES = 2000
REGRESSION, IMPROVEMENT, SAME, INCONCLUSIVE = "regression", "improvement", "same", "inconclusive"
BROKEN, MISSING, NEW, NOT_COMPARED = "broken", "missing", "new", "not compared"
VERDICTS = (REGRESSION, BROKEN, IMPROVEMENT, INCONCLUSIVE, SAME, MISSING, NEW, NOT_COMPARED)
FAILING = (REGRESSION, BROKEN)


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
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 0.5:
            raise UsageError(f"threshold must be between 0% and 50%, got {self.threshold:.1%}")
        if not 0 < self.alpha < 1:
            raise UsageError(f"alpha must be between 0 and 1, got {self.alpha}")
        if self.resamples < 100:
            raise UsageError(f"resamples must be at least 100, got {self.resamples}")
        if self.match not in ("case", "group"):
            raise UsageError(f"match must be 'case' or 'group', got {self.match!r}")
        if self.between_runs not in ("auto", "off"):
            raise UsageError(f"between_runs must be 'auto' or 'off', got {self.between_runs!r}")

    @property
    def margin(self) -> float:
        return max(self.threshold, self.calibrated_margin or 0.0)


# --- fingerprints ------------------------------------------------------------------------------


def fingerprint_diffs(base_env: dict, new_env: dict) -> list[str]:
    """'torch: 2.4.0 vs 2.5.1' for each fingerprint key on which two runs differ."""
    from normbench.env import FINGERPRINT_KEYS

    out = []
    for key in FINGERPRINT_KEYS:
        a, b = base_env.get(key), new_env.get(key)
        if str(a) != str(b):
            out.append(f"{key}: {_show(a)} vs {_show(b)}")
    return out


def _show(v: Any) -> str:
    return "missing" if v is None else str(v)


def check_compatible(
    base_env: dict, new_env: dict, force: bool, base_name: str = "baseline"
) -> list[str]:
    """The fingerprint differences; raises BaselineError (exit 3) when there are any, unless
    `force`."""
    diffs = fingerprint_diffs(base_env, new_env)
    if diffs and not force:
        raise BaselineError(
            f"{base_name} was measured on a different setup ({'; '.join(diffs)}): its timings "
            "are not comparable; re-measure the baseline here, or pass --force"
        )
    return diffs


# --- matching rows -----------------------------------------------------------------------------


def _group_id(r: Row) -> str:
    return r.case_id.replace(f"/{r.backend}/", "/", 1)


def timing_rows(run: Run, key: Callable[[Row], str], name: str) -> dict[str, Row]:
    """The run's `time` rows by key; a run with none (another suite) is refused."""
    rows: dict[str, Row] = {}
    for r in run.rows:
        if r.metric == "time":
            rows.setdefault(key(r), r)
    if not rows:
        raise BaselineError(
            f"{name} has no timing rows (suite {run.suite!r}): compare reads runs of "
            "`normbench speed` or `normbench ab`"
        )
    ok = [r for r in rows.values() if r.status == "ok"]
    if ok and not any(r.samples for r in ok):
        raise BaselineError(
            f"{name} holds no raw timing samples (saved without them?): the bootstrap needs "
            "them; re-run `normbench speed` with --format json"
        )
    return rows


@dataclass(frozen=True)
class _Pair:
    key: str
    base: Row | None
    new: Row | None


def pair_rows(base: Run, new: Run, match: str, names: tuple[str, str]) -> list[_Pair]:
    key = (lambda r: r.case_id) if match == "case" else _group_id
    b = timing_rows(base, key, names[0])
    n = timing_rows(new, key, names[1])
    keys = list(b) + [k for k in n if k not in b]
    return [_Pair(k, b.get(k), n.get(k)) for k in keys]


# --- the comparison ----------------------------------------------------------------------------


def _seed(seed: int, key: str) -> list[int]:
    # Per-case streams: a case's CI does not depend on which other cases are in the run.
    return [seed, zlib.crc32(key.encode())]


def _block(r: Row) -> int:
    try:
        return max(1, int(r.extra.get("block_size") or 1))
    except (TypeError, ValueError):
        return 1


def compare_runs(
    base: Run,
    new: Run,
    config: CompareConfig | None = None,
    names: tuple[str, str] = ("baseline", "new run"),
) -> Run:
    """Compare two runs case by case; a Run of suite 'compare' with one `ratio` row per case
    (verdict and p-values in `extra`) and the summary lines. Raises BaselineError when the
    fingerprints differ (unless config.force) or a run holds no timing rows."""
    import numpy as np

    from normbench.results import Run
    from normbench.stats import WORKSPACE, log_ratio_replicates, process_ci, ratio_ci

    config = config or CompareConfig()
    diffs = check_compatible(base.env, new.env, config.force, names[0])
    pairs = pair_rows(base, new, config.match, names)
    d = config.margin
    workspace = np.empty(WORKSPACE, dtype=np.int64)

    cis: dict[str, RatioCI] = {}
    reps: list[np.ndarray] = []
    per_process: set[str] = set()  # cases whose CI is over processes: never widened
    for p in pairs:
        if not _comparable(p):
            continue
        seed = _seed(config.seed, p.key)
        groups = _processes(p.base), _processes(p.new)
        if groups[0] and groups[1]:
            ci = process_ci(*groups)
            # Replicates for the geometric mean's CI, drawn from the case's t distribution.
            rng = np.random.default_rng(seed)
            rep = ci.log_center + ci.log_se * rng.standard_t(ci.df, config.resamples)
            per_process.add(p.key)
        else:
            rep = log_ratio_replicates(
                p.base.samples, _block(p.base), p.new.samples, _block(p.new),
                config.resamples, seed, workspace,
            )  # fmt: skip
            ci = ratio_ci(p.base.samples, p.new.samples, rep)
        if math.isfinite(ci.low):
            cis[p.key] = ci
            reps.append(rep)
    # The between-run noise is what one process's CI misses; a CI over processes holds it.
    single = [c for k, c in cis.items() if k not in per_process]
    noise = between_run_noise(single) if config.between_runs == "auto" else None
    tau = noise[0] if noise else None
    if noise and tau:
        cis = {k: c if k in per_process else widen(c, *noise) for k, c in cis.items()}
    judged = dict(zip(cis, judge(list(cis.values()), d, config.alpha)))

    rows = []
    for p in pairs:
        if p.key in judged:
            verdict, note, extra = judged[p.key]
            rows.append(_row(p, verdict, note, d, cis[p.key], extra))
        else:
            verdict, note = _unpaired(p, config.labels)
            rows.append(_row(p, verdict, note, d, None, {}))

    run = Run(SUITE, dict(new.env), _config_dict(base, new, config, names, diffs), rows)
    run.config["between_run_noise"] = tau
    run.config["between_run_df"] = noise[1] if noise else None
    run.config["per_process_cases"] = len(per_process)
    geo = None
    if reps:
        mean_rep = np.mean(np.vstack(reps), axis=0)
        mean_rep = mean_rep[np.isfinite(mean_rep)]
        lo, hi = np.quantile(mean_rep, [0.025, 0.975])
        point = float(np.exp(np.mean([math.log(c.ratio) for c in cis.values()])))
        if tau:  # independent between-run noise per case: tau^2 / m on the mean
            from normbench.stats import Z95

            se = math.sqrt(((hi - lo) / (2 * Z95)) ** 2 + tau**2 / len(cis))
            mid = (lo + hi) / 2
            lo, hi = mid - Z95 * se, mid + Z95 * se
        geo = (point, float(np.exp(lo)), float(np.exp(hi)))
        run.rows.append(_geomean_row(geo, len(cis)))
    run.summary = _summary(run, config, diffs, geo, base, new)
    return run


MIN_CASES_FOR_SPREAD = 6


# Efficiency of the MAD as a scale estimator for normal data (0.37): its estimate is about as
# uncertain as a standard deviation from 0.37 x (m - 1) degrees of freedom.
MAD_EFFICIENCY = 0.37


def between_run_noise(cis: list[RatioCI]) -> tuple[float, float] | None:
    """(tau, df): the standard deviation of log(ratio) between runs that the within-run CIs miss,
    from the spread of the cases' ratios, and the degrees of freedom of that estimate.
    tau^2 = MAD^2 - median(s_i^2), MAD the normalized median absolute deviation of log r_i
    around their median (robust to a few truly changed cases). None with fewer than
    MIN_CASES_FOR_SPREAD cases (too few to tell noise from change)."""
    import numpy as np

    if len(cis) < MIN_CASES_FOR_SPREAD:
        return None
    logs = np.log([c.ratio for c in cis])
    mad = 1.4826 * float(np.median(np.abs(logs - np.median(logs))))
    within = float(np.median([c.log_se**2 for c in cis]))
    tau = math.sqrt(max(0.0, mad**2 - within))
    return tau, max(2.0, math.floor(MAD_EFFICIENCY * (len(cis) - 1)))


def widen(ci: RatioCI, tau: float, df: float) -> RatioCI:
    """The CI with the between-run variance added, s' = sqrt(s^2 + tau^2), same center, and a
    Student-t quantile: tau is an estimate, so the tests use t with `df` degrees of freedom."""
    from dataclasses import replace

    from scipy.stats import t

    se = math.sqrt(ci.log_se**2 + tau**2)
    q = float(t.ppf(0.975, df))
    c = ci.log_center
    return replace(ci, low=math.exp(c - q * se), high=math.exp(c + q * se), log_se=se, df=df)


def _processes(r: Row) -> list[list[float]] | None:
    """The row's samples split by process (`extra["processes"]`: how many samples each worker
    took, in order, as `ab` writes with --processes 2 or more); None for one process or counts
    that do not add up to the samples."""
    from normbench.stats import process_groups

    counts = r.extra.get("processes")
    if not isinstance(counts, list) or len(counts) < 2:
        return None
    if not all(isinstance(c, int) and c > 0 for c in counts) or sum(counts) != len(r.samples):
        return None
    return process_groups(r.samples, counts)


def _comparable(p: _Pair) -> bool:
    return bool(
        p.base and p.new and p.base.status == "ok" and p.new.status == "ok"
        and len(p.base.samples) > 0 and len(p.new.samples) > 0
    )  # fmt: skip


def judge(cis: list[RatioCI], margin: float, alpha: float = ALPHA) -> list[tuple[str, str, dict]]:
    """(verdict, note, p-values) for each case of one comparison; Holm runs over all of them,
    separately for the regression and the improvement family."""
    from normbench.stats import holm, p_above, p_below

    p_reg = [p_above(c.log_center, c.log_se, 1 + margin, c.df) for c in cis]
    p_imp = [p_below(c.log_center, c.log_se, 1 - margin, c.df) for c in cis]
    h_reg, h_imp = holm(p_reg), holm(p_imp)
    out = []
    for i, ci in enumerate(cis):
        verdict, note = _verdict(ci, margin, h_reg[i], h_imp[i], alpha, len(cis))
        extra = {
            "log_center": ci.log_center,
            "log_se": ci.log_se,
            "df": ci.df if math.isfinite(ci.df) else None,
            "p_regression": p_reg[i],
            "p_improvement": p_imp[i],
            "p_regression_holm": h_reg[i],
            "p_improvement_holm": h_imp[i],
        }
        out.append((verdict, note, extra))
    return out


def _verdict(ci: RatioCI, d: float, p_reg: float, p_imp: float, alpha: float, m: int):
    up, down = 1 + d, 1 - d
    if ci.low > up:
        if p_reg <= alpha:
            return REGRESSION, f"slower: the whole CI is above +{d:.0%}"
        return INCONCLUSIVE, (
            f"CI above +{d:.0%} but not significant after Holm over {m} cases "
            f"(adjusted p {p_reg:.2g} > {alpha:g})"
        )
    if ci.high < down:
        if p_imp <= alpha:
            return IMPROVEMENT, f"faster: the whole CI is below -{d:.0%}"
        return INCONCLUSIVE, (
            f"CI below -{d:.0%} but not significant after Holm over {m} cases "
            f"(adjusted p {p_imp:.2g} > {alpha:g})"
        )
    if ci.low >= down and ci.high <= up:
        return SAME, f"within +-{d:.0%}"
    if ci.processes:  # the processes' spread sets the width: more processes narrow it
        hint = f"; over {ci.processes} processes a side: raise --processes"
    else:
        hint = "; too few samples: raise --time-budget" if min(ci.n_base, ci.n_new) < 8 else ""
    return INCONCLUSIVE, f"CI {ci.low:.3f}-{ci.high:.3f} straddles the +-{d:.0%} margin{hint}"


def _unpaired(p: _Pair, names: tuple[str, str]) -> tuple[str, str]:
    if p.new is None:
        return MISSING, f"only in {names[0]}: not measured in {names[1]}"
    if p.base is None:
        return NEW, f"not in {names[0]}: nothing to compare with"
    b, n = p.base, p.new
    if b.status == "ok" and n.status in ("mismatch", "error"):
        return BROKEN, f"ok in {names[0]}, {n.status} in {names[1]}: {n.note}".rstrip(": ")
    for name, r in ((names[0], b), (names[1], n)):
        if r.status != "ok":
            return NOT_COMPARED, f"{name}: {r.status}" + (f" ({r.note})" if r.note else "")
    return INCONCLUSIVE, "no raw samples to bootstrap"


def _row(p: _Pair, verdict: str, note: str, d: float, ci, extra: dict) -> Row:
    from normbench.results import Row

    ref = p.base or p.new
    assert ref is not None
    if ci is not None:
        status = "ok"
    elif verdict == BROKEN:
        status = p.new.status  # type: ignore[union-attr]
    else:
        status = "skipped"
    extra = {
        "verdict": verdict,
        "margin": d,
        "base_ms": p.base.value if p.base else None,
        "new_ms": p.new.value if p.new else None,
        "base_n": len(p.base.samples) if p.base else 0,
        "new_n": len(p.new.samples) if p.new else 0,
        "base_case": p.base.case_id if p.base else None,
        "new_case": p.new.case_id if p.new else None,
        **extra,
    }
    return Row(
        case_id=p.key,
        suite=SUITE,
        variant=ref.variant,
        backend=ref.backend if p.base is None or p.new is None or
        p.base.backend == p.new.backend else f"{p.base.backend}->{p.new.backend}",
        dtype=ref.dtype,
        shape=ref.shape,
        mode=ref.mode,
        metric="ratio",
        value=ci.ratio if ci is not None else None,
        unit="x",
        status=status,
        note=note,
        ci_low=ci.low if ci is not None else None,
        ci_high=ci.high if ci is not None else None,
        n=min(ci.n_base, ci.n_new) if ci is not None else None,
        extra=extra,
    )  # fmt: skip


def _geomean_row(geo: tuple[float, float, float], m: int) -> Row:
    from normbench.results import Row

    return Row(
        case_id="suite/geomean", suite=SUITE, variant="", backend="", dtype="", shape="",
        mode="", metric="geomean_ratio", value=geo[0], unit="x", ci_low=geo[1], ci_high=geo[2],
        n=m, note=f"geometric mean of new/base over {m} cases",
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
        "labels": list(config.labels),
        "forced": bool(diffs),
        "fingerprint_diffs": diffs,
        **config.extra,
    }


# --- reading the result ------------------------------------------------------------------------


def case_rows(run: Run) -> list[Row]:
    return [r for r in run.rows if r.metric == "ratio"]


def counts(run: Run) -> dict[str, int]:
    out = dict.fromkeys(VERDICTS, 0)
    for r in case_rows(run):
        out[r.extra.get("verdict", INCONCLUSIVE)] += 1
    return out


def geomean(run: Run) -> Row | None:
    return next((r for r in run.rows if r.metric == "geomean_ratio"), None)


def exit_code(run: Run) -> int:
    """1 when a regression is confirmed or a case that ran in the baseline is now broken."""
    c = counts(run)
    return 1 if any(c[v] for v in FAILING) else 0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def headline(run: Run) -> str:
    """'PASS: no confirmed regression (...)' or 'FAIL: 2 confirmed regressions (...)'."""
    c = counts(run)
    margin = run.config.get("margin", DEFAULT_THRESHOLD)
    parts = ", ".join(f"{c[v]} {v}" for v in VERDICTS if c[v]) or "no cases"
    if any(c[v] for v in FAILING):
        what = _plural(c[REGRESSION], "confirmed regression")
        what += f", {c[BROKEN]} broken" if c[BROKEN] else ""
        return f"FAIL: {what} (margin +-{margin:.0%}; {parts})."
    return f"PASS: no confirmed regression (margin +-{margin:.0%}; {parts})."


def _summary(run: Run, config: CompareConfig, diffs, geo, base: Run, new: Run) -> list[str]:
    m = sum(1 for r in case_rows(run) if r.status == "ok")
    lines = [headline(run)]
    margin = f"margin +-{config.margin:.0%}"
    if config.calibrated_margin and config.calibrated_margin > config.threshold:
        margin += f" (raised from {config.threshold:.0%} to the calibrated A/A margin)"
    k = run.config.get("per_process_cases") or 0
    how = f"ratio of medians new/base with a block-bootstrap 95% CI ({config.resamples} resamples)"
    if k and k == m:
        how = (
            "each side timed in several processes: ratio of the geometric means of the "
            "processes' medians, Welch's 95% t-interval over the processes (the process is the "
            "unit, as in pyperf)"
        )
    lines.append(
        f"Verdicts: {how}, {margin}, Holm-corrected over {m} compared cases at alpha "
        f"{config.alpha:g}."
    )
    if k and k < m:
        lines.append(
            f"{k} of the {m} cases were timed in several processes per side: their CI is "
            "Welch's t-interval over the processes' medians."
        )
    tau = run.config.get("between_run_noise")
    if tau:
        which = f"{m - k} single-process" if k else str(m)
        lines.append(
            f"Between-run noise estimated from the spread of the {which} cases' ratios: "
            f"+-{math.expm1(tau):.1%} (1 sd), added to their CIs, tests on Student's t with "
            f"{run.config.get('between_run_df'):g} df (--between-runs off: within-run CIs only)."
        )
    elif config.between_runs == "auto" and m - k < MIN_CASES_FOR_SPREAD and k < m:
        lines.append(
            f"Note: {m - k} compared cases are too few to estimate the between-run noise (needs "
            f"{MIN_CASES_FOR_SPREAD}): the CIs hold the within-run noise only."
        )
    if geo:
        lines.append(
            f"Geometric-mean ratio new/base over {m} cases: {geo[0]:.3f}x "
            f"(95% CI {geo[1]:.3f}-{geo[2]:.3f})."
        )
    if diffs:
        lines.append("Warning: fingerprints differ (--force): " + "; ".join(diffs) + ".")
    for name, r in (("baseline", base), ("new run", new)):
        if r.interrupted:
            lines.append(f"Warning: the {name} was interrupted: some cases are missing.")
    c = counts(run)
    if c[MISSING]:
        lines.append(f"{c[MISSING]} case(s) only in the baseline, listed as 'missing'.")
    if c[NEW]:
        lines.append(f"{c[NEW]} case(s) only in the new run, listed as 'new'.")
    cfg_b, cfg_n = base.config, new.config
    for k in ("time_budget", "quick", "hot"):
        if k in cfg_b and k in cfg_n and cfg_b[k] != cfg_n[k]:
            lines.append(f"Note: the runs used different {k} ({cfg_b[k]} vs {cfg_n[k]}).")
    memory = (("cpu_huge_pages", "CPU huge pages", "THP_MEM_ALLOC_ENABLE"),
              ("cpu_steady_heap", "the steady heap", "NORMBENCH_STEADY_HEAP"))  # fmt: skip
    for key, what, var in memory:
        b, n = base.env.get(key), new.env.get(key)
        if None not in (b, n) and b != n and base.env.get("device") == "cpu":
            lines.append(
                f"Note: {what}: {'on' if b else 'off'} in the baseline, "
                f"{'on' if n else 'off'} in the new run ({var}); "
                "allocation-heavy cases differ for that reason alone."
            )
    return lines


# --- files -------------------------------------------------------------------------------------


def load_calibration(path: str | Path) -> float:
    """The margin a `normbench calibrate` run recommends (a fraction)."""
    from normbench.results import load_run

    run = load_run(path)
    row = next((r for r in run.rows if r.metric == "min_margin" and r.value is not None), None)
    if run.suite != "calibrate" or row is None:
        raise BaselineError(f"{path}: not a `normbench calibrate` run (no min_margin row)")
    return float(row.value) / 100


def load_baseline(path: str | Path) -> Run:
    """load_run, with 'baseline' in front of any problem (BaselineError: exit 3)."""
    from normbench.results import load_run

    try:
        return load_run(path)
    except BaselineError as exc:
        raise BaselineError(f"baseline {exc}") from None


def compare_files(
    base_path: str | Path, new_path: str | Path, config: CompareConfig | None = None
) -> Run:
    from normbench.results import load_run

    base = load_baseline(base_path)
    try:
        new = load_run(new_path)
    except BaselineError as exc:  # the new run is input, not a baseline: exit 2
        raise UsageError(f"new run {exc}") from None
    config = config or CompareConfig()
    run = compare_runs(base, new, config, (f"baseline {Path(base_path).name}",
                                           f"new run {Path(new_path).name}"))  # fmt: skip
    run.config["base"]["path"] = str(base_path)
    run.config["new"]["path"] = str(new_path)
    return run
