"""Reading a comparison: the verdict counts, the exit code (0, 1 on a confirmed regression or
a broken case, CANT_JUDGE when it could not judge), the headline, and the findings a
comparison run ends with (RESULT: the verdict and how it was reached; WARNING: the answer may be
wrong, e.g. different fingerprints; NOTE: how to read it)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from normbench.compare_inputs import MIN_CALIBRATION_COMPARISONS
from normbench.compare_judge import MIN_CASES_FOR_SPREAD, between_run_floor
from normbench.results import Finding, Level
from normbench.results.compare import CaseComparison, GeomeanRatio, Verdict

if TYPE_CHECKING:
    from normbench.compare import CompareConfig
    from normbench.results import Run

DEFAULT_THRESHOLD = 0.05
CANT_JUDGE = 4  # the exit code of "could not judge" (docs/design.md "Exit codes")
VERDICTS = tuple(Verdict)  # the order of the counts in the headline
FAILING = tuple(v for v in Verdict if v.failing)


def counts(run: Run) -> dict[Verdict, int]:
    out = dict.fromkeys(VERDICTS, 0)
    for r in run.of(CaseComparison):
        out[r.verdict] += 1
    return out


def geomean(run: Run) -> GeomeanRatio | None:
    return next(iter(run.of(GeomeanRatio)), None)


def judged(run: Run) -> int:
    """How many cases were judged on a CI (the Holm family)."""
    return sum(1 for r in run.of(CaseComparison) if r.compared)


def cant_judge(run: Run) -> bool:
    """The gate could not judge: a compared case was unreliable, or no case was compared at all
    (none in common, or none comparable), which a PASS would fake as green."""
    return bool(counts(run)[Verdict.UNRELIABLE]) or judged(run) == 0


def exit_code(run: Run) -> int:
    """1 when a regression is confirmed or a case that ran in the baseline is now broken (this
    wins); else CANT_JUDGE (4) when the gate could not judge (`cant_judge`); else 0."""
    c = counts(run)
    if any(c[v] for v in FAILING):
        return 1
    return CANT_JUDGE if cant_judge(run) else 0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def headline(run: Run) -> str:
    """'PASS: no confirmed regression (...)', 'FAIL: 2 confirmed regressions (...)' or
    "CAN'T JUDGE: 1 unreliable case not judged, ... (...)"."""
    c = counts(run)
    margin = run.config.get("margin", DEFAULT_THRESHOLD)
    parts = ", ".join(f"{c[v]} {v.value}" for v in VERDICTS if c[v]) or "no cases"
    if any(c[v] for v in FAILING):
        what = _plural(c[Verdict.REGRESSION], "confirmed regression")
        what += f", {c[Verdict.BROKEN]} broken" if c[Verdict.BROKEN] else ""
        return f"FAIL: {what} (margin +-{margin:.0%}; {parts})."
    if cant_judge(run):
        m, bad = judged(run), c[Verdict.UNRELIABLE]
        if not bad:
            why = "no case was compared (none in common, or none comparable on both sides)"
        elif not m:
            why = f"{_plural(bad, 'unreliable case')} not judged, no case judged"
        else:
            why = (f"{_plural(bad, 'unreliable case')} not judged, no confirmed regression "
                   f"among the {m} judged")  # fmt: skip
        return f"CAN'T JUDGE: {why} (margin +-{margin:.0%}; {parts})."
    return f"PASS: no confirmed regression (margin +-{margin:.0%}; {parts})."


def findings(
    run: Run, config: CompareConfig, diffs: list[str], base: Run, new: Run
) -> list[Finding]:
    """The comparison's summary: the headline first, then the method, the warnings and notes."""
    m = judged(run)
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
    out += _noise_findings(run, config, m - k, m)
    out += _unreliable_findings(run, config)
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


def _noise_findings(run: Run, config: CompareConfig, single: int, m: int) -> list[Finding]:
    """How the between-run noise of the `single` single-process cases (of `m` judged) was set:
    estimated, the calibration's, the floor, or none (the within-run CIs alone)."""
    tau, source = run.config.get("between_run_noise"), run.config.get("between_run_source")
    if source == "estimated" and tau:
        which = f"{single} single-process" if single < m else str(m)
        return [Finding(
            f"Between-run noise estimated from the spread of the {which} cases' ratios: "
            f"+-{math.expm1(tau):.1%} (1 sd), added to their CIs, tests on Student's t with "
            f"{run.config.get('between_run_df'):g} df (--between-runs off: within-run CIs only)."
        )]  # fmt: skip
    estimate = run.config.get("between_run_estimate")
    few = (
        f"{_plural(single, 'judged case')} {'is' if single == 1 else 'are'} too few to "
        f"estimate it (needs {MIN_CASES_FOR_SPREAD})"
        if estimate is None
        else f"the spread of the {single} cases' ratios gives +-{math.expm1(estimate):.1%}, less: "
        "a shift of the whole run, which no spread shows, is held by the larger; a case whose "
        "CI is wider with the estimate on its Student's t keeps that one"
    )
    if source == "calibration" and tau is not None:
        return [Finding(
            f"Between-run noise: +-{math.expm1(tau):.1%} (1 sd, tau {tau:.3f}), as the "
            f"calibration (--calibration) measured it on separate runs, added to the CIs "
            f"({few}).",
            Level.NOTE,
        )]  # fmt: skip
    if source == "floor" and tau is not None:
        kind = between_run_floor(run.env.get("device"))[1]
        device = {"cpu": "a CPU", "cuda": "a CUDA GPU"}.get(kind, "an unknown device")
        if config.calibrated_margin is not None:
            few += (
                "; the calibration has no noise of separate runs measured over "
                f"{MIN_CALIBRATION_COMPARISONS} A/A case comparisons or more (it was "
                "--interleaved, too small, or older)"
            )
        return [Finding(
            f"Between-run noise: the conservative floor of +-{tau:.0%} (1 sd of log ratio) for "
            f"{device}, added to the CIs ({few}; give --calibration FILE, a `normbench "
            "calibrate` of separate runs, for this machine's own).",
            Level.NOTE,
        )]  # fmt: skip
    if config.between_runs == "auto" and single < MIN_CASES_FOR_SPREAD and single:
        return [Finding(
            f"{single} compared cases are too few to estimate the between-run noise (needs "
            f"{MIN_CASES_FOR_SPREAD}): the CIs hold the within-run noise only.",
            Level.NOTE,
        )]  # fmt: skip
    return []


def _unreliable_findings(run: Run, config: CompareConfig) -> list[Finding]:
    """The cases timed while the machine could not be trusted: not judged (separate runs), or
    judged with a warning (interleaved sides, `ab`)."""
    bad: dict[str, str] = run.config.get("unreliable_cases") or {}
    if not bad:
        return []
    names = list(bad)
    shown = ", ".join(f"{k} ({bad[k]})" for k in names[:5])
    shown += f" and {len(names) - 5} more" if len(names) > 5 else ""
    n = _plural(len(names), "case")
    if config.judge_unreliable:
        text = (
            f"{n} timed while the machine was unreliable, judged anyway (both sides shared its "
            f"state block by block), never as same: {shown}."
        )
    else:
        text = (
            f"{n} not judged, timed while the machine was unreliable: {shown}. Re-measure on a "
            "quiet machine, or time both sides interleaved with `normbench ab`."
        )
    return [Finding(text, Level.WARNING)]


def _setup_notes(base: Run, new: Run) -> list[Finding]:
    """How the two runs were set up differently, where that alone moves timings."""
    out = []
    cfg_b, cfg_n = base.config, new.config
    for k in ("time_budget", "quick", "cache"):
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
