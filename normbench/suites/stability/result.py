"""A judged case as its typed result: the verdict (value 0/1/2 = PASS/WARN/FAIL, the reason as
its note), then every tensor's measures (normbench.results.stability)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from normbench.results import Measurement, Status
from normbench.results.stability import StabilityResult, Verdict
from normbench.suites.stability.judge import ImplementationError
from normbench.verdicts import FAIL, RANK, CaseVerdict

if TYPE_CHECKING:
    from normbench.cases import Case

# The unit of each tensor measure (TensorCheck.measures); the rest are counts.
UNITS = {"max_ulp": "ulp", "rel": "", "max_abs": "", "tol_ratio": "x"}


def case_result(case: Case, v: CaseVerdict, status: Status | None = None) -> StabilityResult:
    """The case's verdict (value 0/1/2 = PASS/WARN/FAIL, the reason as its note), then every
    tensor's measures and, where checked, whether two runs were bitwise identical."""
    status = status or (Status.MISMATCH if v.verdict == FAIL else Status.OK)
    out = [Measurement("verdict", RANK[v.verdict], "", status=status, note=v.reason)]
    for c in v.checks:
        for measure, value in c.measures().items():
            out.append(
                Measurement(f"{c.name}_{measure}", float(value), UNITS.get(measure, "count"))
            )
    if v.deterministic is not None:
        out.append(Measurement("deterministic", float(v.deterministic), "bool"))
    w = v.worst_check
    return StabilityResult.of_case(
        case, out, verdict=v.verdict, tensor=w.name if w else None,
        max_ulp=w.max_ulp if w else None, rel=w.error.rel if w else None,
        tol_ratio=w.error.worst_ratio if w else None, semantics=v.semantics_note or None,
        semantic_ratio=v.semantic_ratio, deterministic=v.deterministic,
    )  # fmt: skip


def skipped(case: Case, reason: str) -> StabilityResult:
    """A case not judged (the implementation does not apply, or its input cannot be made)."""
    skip = Measurement("verdict", None, "", status=Status.SKIPPED, note=reason)
    return StabilityResult.of_case(case, [skip], verdict=Verdict.SKIPPED)


def judged(case: Case, run: Callable[[], CaseVerdict]) -> StabilityResult:
    """The result of `run()` (the case's `evaluate`): its verdict, or where the implementation
    raised, a FAIL with what it raised; out of memory is an error row without a verdict."""
    try:
        v = run()
    except ImplementationError as exc:
        if exc.oom:  # could not run: an error row with the reason, not a numerical verdict
            err = Measurement("verdict", None, "", status=Status.ERROR, note=str(exc))
            return StabilityResult.of_case(case, [err])
        return case_result(case, CaseVerdict(FAIL, f"raised {exc}"), status=Status.ERROR)
    return case_result(case, v)
