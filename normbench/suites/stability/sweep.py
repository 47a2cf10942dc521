"""The dynamic-range sweep: scale `unit-max` inputs by 2^k and find where each implementation
stays PASS (`normbench stability --sweep-range LO:HI`).

`range_sweep` judges one implementation by name; the suite runs `sweep_case` for each of its
sweep cases (`sweep_cases`: the matrix's selection and --filter, on unit-max inputs) through the
shared CaseLoop, and writes each as typed results (`sweep_results`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from normbench.options import NormOptions
from normbench.results import CaseResult, Measurement, Status
from normbench.results.stability import SweepPointResult, SweepRangeResult
from normbench.suites.common import CaseLoop, Progress, not_run
from normbench.suites.stability.judge import (
    CPU_ROWS,
    SUITE,
    ImplementationError,
    arm_interpreter,
    evaluate,
    judged_mode,
    not_applicable,
)
from normbench.verdicts import FAIL, PASS, RANK, WARN, CaseVerdict

if TYPE_CHECKING:
    from normbench.cases import Case
    from normbench.config import Selection, StabilityConfig

SWEEP_DIST = "unit-max"
DEFAULT_SWEEP = tuple(range(-24, 17))
SKIPPED = "skipped"  # a point's verdict where the scaled input is not representable


@dataclass(frozen=True)
class SweepPoint:
    k: int
    verdict: str  # PASS / WARN / FAIL, or "skipped" where the scaled input is not representable
    reason: str
    tol_ratio: float | None = None  # the worst tensor's error / tolerance
    max_ulp: float | None = None  # ... and its error in output ulps

    @property
    def scale(self) -> float:
        return 2.0**self.k


@dataclass(frozen=True)
class DynamicRange:
    """Where an implementation stays PASS as its inputs are scaled by 2^k. The base input is
    `unit-max` (largest |x| of each row 0.999), so at scale 2^k the largest element is just below
    2^k. The safe range is the contiguous run of PASS around k = 0 (the longest run if 0 fails)."""

    backend: str
    variant: str
    dtype: str
    dim: int
    points: tuple[SweepPoint, ...]
    smallest_pass_k: int | None
    largest_pass_k: int | None

    @property
    def smallest_pass_scale(self) -> float | None:
        return None if self.smallest_pass_k is None else 2.0**self.smallest_pass_k

    @property
    def largest_pass_scale(self) -> float | None:
        return None if self.largest_pass_k is None else 2.0**self.largest_pass_k

    @property
    def per_k(self) -> dict[int, str]:
        return {pt.k: pt.verdict for pt in self.points}

    def edge(self, k: int | None) -> bool:
        """True when the safe range reaches the end of the sweep (the true limit lies beyond)."""
        judged = [pt.k for pt in self.points if pt.verdict in (PASS, WARN, FAIL)]
        return k is not None and bool(judged) and k in (judged[0], judged[-1])

    def first_failure_above(self) -> SweepPoint | None:
        if self.largest_pass_k is None:
            return None
        return next((pt for pt in self.points if pt.k > self.largest_pass_k), None)

    def first_failure_below(self) -> SweepPoint | None:
        if self.smallest_pass_k is None:
            return None
        below = [pt for pt in self.points if pt.k < self.smallest_pass_k]
        return below[-1] if below else None

    def describe(self) -> str:
        if self.smallest_pass_k is None:
            return "no scale passes"
        lo, hi = self.smallest_pass_k, self.largest_pass_k
        text = f"PASS from 2^{lo}{' (sweep edge)' if self.edge(lo) else ''}"
        text += f" to 2^{hi}{' (sweep edge)' if self.edge(hi) else ''}"
        above = self.first_failure_above()
        if above is not None:
            text += f"; at 2^{above.k} {above.verdict}: {above.reason}"
        return text


def safe_run(points: Iterable[SweepPoint]) -> tuple[int | None, int | None]:
    """The contiguous run of PASS containing k = 0, else the longest run (ties: the one nearest
    to k = 0)."""
    pts = list(points)
    runs: list[tuple[int, int]] = []
    start = None
    for i, pt in enumerate(pts):
        if pt.verdict == PASS and start is None:
            start = i
        if pt.verdict != PASS and start is not None:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, len(pts) - 1))
    if not runs:
        return None, None
    for a, b in runs:
        if pts[a].k <= 0 <= pts[b].k:
            return pts[a].k, pts[b].k
    a, b = max(runs, key=lambda r: (r[1] - r[0], -min(abs(pts[r[0]].k), abs(pts[r[1]].k))))
    return pts[a].k, pts[b].k


def sweep_case(
    case: Case,
    ks: Iterable[int] = DEFAULT_SWEEP,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> DynamicRange:
    """Judge the case at each scale 2^k of its (unit-max) inputs. `progress(k)` is called
    before each scale."""
    import torch

    from normbench.dtypes import to_torch
    from normbench.gate import prepare
    from normbench.registry import get_backend
    from normbench.variants import get_variant

    b, v = get_backend(case.backend), get_variant(case.variant)
    case = judged_mode(b, case)  # a forward-only kernel: its forward swept
    points = []
    reason = not_applicable(b, case)
    for k in ks:
        if progress:
            progress(k)
        if reason:
            points.append(SweepPoint(k, SKIPPED, reason))
            continue
        p = prepare(v, case, seed, scale=2.0**k)
        if not all(bool(torch.isfinite(p.inputs[a]).all()) for a in v.activations):
            top = torch.finfo(to_torch(case.dtype)).max
            why = f"inputs at 2^{k} overflow {case.dtype} (max {top:.4g})"
            points.append(SweepPoint(k, SKIPPED, why))
            continue
        try:
            cv = evaluate(b, v, p, trap="")
        except ImplementationError as exc:
            if exc.oom:  # the machine could not run this scale: not run, not a FAIL
                points.append(SweepPoint(k, SKIPPED, str(exc)))
                continue
            cv = CaseVerdict(FAIL, f"raised {exc}")
        w = cv.worst_check
        ratio, ulps = (w.error.worst_ratio, w.max_ulp) if w is not None else (None, None)
        points.append(SweepPoint(k, cv.verdict, cv.reason, ratio, ulps))
    lo, hi = safe_run(pt for pt in points if pt.verdict != SKIPPED)
    return DynamicRange(b.name, v.name, case.dtype, case.shape.dim, tuple(points), lo, hi)


def range_sweep(
    backend: str,
    variant: str,
    dtype: str,
    ks: Iterable[int] = DEFAULT_SWEEP,
    *,
    dim: int = 1000,
    rows: int = CPU_ROWS,
    device: str = "cpu",
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    options: NormOptions | None = None,
    heads: int = 1,
) -> DynamicRange:
    """Scale the `unit-max` input by 2^k for each k and judge the implementation at each scale;
    return the smallest and largest scale where the verdict stays PASS. `progress(k)` is called
    before each scale. Raises UsageError for an unknown backend, variant or dtype."""
    from normbench.cases import Case
    from normbench.dtypes import canonical
    from normbench.registry import get_backend
    from normbench.variants import Shape, get_variant

    arm_interpreter()
    b, v, dtype = get_backend(backend), get_variant(variant), canonical(dtype)
    opts = (options or NormOptions()).for_case(v.name, dtype)
    case = Case(v.name, b.name, dtype, Shape(1, rows, dim, heads), "fwd+bwd", device, SWEEP_DIST,
                opts)  # fmt: skip
    return sweep_case(case, ks, seed, progress)


def sweep_results(res: DynamicRange, case: Case) -> list[CaseResult]:
    """A sweep as typed results: one per scale (case id `<case>/x2^k`), then the range. A sweep
    none of whose scales ran is the range alone, skipped with the first reason."""
    if res.points and all(pt.verdict == SKIPPED for pt in res.points):
        reason = res.points[0].reason
        return [not_run(SweepRangeResult, case, Status.SKIPPED, reason, "safe_scale_max", "x")]
    out: list[CaseResult] = []
    for pt in res.points:
        status = {SKIPPED: Status.SKIPPED, FAIL: Status.MISMATCH}.get(pt.verdict, Status.OK)
        m = Measurement("sweep_verdict", RANK.get(pt.verdict), "", status=status, note=pt.reason)
        point = SweepPointResult.of_case(
            case, [m], k=pt.k, verdict=pt.verdict, tol_ratio=pt.tol_ratio, max_ulp=pt.max_ulp
        )
        out.append(replace(point, case_id=f"{case.id}/x2^{pt.k}"))
    above, below = res.first_failure_above(), res.first_failure_below()
    ends = [
        Measurement("safe_scale_max", res.largest_pass_scale, "x",
                    note=f"at 2^{above.k}: {above.reason}" if above else ""),
        Measurement("safe_scale_min", res.smallest_pass_scale, "x",
                    note=f"at 2^{below.k}: {below.reason}" if below else ""),
    ]  # fmt: skip
    lo, hi = res.smallest_pass_k, res.largest_pass_k
    out.append(SweepRangeResult.of_case(case, ends, low_k=lo, high_k=hi, low_edge=res.edge(lo),
                                        high_edge=res.edge(hi)))  # fmt: skip
    return out


def sweep_cases(sel: Selection) -> list[Case]:
    """The sweep's cases: each selected variant, backend, dtype, N (and head count) on one
    batch of unit-max rows, forward and backward; --filter applies to these ids as it does to
    the matrix's (cases.expand, as Selection.cases)."""
    from normbench.cases import expand
    from normbench.variants import Shape

    rows = sel.batches[0] * sel.seqs[0]
    shapes = [Shape(1, rows, n, h) for h in sel.heads for n in sel.dims]
    return expand(list(sel.variants), list(sel.backends), list(sel.dtypes), shapes, ["fwd+bwd"],
                  sel.device, (SWEEP_DIST,), sel.pattern, sel.options)  # fmt: skip


def run_sweeps(
    config: StabilityConfig, progress: Progress | None = None, debug: bool = False
) -> tuple[list[CaseResult], bool]:
    """Every sweep case through the CaseLoop (errors, too-big shapes and Ctrl-C as for the
    matrix); the results and whether it was interrupted. Progress counts each scale."""
    ks: Sequence[int] = config.sweep
    cases = sweep_cases(config.selection)
    steps = len(ks)
    at = {case: i for i, case in enumerate(cases)}

    def per_case(i: int, total: int, text: str) -> None:
        assert progress is not None
        progress(i * steps, total * steps, text)

    def work(case: Case) -> list[CaseResult]:
        def tick(k: int) -> None:
            if progress:
                done = at[case] * steps + ks.index(k)
                progress(done, len(cases) * steps, f"sweep {case.id} x2^{k}")

        return sweep_results(sweep_case(case, ks, config.selection.seed, tick), case)

    loop = CaseLoop(
        SUITE, per_case if progress else None, debug, result=SweepRangeResult,
        metric="safe_scale_max", unit="x",
    )  # fmt: skip
    return loop.run(cases, work), loop.interrupted
