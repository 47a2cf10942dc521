"""The stability suite: each implementation against the fp64 oracle on adversarial inputs.

Cases are variant x backend x dtype x input distribution x N, forward and backward. Each is
compared with the reference of the backend's declared semantics (eps, cast, residual), judged
PASS / WARN / FAIL with a reason in words (normbench.verdicts), checked for bitwise determinism,
and, with a sweep, scaled by 2^k to find the dynamic range where it stays PASS.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from normbench.options import ROW_NORMS, NormOptions
from normbench.suites.common import CaseLoop, PreparedCache, Progress, case_row, describe_error
from normbench.verdicts import FAIL, PASS, RANK, WARN, CaseVerdict, check_tensor, combine, worst

if TYPE_CHECKING:
    import torch

    from normbench.backends.base import Backend
    from normbench.cases import Case
    from normbench.config import StabilityConfig
    from normbench.gate import Prepared
    from normbench.results import Row, Run
    from normbench.variants import Variant

SUITE = "stability"
SWEEP_DIST = "unit-max"
DEFAULT_SWEEP = tuple(range(-24, 17))
# Rows of a case on the CPU: enough for row independence (the inf/NaN/zero inputs touch every
# other row) and a dW sum, few enough for Triton's interpreter.
CPU_ROWS = 4


class ImplementationError(Exception):
    """The implementation under test raised (not the harness): a FAIL with its message."""


def default_dists() -> tuple[str, ...]:
    from normbench.inputs import DISTRIBUTIONS

    return tuple(name for name, d in DISTRIBUTIONS.items() if d.default)


def arm_interpreter() -> None:
    """Import the Triton kernels first: without a GPU they set TRITON_INTERPRET, which Triton
    reads when it is first imported (anything importing triton earlier breaks the interpreter)."""
    import normbench.kernels  # noqa: F401  (never fails; unavailability is reported per case)


def tainted_rows(p: Prepared) -> torch.Tensor | None:
    """Bool per row: True where an activation input row holds an inf or NaN."""
    import torch

    rows = None
    for name in p.variant.activations:
        x = p.inputs[name]
        bad = (~torch.isfinite(x)).reshape(-1, x.shape[-1]).any(-1)
        rows = bad if rows is None else rows | bad
    return rows if rows is not None and bool(rows.any()) else None


def _run(fn: Callable[..., Any], p: Prepared, grads: bool) -> dict[str, torch.Tensor]:
    from normbench.gate import _evaluate

    tensors = p.leaves() if grads else dict(p.inputs)
    try:
        # inf/NaN inputs make numpy (Triton's interpreter) warn on every op: the verdict says it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return _evaluate(fn, p, tensors, grads)
    except Exception as exc:
        raise ImplementationError(describe_error(exc)) from exc


def _bitwise_differs(a: dict, b: dict) -> list[str]:
    from normbench.gate import _bitwise_equal

    return [k for k in a if k in b and not _bitwise_equal(a[k], b[k])]


def _relevant(variant: Variant, sem: Any) -> dict[str, Any]:
    return {f: getattr(sem, f) for f in variant.relevant}


def semantics_note(
    variant: Variant, sem: Any, p: Prepared, got: dict, grads: bool
) -> tuple[str, float | None]:
    """Where the declared semantics differ from the contract (docs/numerics.md 1), how far the
    output is from the contract's reference: reported as a difference, never as an error."""
    from normbench.gate import oracle
    from normbench.numerics import compare
    from normbench.variants import DEFAULT_SEMANTICS

    mine, contract = _relevant(variant, sem), _relevant(variant, DEFAULT_SEMANTICS)
    diff = [f"{k} {v}" for k, v in mine.items() if contract[k] != v]
    if not diff:
        return "", None
    if mine.get("cast") == "gemma":
        # (1 + w) is another parameterization of the weight, not a rounding of the contract.
        return "declared cast gemma: y = x_hat * (1 + w), compared with the Gemma reference", None
    ref, native = oracle(p, DEFAULT_SEMANTICS, grads)
    e = compare("y", got["y"], ref["y"], native["y"], p.dtype_of("y"))
    want = ", ".join(f"{k} {v}" for k, v in contract.items())
    note = (
        f"declared {', '.join(diff)}: y differs from the contract reference ({want}) by up to "
        f"{e.worst_ratio:.2g}x the tolerance (max abs {e.max_abs:.2g}); a semantic difference, "
        "not an error"
    )
    return note, e.worst_ratio


def evaluate(
    backend: Backend, variant: Variant, p: Prepared, *, trap: str = "", determinism: bool = False
) -> CaseVerdict:
    """Run the implementation on the prepared case (forward, and backward unless the mode is fwd)
    and judge every output and gradient. Raises ImplementationError when it raises."""
    from normbench.gate import _bitwise_equal, _shape_problem, oracle
    from normbench.verdicts import failed_result

    grads = p.case.mode != "fwd"
    sem = backend.semantics_for(variant.name)
    ref, native = oracle(p, sem, grads)
    fn = backend.build(variant, p.case)
    before = [t.clone() for t in (*p.dys, *p.tensors())]
    got = _run(fn, p, grads)
    if any(not _bitwise_equal(a, b) for a, b in zip(before, (*p.dys, *p.tensors()))):
        return failed_result("modifies an input or dy in place (Liger #370)")
    for name, r in ref.items():
        if name not in got:
            return failed_result(f"returned no {name}")
        problem = _shape_problem(name, got[name], r, p.dtype_of(name))
        if problem:
            return failed_result(problem)
    differs: list[str] = []
    if determinism:
        differs = _bitwise_differs(got, _run(fn, p, grads))
    tainted = tainted_rows(p)
    checks = [
        check_tensor(
            name,
            got[name],
            r,
            native[name],
            p.dtype_of(name),
            param=p.is_param_grad(name),
            tainted=tainted,
        )
        for name, r in ref.items()
    ]
    note, ratio = semantics_note(variant, sem, p, got, grads) if tainted is None else ("", None)
    v = combine(
        checks,
        trap,
        differs,
        deterministic=(not differs) if determinism else None,
        semantics_note=note,
    )
    return replace(v, extra={"semantic_ratio": ratio}) if ratio is not None else v


def check_case(
    backend: str,
    variant: str,
    dtype: str,
    dist: str = "normal",
    *,
    dim: int = 1000,
    rows: int = CPU_ROWS,
    device: str = "cpu",
    seed: int = 0,
    scale: float = 1.0,
    determinism: bool = False,
) -> CaseVerdict:
    """One stability case by name, judged (forward and backward). A case that does not apply
    is a PASS verdict whose reason starts with "not run:"; an implementation that raises, FAIL."""
    from normbench.cases import Case
    from normbench.dtypes import canonical
    from normbench.gate import prepare
    from normbench.inputs import get_distribution
    from normbench.registry import get_backend
    from normbench.variants import Shape, get_variant

    arm_interpreter()
    b, v, dtype = get_backend(backend), get_variant(variant), canonical(dtype)
    case = Case(v.name, b.name, dtype, Shape(1, rows, dim), "fwd+bwd", device, dist)
    reason = not_applicable(b, case)
    if reason:
        return CaseVerdict(PASS, f"not run: {reason}")
    p = prepare(v, case, seed, scale=scale)
    trap = get_distribution(dist).trap_for(dtype)
    try:
        return evaluate(b, v, p, trap=trap, determinism=determinism)
    except ImplementationError as exc:
        return CaseVerdict(FAIL, f"raised {exc}")


def not_applicable(backend: Backend, case: Case) -> str | None:
    """Why this backend does not run this case (unsupported, or a distribution for other
    semantics), or None."""
    from normbench.inputs import get_distribution

    reason = backend.supports(case)
    if reason:
        return reason
    dist = get_distribution(case.dist)
    cast = backend.semantics_for(case.variant).cast
    if dist.cast and cast != dist.cast:
        return (
            f"{case.dist} tests implementations with cast {dist.cast} semantics; "
            f"{backend.name} declares cast {cast}"
        )
    return None


def verdict_rows(case: Case, v: CaseVerdict, status: str | None = None, **extra: Any) -> list[Row]:
    """One verdict row (value 0/1/2 = PASS/WARN/FAIL, note = reason) and the tidy measures."""
    status = status or ("mismatch" if v.verdict == FAIL else "ok")
    info = {"verdict": v.verdict, "dist": case.dist, "dim": case.shape.dim, **extra}
    if v.worst_check is not None:
        info["tensor"] = v.worst_check.name
        info["max_ulp"] = v.worst_check.max_ulp
        info["rel"] = v.worst_check.error.rel
        info["tol_ratio"] = v.worst_check.error.worst_ratio
    if v.semantics_note:
        info["semantics"] = v.semantics_note
    info.update(v.extra)
    if v.deterministic is not None:
        info["deterministic"] = v.deterministic
    rows = [
        case_row(
            case, SUITE, "verdict", RANK[v.verdict], "", status=status, note=v.reason, extra=info
        )
    ]
    for c in v.checks:
        for measure, value in c.measures().items():
            unit = {"max_ulp": "ulp", "rel": "", "max_abs": ""}.get(measure, "count")
            if measure == "tol_ratio":
                unit = "x"
            rows.append(case_row(case, SUITE, f"{c.name}_{measure}", float(value), unit))
    if v.deterministic is not None:
        rows.append(case_row(case, SUITE, "deterministic", float(v.deterministic), "bool"))
    return rows


class StabilityCase:
    """One case of the matrix: applicable? prepare, evaluate, rows."""

    def __init__(self, config: StabilityConfig) -> None:
        self.config = config
        self.cache = PreparedCache(config.selection.seed)
        # Determinism is a property of the algorithm, not the input: checked on one distribution.
        self.det_dist = config.dists[0] if config.determinism else None

    def __call__(self, case: Case) -> list[Row]:
        from normbench.inputs import get_distribution
        from normbench.registry import get_backend
        from normbench.variants import get_variant

        backend = get_backend(case.backend)
        reason = not_applicable(backend, case)
        if reason:
            info = {"verdict": "skipped", "dist": case.dist, "dim": case.shape.dim}
            return [
                case_row(
                    case, SUITE, "verdict", None, "", status="skipped", note=reason, extra=info
                )
            ]
        variant = get_variant(case.variant)
        p = self.cache.get(case)
        trap = get_distribution(case.dist).trap_for(case.dtype)
        try:
            v = evaluate(backend, variant, p, trap=trap, determinism=case.dist == self.det_dist)
        except ImplementationError as exc:
            return verdict_rows(case, CaseVerdict(FAIL, f"raised {exc}"), status="error")
        return verdict_rows(case, v)


# --- dynamic-range sweep -------------------------------------------------------------------


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
class SweepResult:
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
) -> SweepResult:
    """Scale the `unit-max` input by 2^k for each k and judge the implementation at each scale;
    return the smallest and largest scale where the verdict stays PASS. `progress(k)` is called
    before each scale. Raises UsageError for an unknown backend, variant or dtype."""
    import torch

    from normbench.cases import Case
    from normbench.dtypes import canonical, to_torch
    from normbench.gate import prepare
    from normbench.registry import get_backend
    from normbench.variants import Shape, get_variant

    arm_interpreter()
    b = get_backend(backend)
    v = get_variant(variant)
    dtype = canonical(dtype)
    opts = (options or NormOptions()).for_case(v.name, dtype)
    shape = Shape(1, rows, dim, heads)
    case = Case(v.name, b.name, dtype, shape, "fwd+bwd", device, SWEEP_DIST, opts)
    points = []
    reason = not_applicable(b, case)
    for k in ks:
        if progress:
            progress(k)
        if reason:
            points.append(SweepPoint(k, "skipped", reason))
            continue
        p = prepare(v, case, seed, scale=2.0**k)
        if not all(bool(torch.isfinite(p.inputs[a]).all()) for a in v.activations):
            top = torch.finfo(to_torch(dtype)).max
            why = f"inputs at 2^{k} overflow {dtype} (max {top:.4g})"
            points.append(SweepPoint(k, "skipped", why))
            continue
        try:
            cv = evaluate(b, v, p, trap="")
        except ImplementationError as exc:
            cv = CaseVerdict(FAIL, f"raised {exc}")
        w = cv.worst_check
        ratio, ulps = (w.error.worst_ratio, w.max_ulp) if w is not None else (None, None)
        points.append(SweepPoint(k, cv.verdict, cv.reason, ratio, ulps))
    lo, hi = safe_run(pt for pt in points if pt.verdict != "skipped")
    return SweepResult(b.name, v.name, dtype, dim, tuple(points), lo, hi)


def sweep_rows(res: SweepResult, case: Case) -> list[Row]:
    rows = []
    for pt in res.points:
        status = {"skipped": "skipped", FAIL: "mismatch"}.get(pt.verdict, "ok")
        r = case_row(
            case,
            SUITE,
            "sweep_verdict",
            RANK.get(pt.verdict),
            "",
            status=status,
            note=pt.reason,
            extra={
                "k": pt.k,
                "verdict": pt.verdict,
                "dim": res.dim,
                "tol_ratio": pt.tol_ratio,
                "max_ulp": pt.max_ulp,
            },
        )
        rows.append(_with_id(r, f"{case.id}/x2^{pt.k}"))
    info = {
        "dim": res.dim,
        "low_k": res.smallest_pass_k,
        "high_k": res.largest_pass_k,
        "low_edge": res.edge(res.smallest_pass_k),
        "high_edge": res.edge(res.largest_pass_k),
    }
    above, below = res.first_failure_above(), res.first_failure_below()
    rows.append(
        case_row(
            case,
            SUITE,
            "safe_scale_min",
            res.smallest_pass_scale,
            "x",
            note=f"at 2^{below.k}: {below.reason}" if below else "",
            extra=info,
        )
    )
    rows.append(
        case_row(
            case,
            SUITE,
            "safe_scale_max",
            res.largest_pass_scale,
            "x",
            note=f"at 2^{above.k}: {above.reason}" if above else "",
            extra=info,
        )
    )
    return rows


def _with_id(row: Row, case_id: str) -> Row:
    return replace(row, case_id=case_id)


# --- the run -------------------------------------------------------------------------------


def worst_per_implementation(rows: list[Row]) -> list[dict[str, Any]]:
    """For each variant/backend: verdict counts and the worst case with its reason."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        if r.metric != "verdict":
            continue
        key = (r.variant, r.backend)
        entry = out.setdefault(
            key,
            {
                "implementation": f"{r.variant}/{r.backend}",
                PASS: 0,
                WARN: 0,
                FAIL: 0,
                "skipped": 0,
                "worst": None,
                "nondeterministic": 0,
            },
        )
        if r.status == "skipped":
            entry["skipped"] += 1
            continue
        verdict = r.extra.get("verdict", FAIL)
        entry[verdict] += 1
        if r.extra.get("deterministic") is False:
            entry["nondeterministic"] += 1
        score = (RANK[verdict], r.extra.get("tol_ratio") or 0.0)
        if entry["worst"] is None or score > entry["worst"][0]:
            entry["worst"] = (score, r)
    return list(out.values())


def describe_case(r: Row) -> str:
    return f"{r.dtype} N={r.extra.get('dim', '?')} {r.extra.get('dist', '')}"


def summarize(rows: list[Row]) -> list[str]:
    lines = []
    verdicts = [r for r in rows if r.metric == "verdict"]
    counts = {s: 0 for s in (PASS, WARN, FAIL, "skipped")}
    for r in verdicts:
        counts["skipped" if r.status == "skipped" else r.extra.get("verdict", FAIL)] += 1
    lines.append("Cases: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + ".")
    worst_parts = []
    for e in worst_per_implementation(rows):
        if e["worst"] is None:
            continue
        r = e["worst"][1]
        v = r.extra.get("verdict")
        worst_parts.append(
            f"{e['implementation']} {v}" + ("" if v == PASS else f" ({describe_case(r)}: {r.note})")
        )
    if worst_parts:
        lines.append("Worst case per implementation: " + "; ".join(worst_parts) + ".")
    det = [r for r in rows if r.metric == "deterministic"]
    if det:
        bad = sorted({f"{r.variant}/{r.backend}" for r in det if not r.value})
        lines.append(
            "Determinism: "
            + (
                f"two runs differ bitwise for {', '.join(bad)}."
                if bad
                else f"all {len(det)} checked cases bitwise identical over two runs, fwd and bwd."
            )
        )
    for r in rows:
        if r.metric == "safe_scale_max" and r.status == "ok":
            lo = r.extra.get("low_k")
            hi = r.extra.get("high_k")
            span = "no scale passes" if lo is None else f"2^{lo} .. 2^{hi}"
            lines.append(
                f"Safe range {r.variant}/{r.backend}/{r.dtype} N={r.extra['dim']}: {span}."
            )
    return lines


def run_verdict(run: Run) -> str:
    """The worst verdict of a run; a case that raised counts as FAIL."""
    return worst(
        FAIL if r.status == "error" else r.extra.get("verdict", PASS)
        for r in run.rows
        if r.metric in ("verdict", "sweep_verdict") and r.status != "skipped"
    )


def failed(run: Run, level: str) -> bool:
    """--fail-on: True when any case reached `level` (FAIL, or WARN which includes FAIL)."""
    return RANK[run_verdict(run)] >= RANK[level]


def run_stability(
    config: StabilityConfig, progress: Progress | None = None, debug: bool = False
) -> Run:
    """Run the stability suite and return the run (reports are written by the caller)."""
    import torch

    from normbench.env import fingerprint
    from normbench.results import Run

    start = time.perf_counter()
    arm_interpreter()
    sel = config.selection
    env = fingerprint(sel.device, torch.get_num_threads())
    cases = sel.cases(config.dists)
    loop = CaseLoop(SUITE, progress, debug, metric="verdict", unit="")
    rows = loop.run(cases, StabilityCase(config))
    if config.sweep and not loop.interrupted:
        rows += _sweeps(config, progress, loop)
    run = Run(SUITE, env, config.to_dict(), rows, interrupted=loop.interrupted)
    run.summary.extend(summarize(rows))
    run.wall_s = time.perf_counter() - start
    return run


def _sweeps(config: StabilityConfig, progress: Progress | None, loop: CaseLoop) -> list[Row]:
    from normbench.cases import Case
    from normbench.variants import Shape

    sel = config.selection
    rows_per_case = sel.batches[0] * sel.seqs[0]
    combos = [
        (v, b, dt, n, h)
        for v in sel.variants
        for dt in sel.dtypes
        for h in (sel.heads if v in ROW_NORMS else (1,))
        for n in sel.dims
        for b in sel.backends
    ]
    total = len(combos) * len(config.sweep)
    out: list[Row] = []
    for i, (v, b, dt, n, h) in enumerate(combos):
        opts = sel.options.for_case(v, dt)
        shape = Shape(1, rows_per_case, n, h)
        case = Case(v, b, dt, shape, "fwd+bwd", sel.device, SWEEP_DIST, opts)
        if sel.pattern and not _matches(sel.pattern, case.id):
            continue

        def tick(k: int, i: int = i, case: Case = case) -> None:
            if progress:
                done = i * len(config.sweep) + (k - config.sweep[0])
                progress(done, total, f"sweep {case.id} x2^{k}")

        try:
            res = range_sweep(
                b,
                v,
                dt,
                config.sweep,
                dim=n,
                rows=rows_per_case,
                device=sel.device,
                seed=sel.seed,
                progress=tick,
                options=sel.options,
                heads=h,
            )
        except KeyboardInterrupt:
            loop.interrupted = True
            break
        if all(pt.verdict == "skipped" for pt in res.points) and res.points:
            reason = res.points[0].reason
            out.append(
                case_row(
                    case,
                    SUITE,
                    "safe_scale_max",
                    None,
                    "x",
                    status="skipped",
                    note=reason,
                    extra={"dim": n},
                )
            )
            continue
        out += sweep_rows(res, case)
    return out


def _matches(pattern: str, case_id: str) -> bool:
    import re

    return re.search(pattern, case_id) is not None
