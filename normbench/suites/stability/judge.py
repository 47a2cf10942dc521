"""Judging one implementation on one case: run it forward and backward, compare every output
and gradient with the fp64 oracle of its declared semantics, and say PASS / WARN / FAIL with the
reason in words (normbench.verdicts). Also the one-case entry point `check_case`."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from normbench.backends.base import reason_from
from normbench.errors import describe_error
from normbench.verdicts import FAIL, PASS, CaseVerdict, check_tensor, combine

if TYPE_CHECKING:
    import torch

    from normbench.backends.base import Backend
    from normbench.cases import Case
    from normbench.gate import Prepared
    from normbench.variants import Variant

SUITE = "stability"
# Rows of a case on the CPU: enough for row independence (the inf/NaN/zero inputs touch every
# other row) and a dW sum, few enough for Triton's interpreter.
CPU_ROWS = 4
# A write into an argument or dy breaks their other consumers (docs/numerics.md trap 11).
IN_PLACE = "modifies an input or dy in place (Liger #370)"


class ImplementationError(Exception):
    """The implementation under test raised (not the harness): a FAIL with its message, except
    out of memory (`oom`): the machine could not run the case, which says nothing about the
    implementation's numbers (an error row with the reason, never a FAIL)."""

    @property
    def oom(self) -> bool:
        return str(self).startswith(OOM_PREFIX)


OOM_PREFIX = "out of memory"  # how describe_error words an out-of-memory exception


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


def _run(fn: Callable[..., Any], p: Prepared, grads: bool, sem: Any) -> dict[str, torch.Tensor]:
    """normbench.gate.watched_call; InPlaceWrite passes, the implementation's own errors are
    ImplementationError."""
    from normbench.gate import InPlaceWrite, watched_call

    try:
        # inf/NaN inputs make numpy (Triton's interpreter) warn on every op: the verdict says it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return watched_call(fn, p, grads, sem)
    except InPlaceWrite:
        raise
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
    """Where the declared semantics differ from the contract (docs/numerics.md section 1), how far
    the output is from the contract's reference: reported as a difference, never as an error."""
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
    from normbench.gate import InPlaceWrite, _shape_problem, oracle
    from normbench.verdicts import failed_result

    grads = p.case.mode != "fwd"
    sem = backend.semantics_for(variant.name)
    ref, native = oracle(p, sem, grads)
    fn = backend.build(variant, p.case)
    try:
        got = _run(fn, p, grads, sem)
        for name, r in ref.items():
            if name not in got:
                return failed_result(f"returned no {name}")
            problem = _shape_problem(name, got[name], r, p.dtype_of(name))
            if problem:
                return failed_result(problem)
        differs = _bitwise_differs(got, _run(fn, p, grads, sem)) if determinism else []
    except InPlaceWrite:
        return failed_result(IN_PLACE)
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
    return replace(v, semantic_ratio=ratio) if ratio is not None else v


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
    case = judged_mode(b, Case(v.name, b.name, dtype, Shape(1, rows, dim), "fwd+bwd", device,
                               dist))  # fmt: skip
    reason = not_applicable(b, case)
    if reason:
        return CaseVerdict(PASS, f"not run: {reason}")
    p = prepare(v, case, seed, scale=scale)
    trap = get_distribution(dist).trap_for(dtype)
    try:
        return evaluate(b, v, p, trap=trap, determinism=determinism)
    except ImplementationError as exc:
        return CaseVerdict(FAIL, f"raised {exc}")


def judged_mode(backend: Backend, case: Case) -> Case:
    """The case as `backend` can be judged: a forward-only implementation (an inference kernel,
    `modes=("fwd",)`) has its forward judged rather than the whole case skipped, the row's mode
    saying so ("fwd"); any other case as it is."""
    from dataclasses import replace

    if case.mode != "fwd" and case.mode not in backend.modes and "fwd" in backend.modes:
        return replace(case, mode="fwd")
    return case


def not_applicable(backend: Backend, case: Case) -> str | None:
    """Why this backend does not run this case (unsupported, or a distribution for other
    semantics), or None."""
    from normbench.inputs import get_distribution

    reason = reason_from(backend, "supports", case)
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
