"""The stability run: every case of the matrix judged through the CaseLoop, then the range
sweep, then the findings (case counts, the worst case per implementation, determinism and each
safe range) and the run's worst verdict for --fail-on."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from normbench.results import Finding, Level, Run, Status
from normbench.results.stability import StabilityResult, SweepPointResult, SweepRangeResult
from normbench.suites.common import CaseLoop, PreparedCache, Progress
from normbench.suites.stability.judge import (
    SUITE,
    arm_interpreter,
    evaluate,
    judged_mode,
    not_applicable,
)
from normbench.suites.stability.result import judged, skipped
from normbench.suites.stability.sweep import run_sweeps
from normbench.verdicts import FAIL, PASS, RANK, WARN, worst

if TYPE_CHECKING:
    from normbench.cases import Case
    from normbench.config import StabilityConfig


class StabilityCase:
    """One case of the matrix: applicable? prepare, evaluate, its result."""

    def __init__(self, config: StabilityConfig) -> None:
        self.config = config
        self.cache = PreparedCache(config.selection.seed)
        # Determinism is a property of the algorithm, not the input: checked on one distribution.
        self.det_dist = config.dists[0] if config.determinism else None

    def __call__(self, case: Case) -> StabilityResult:
        from normbench.inputs import get_distribution
        from normbench.registry import get_backend
        from normbench.variants import get_variant

        backend = get_backend(case.backend)
        case = judged_mode(backend, case)
        reason = not_applicable(backend, case)
        if reason:
            return skipped(case, reason)
        variant = get_variant(case.variant)
        p = self.cache.get(case)
        assert not isinstance(p, str)  # the synthetic tensors are always made
        trap = get_distribution(case.dist).trap_for(case.dtype)
        det = case.dist == self.det_dist
        return judged(case, lambda: evaluate(backend, variant, p, trap=trap, determinism=det))


# --- the findings --------------------------------------------------------------------------


# A case that could not run (out of memory, the harness or a plugin's sys.exit failed on it):
# no verdict. It is kept apart from FAIL, which says the implementation's numbers are wrong.
ERROR = "error"


def _verdict(r: StabilityResult) -> str:
    """The verdict a case counts as: PASS, WARN, FAIL, or ERROR where it has none."""
    return r.verdict.value if r.verdict else ERROR


def worst_per_implementation(results: list[StabilityResult]) -> list[dict[str, Any]]:
    """For each variant/backend: verdict counts and the worst case with its reason."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in results:
        entry = out.setdefault(
            (r.variant, r.backend),
            {"implementation": f"{r.variant}/{r.backend}", PASS: 0, WARN: 0, FAIL: 0,
             ERROR: 0, "skipped": 0, "worst": None, "nondeterministic": 0},
        )  # fmt: skip
        if r.status is Status.SKIPPED:
            entry["skipped"] += 1
            continue
        verdict = _verdict(r)
        entry[verdict] += 1
        if r.deterministic is False:
            entry["nondeterministic"] += 1
        # An error ranks below a judged FAIL and above PASS/WARN, so it is shown, never hidden.
        score = (RANK.get(verdict, 1.5), r.tol_ratio or 0.0)
        if entry["worst"] is None or score > entry["worst"][0]:
            entry["worst"] = (score, r)
    return list(out.values())


def describe_case(r: StabilityResult) -> str:
    return f"{r.dtype} N={r.dim if r.dim is not None else '?'} {r.dist or ''}"


def findings(run: Run) -> list[Finding]:
    """The run's summary: case counts, the worst case per implementation, determinism, and the
    safe range of each sweep."""
    cases = run.of(StabilityResult)
    counts = {s: 0 for s in (PASS, WARN, FAIL, ERROR, "skipped")}
    for r in cases:
        counts["skipped" if r.status is Status.SKIPPED else _verdict(r)] += 1
    out = [Finding("Cases: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + ".")]
    parts = []
    for e in worst_per_implementation(cases):
        if e["worst"] is None:
            continue
        r = e["worst"][1]
        # A case the harness could not run has no verdict: the tables call it ERROR.
        v = r.verdict.value if r.verdict else "ERROR"
        parts.append(
            f"{e['implementation']} {v}" + ("" if v == PASS else f" ({describe_case(r)}: {r.note})")
        )
    if parts:
        out.append(Finding("Worst case per implementation: " + "; ".join(parts) + "."))
    checked = [r for r in cases if r.deterministic is not None]
    if checked:
        bad = sorted({f"{r.variant}/{r.backend}" for r in checked if not r.deterministic})
        out.append(Finding(
            "Determinism: " + (
                f"two runs differ bitwise for {', '.join(bad)}." if bad else
                ("the 1 checked case" if len(checked) == 1 else f"all {len(checked)} checked "
                 "cases") + " bitwise identical over two runs, "
                + ("fwd and bwd." if any(r.mode != "fwd" for r in checked) else "fwd.")
            )
        ))  # fmt: skip
    for r in run.of(SweepRangeResult):
        high = r.high
        if high is not None and high.status is Status.OK:
            dim = r.shape.dim if r.shape else "?"
            out.append(Finding(f"Safe range {r.variant}/{r.backend}/{r.dtype} N={dim}: {r.span}."))
    return out


def judged_verdicts(run: Run, kinds: tuple[type, ...] = ()) -> list[str]:
    """The verdicts of a run's judged cases and sweep points (`kinds`: of those result types
    only): an implementation that raised is a FAIL (it carries that verdict); a case that could
    not run (no verdict) is not judged (`unjudged`)."""
    rows = [r for kind in kinds or (StabilityResult, SweepPointResult) for r in run.of(kind)]
    return [
        r.verdict.value for r in rows if r.status is not Status.SKIPPED and r.verdict is not None
    ]


def run_verdict(run: Run) -> str:
    """The worst verdict of a run's judged cases (`judged_verdicts`)."""
    return worst(judged_verdicts(run))


def unjudged(run: Run) -> int:
    """Cases, sweep points and sweeps that could not run (an error without a verdict)."""
    rows = (*run.of(StabilityResult), *run.of(SweepPointResult), *run.of(SweepRangeResult))
    return sum(1 for r in rows if r.status is Status.ERROR and getattr(r, "verdict", None) is None)


def failed(run: Run, level: str) -> bool:
    """--fail-on: True when any case reached `level` (FAIL, or WARN which includes FAIL)."""
    return RANK[run_verdict(run)] >= RANK[level]


def gate_finding(run: Run, level: str) -> Finding:
    """What --fail-on made of the run, so an exit 1 or 4 in a CI log says why: the cases and
    the sweep's points (each one scale of a case) that reached the level, counted apart."""
    what = "FAIL" if level == FAIL else "WARN or FAIL"
    counts = [
        (sum(1 for v in judged_verdicts(run, (kind,)) if RANK[v] >= RANK[level]), noun)
        for kind, noun in ((StabilityResult, "case"), (SweepPointResult, "sweep point"))
    ]
    if reached := [f"{n} {noun}{'s' if n > 1 else ''}" for n, noun in counts if n]:
        return Finding(f"--fail-on {level}: {' and '.join(reached)} reached {what}: exit 1.",
                       Level.WARNING)  # fmt: skip
    if n := unjudged(run):
        return Finding(
            f"--fail-on {level}: no case reached {what}, but {n} could not run (error rows "
            "without a verdict): exit 4, the gate could not judge them.",
            Level.WARNING,
        )
    return Finding(f"--fail-on {level}: no case reached {what}.")


def exit_code(config: StabilityConfig, run: Run) -> int:
    """130 when Ctrl-C stopped the run, 1 when --fail-on's level was reached, 4 under --fail-on
    when no case reached it but some could not run (the gate could not judge them), else 0."""
    if run.interrupted:
        return 130
    if not config.fail_on:
        return 0
    if failed(run, config.fail_on):
        return 1
    return 4 if unjudged(run) else 0


def run_stability(
    config: StabilityConfig, progress: Progress | None = None, debug: bool = False
) -> Run:
    """Run the stability suite and return the run (reports are written by the caller)."""
    if config.inputs:  # a capture's layers instead of the synthetic inputs
        from normbench.suites.stability.replay import layer_findings, run_replay

        run = run_replay(config, progress, debug)  # its findings: what was captured
        run.findings.extend([*findings(run), *layer_findings(run.of(StabilityResult))])
    else:
        run = _run_matrix(config, progress, debug)
        run.findings.extend(findings(run))
    if config.fail_on and not run.interrupted:
        run.findings.append(gate_finding(run, config.fail_on))
    return run


def _run_matrix(config: StabilityConfig, progress: Progress | None, debug: bool) -> Run:
    """The synthetic matrix, then the range sweeps."""
    import torch

    from normbench.env import fingerprint

    start = time.perf_counter()
    arm_interpreter()
    sel = config.selection
    env = fingerprint(sel.device, torch.get_num_threads())
    cases = sel.cases(config.dists)
    loop = CaseLoop(SUITE, progress, debug, result=StabilityResult, metric="verdict", unit="")
    results = loop.run(cases, StabilityCase(config))
    interrupted = loop.interrupted
    if config.sweep and not interrupted:
        swept, interrupted = run_sweeps(config, progress, debug)
        results = [*results, *swept]
    return Run(SUITE, env, config.to_dict(), list(results), interrupted=interrupted,
               wall_s=time.perf_counter() - start)  # fmt: skip
