"""Reading a comparison: the verdict counts, the exit code, the headline, and the findings a
comparison run ends with (RESULT: the verdict and how it was reached; WARNING: the answer may be
wrong, e.g. different fingerprints; NOTE: how to read it)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from normbench.compare_judge import MIN_CASES_FOR_SPREAD
from normbench.results import Finding, Level
from normbench.results.compare import CaseComparison, GeomeanRatio, Verdict

if TYPE_CHECKING:
    from normbench.compare import CompareConfig
    from normbench.results import Run

DEFAULT_THRESHOLD = 0.05
VERDICTS = tuple(Verdict)  # the order of the counts in the headline
FAILING = tuple(v for v in Verdict if v.failing)


def counts(run: Run) -> dict[Verdict, int]:
    out = dict.fromkeys(VERDICTS, 0)
    for r in run.of(CaseComparison):
        out[r.verdict] += 1
    return out


def geomean(run: Run) -> GeomeanRatio | None:
    return next(iter(run.of(GeomeanRatio)), None)


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
    parts = ", ".join(f"{c[v]} {v.value}" for v in VERDICTS if c[v]) or "no cases"
    if any(c[v] for v in FAILING):
        what = _plural(c[Verdict.REGRESSION], "confirmed regression")
        what += f", {c[Verdict.BROKEN]} broken" if c[Verdict.BROKEN] else ""
        return f"FAIL: {what} (margin +-{margin:.0%}; {parts})."
    return f"PASS: no confirmed regression (margin +-{margin:.0%}; {parts})."


def findings(
    run: Run, config: CompareConfig, diffs: list[str], base: Run, new: Run
) -> list[Finding]:
    """The comparison's summary: the headline first, then the method, the warnings and notes."""
    m = sum(1 for r in run.of(CaseComparison) if r.ok)
    out = [Finding(headline(run))]
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
    out.append(Finding(
        f"Verdicts: {how}, {margin}, Holm-corrected over {m} compared cases at alpha "
        f"{config.alpha:g}."
    ))  # fmt: skip
    if k and k < m:
        out.append(Finding(
            f"{k} of the {m} cases were timed in several processes per side: their CI is "
            "Welch's t-interval over the processes' medians."
        ))  # fmt: skip
    tau = run.config.get("between_run_noise")
    if tau:
        which = f"{m - k} single-process" if k else str(m)
        out.append(Finding(
            f"Between-run noise estimated from the spread of the {which} cases' ratios: "
            f"+-{math.expm1(tau):.1%} (1 sd), added to their CIs, tests on Student's t with "
            f"{run.config.get('between_run_df'):g} df (--between-runs off: within-run CIs only)."
        ))  # fmt: skip
    elif config.between_runs == "auto" and m - k < MIN_CASES_FOR_SPREAD and k < m:
        out.append(Finding(
            f"{m - k} compared cases are too few to estimate the between-run noise (needs "
            f"{MIN_CASES_FOR_SPREAD}): the CIs hold the within-run noise only.",
            Level.NOTE,
        ))  # fmt: skip
    geo = geomean(run)
    if geo is not None:
        out.append(Finding(
            f"Geometric-mean ratio new/base over {m} cases: {geo.value:.3f}x "
            f"(95% CI {geo.ci_low:.3f}-{geo.ci_high:.3f})."
        ))  # fmt: skip
    if diffs:
        out.append(Finding("fingerprints differ (--force): " + "; ".join(diffs) + ".",
                           Level.WARNING))  # fmt: skip
    for name, r in (("baseline", base), ("new run", new)):
        if r.interrupted:
            out.append(Finding(f"the {name} was interrupted: some cases are missing.",
                               Level.WARNING))  # fmt: skip
    c = counts(run)
    if c[Verdict.MISSING]:
        out.append(Finding(f"{c[Verdict.MISSING]} case(s) only in the baseline, listed as "
                           "'missing'."))  # fmt: skip
    if c[Verdict.NEW]:
        out.append(Finding(f"{c[Verdict.NEW]} case(s) only in the new run, listed as 'new'."))
    return out + _setup_notes(base, new)


def _setup_notes(base: Run, new: Run) -> list[Finding]:
    """How the two runs were set up differently, where that alone moves timings."""
    out = []
    cfg_b, cfg_n = base.config, new.config
    for k in ("time_budget", "quick", "hot"):
        if k in cfg_b and k in cfg_n and cfg_b[k] != cfg_n[k]:
            out.append(Finding(f"the runs used different {k} ({cfg_b[k]} vs {cfg_n[k]}).",
                               Level.NOTE))  # fmt: skip
    memory = (("cpu_huge_pages", "CPU huge pages", "THP_MEM_ALLOC_ENABLE"),
              ("cpu_steady_heap", "the steady heap", "NORMBENCH_STEADY_HEAP"))  # fmt: skip
    for key, what, var in memory:
        b, n = base.env.get(key), new.env.get(key)
        if None not in (b, n) and b != n and base.env.get("device") == "cpu":
            out.append(Finding(
                f"{what}: {'on' if b else 'off'} in the baseline, "
                f"{'on' if n else 'off'} in the new run ({var}); "
                "allocation-heavy cases differ for that reason alone.",
                Level.NOTE,
            ))  # fmt: skip
    return out
