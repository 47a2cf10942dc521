"""The correctness gate: a backend's outputs and gradients against the fp64 oracle.

Numbers before speed: every suite runs this first, and a backend that fails is reported as a
mismatch and never timed. The oracle is evaluated on the low-precision inputs upcast to fp64, so
the rounding of the inputs themselves is not counted as the backend's error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from normbench.dtypes import to_torch
from normbench.fmt import a_type
from normbench.inputs import generator, make_tensors, scalars_for
from normbench.numerics import TensorError, compare

if TYPE_CHECKING:
    import torch

    from normbench.cases import Case
    from normbench.variants import Semantics, Variant


@dataclass
class Prepared:
    """One case's tensors: fp64 originals, device inputs in the case dtype, output gradients."""

    variant: Variant
    case: Case
    inputs: dict[str, torch.Tensor | None]  # None: a parameter the layer does not have
    dys: tuple[torch.Tensor, ...]
    scalars: dict[str, float]
    # Dtype name of every argument, output and gradient ("x", "y", "dweight", ...).
    dtypes: dict[str, str] = field(default_factory=dict)
    _oracles: dict = field(default_factory=dict)

    def leaves(self) -> dict[str, torch.Tensor | None]:
        """Fresh leaf copies that require grad (every floating tensor argument)."""
        return {
            k: None if v is None else v.detach().clone().requires_grad_(True)
            for k, v in self.inputs.items()
        }

    def tensors(self) -> list[torch.Tensor]:
        """The inputs that exist, in argument order."""
        return [v for v in self.inputs.values() if v is not None]

    def dtype_of(self, name: str) -> str:
        return self.dtypes.get(name, self.case.dtype)

    def is_param_grad(self, name: str) -> bool:
        """dweight, dbias, ...: a sum over every row (its tolerance scales with it)."""
        arg = name[1:]
        return name.startswith("d") and arg in self.inputs and arg not in self.variant.activations

    def cloned(self) -> dict[str, torch.Tensor | None]:
        """Copies of the inputs, for an implementation that writes into them."""
        return {k: None if v is None else v.clone() for k, v in self.inputs.items()}


def prepare(variant: Variant, case: Case, seed: int = 0, scale: float = 1.0) -> Prepared:
    """The case's tensors, each in its own dtype (the case dtype unless the layer options say
    otherwise); `scale` multiplies the activations (the stability range sweep)."""
    import torch

    dtypes = case.options.dtypes(variant, case.dtype)
    t64 = make_tensors(variant, case.shape, seed, case.dist, scale, case.options, case.device)
    inputs = {
        k: None if v is None else v.to(case.device).to(to_torch(dtypes[k])) for k, v in t64.items()
    }
    g = generator(case.device, seed + 7)
    shape = inputs["x"].shape
    dys = tuple(
        torch.randn(shape, generator=g, dtype=torch.float64, device=g.device)
        .to(case.device)
        .to(to_torch(dtypes[name]))
        for name in variant.outputs
    )
    return Prepared(variant, case, inputs, dys, scalars_for(variant, case.dist, case.dtype), dtypes)


def as_tuple(out: Any) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


class OutputProblem(Exception):
    """What a backend returned cannot be compared: the message says why."""


def _check_outputs(outs: tuple, names: tuple[str, ...], grads: bool, shape: tuple) -> None:
    """The outputs' count, types and shapes (each the input's), before any backward: a wrong
    shape there was autograd's error, an `error` row blaming the kernel, not a mismatch."""
    import torch

    if len(outs) != len(names):
        raise OutputProblem(
            f"returned {len(outs)} output(s), expected {len(names)} ({', '.join(names)})"
        )
    for name, o in zip(names, outs):
        if not isinstance(o, torch.Tensor):
            raise OutputProblem(f"{name} is {a_type(o)}, not a tensor")
        if tuple(o.shape) != tuple(shape):
            raise OutputProblem(f"{name} has shape {tuple(o.shape)}, expected {tuple(shape)}")
    if grads and not any(o.requires_grad for o in outs):
        raise OutputProblem(
            f"{names[0]} has no gradient: the function is not differentiable by autograd "
            "(a forward-only backend declares modes=('fwd',))"
        )


def signature_problem(fn: Callable[..., Any], names: list[str]) -> str | None:
    """Why `fn(**names)` cannot be called, or None (also when Python cannot tell)."""
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        sig.bind(**dict.fromkeys(names))
    except TypeError as exc:
        takes = ", ".join(sig.parameters)
        return f"wrong signature: it takes ({takes}) but is called as fn({', '.join(names)}): {exc}"
    return None


def _evaluate(
    fn: Callable[..., Any],
    p: Prepared,
    tensors: dict[str, torch.Tensor],
    grads: bool,
    own_dy: bool = False,
) -> dict[str, torch.Tensor]:
    """The outputs and, with `grads`, the gradients of `fn` at dy. `own_dy`: dy is handed to
    the backward as a copy (a kernel declared in place may write dx into it, as Liger's
    in-place backward does)."""
    import torch

    names = p.variant.outputs
    if not grads:
        with torch.no_grad():
            outs = as_tuple(fn(**tensors, **p.scalars))
        _check_outputs(outs, names, grads, tensors["x"].shape)
        return dict(zip(names, outs))
    outs = as_tuple(fn(**tensors, **p.scalars))
    _check_outputs(outs, names, grads, tensors["x"].shape)
    result = dict(zip(names, (o.detach() for o in outs)))
    leaves = [k for k, v in tensors.items() if v is not None]
    dys = [dy.to(o.dtype, copy=own_dy) for dy, o in zip(p.dys, outs)]
    gs = torch.autograd.grad(outs, [tensors[k] for k in leaves], dys, allow_unused=True)
    for k, g in zip(leaves, gs):
        result["d" + k] = g if g is not None else torch.zeros_like(tensors[k])
    return result


def oracle(p: Prepared, sem: Semantics, grads: bool) -> tuple[dict, dict]:
    """The fp64 reference and the fp32 'native low precision' result cast to the case dtype,
    cached per semantics."""
    import torch

    key = (tuple(getattr(sem, f) for f in p.variant.relevant), grads)
    if key not in p._oracles:
        dtype = to_torch(p.case.dtype)
        # The residual output's dtype, where the variant has one: the rounded sum it normalizes.
        res = {"res_rt": to_torch(p.dtype_of("residual_out"))} if "residual" in p.inputs else {}

        def formula(**kw):
            return p.variant.formula(dict(kw), p.scalars, sem, dtype, **res)

        results = []
        for work in (torch.float64, torch.float32):
            tensors = {
                k: None if v is None else v.to(work).detach().requires_grad_(grads)
                for k, v in p.inputs.items()
            }
            with torch.enable_grad():
                results.append(_evaluate(formula, p, tensors, grads))
        ref, native = results
        native = {k: v.to(to_torch(p.dtype_of(k))) for k, v in native.items()}
        p._oracles[key] = (ref, native)
    return p._oracles[key]


@dataclass(frozen=True)
class GateResult:
    ok: bool
    errors: tuple[TensorError, ...]
    note: str

    @property
    def worst(self) -> TensorError | None:
        return max(self.errors, key=lambda e: e.worst_ratio, default=None)


def _shape_problem(name: str, got: Any, want: torch.Tensor, dtype: str) -> str | None:
    """Shape, and dtype (`dtype`: the tensor's own, from Prepared.dtype_of) of one output."""
    import torch

    if not isinstance(got, torch.Tensor):
        return f"{name} is {a_type(got)}, not a tensor"
    if tuple(got.shape) != tuple(want.shape):
        return f"{name} has shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    checked = ("y", "residual_out", "dx", "dresidual", "dweight", "dbias")
    if got.dtype != to_torch(dtype) and name in checked:
        return f"{name} is {str(got.dtype).replace('torch.', '')}, expected {dtype}"
    return None


def _bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    import torch

    # Bitwise, so a NaN input left untouched still counts as unchanged.
    return torch.equal(a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))


def _restore(before: list[torch.Tensor], after: tuple[torch.Tensor, ...]) -> bool:
    """Put back what a call modified in place (the prepared inputs, shared by the backends after
    it in the same case group; fresh leaves; dy); True if any was modified."""
    import torch

    changed = False
    with torch.no_grad():
        for b, a in zip(before, after):
            if not _bitwise_equal(a, b):
                a.copy_(b)
                changed = True
    return changed


IN_PLACE = "modified an input or dy in place"


class InPlaceWrite(Exception):
    """The call wrote into a tensor it was given (an input, a fresh leaf, or dy)."""


def own_copies(fn: Callable[..., Any], sem: Semantics) -> Callable[..., Any]:
    """`fn`, given its own copies of its tensor arguments when it declares that it writes into
    them (Semantics.inplace); else `fn` itself. Its backward gets its own dy too (`_evaluate`)."""
    if not sem.inplace:
        return fn
    import torch

    def copied(**kw: Any) -> Any:
        return fn(**{k: v.clone() if torch.is_tensor(v) else v for k, v in kw.items()})

    return copied


def watched_call(
    fn: Callable[..., Any], p: Prepared, grads: bool, sem: Semantics
) -> dict[str, torch.Tensor]:
    """`fn` run once on the case (forward, and backward with `grads`), its outputs and
    gradients by name. Raises InPlaceWrite when it wrote into anything it was given, also when
    the call then failed (autograd's version check on a tensor saved for backward, most often):
    an input or dy modified in place breaks every other consumer of it (Liger #370,
    docs/numerics.md trap 11). What it wrote into is put back first, whatever it raised. With
    gradients it is given fresh leaves, not the inputs: those are what must be watched."""
    import torch

    given = p.leaves() if grads else dict(p.inputs)
    watched = (*p.dys, *(v for v in given.values() if v is not None))
    before = [t.detach().clone() for t in watched]
    try:
        with torch.enable_grad() if grads else torch.no_grad():
            got = _evaluate(own_copies(fn, sem), p, given, grads, own_dy=sem.inplace)
    except BaseException as exc:
        if _restore(before, watched) and isinstance(exc, Exception):
            raise InPlaceWrite() from exc
        raise
    if _restore(before, watched):
        raise InPlaceWrite()
    return got


def _call_problem(exc: Exception) -> str | None:
    """The mismatch a failed call amounts to (wrong outputs or signature), or None for an
    error the caller reports as one."""
    if isinstance(exc, OutputProblem):
        return str(exc)
    if isinstance(exc, (TypeError, ValueError)) and (
        "not enough values" in str(exc) or "unexpected keyword" in str(exc)
    ):
        return f"wrong signature or outputs: {exc}"
    return None


def check(fn: Callable[..., Any], p: Prepared, sem: Semantics, grads: bool) -> GateResult:
    """Run `fn` once on the case and compare every output (and gradient) with the oracle."""

    ref, native = oracle(p, sem, grads)
    problem = signature_problem(fn, [*p.inputs, *p.scalars])
    if problem:
        return GateResult(False, (), problem)
    try:
        got = watched_call(fn, p, grads, sem)
    except InPlaceWrite:
        return GateResult(False, (), IN_PLACE)
    except Exception as exc:
        problem = _call_problem(exc)
        if problem is None:
            raise
        return GateResult(False, (), problem)
    for name, r in ref.items():
        if name not in got:
            return GateResult(False, (), f"returned no {name}")
        problem = _shape_problem(name, got[name], r, p.dtype_of(name))
        if problem:
            return GateResult(False, (), problem)
    errors = tuple(
        compare(
            name,
            got[name],
            r,
            native[name],
            p.dtype_of(name),
            reduction=p.is_param_grad(name),
        )
        for name, r in ref.items()
    )
    bad = [e for e in errors if not e.ok]
    if not bad:
        w = max(errors, key=lambda e: e.worst_ratio)
        return GateResult(
            True, errors, f"matches fp64 (worst {w.name}: {w.worst_ratio:.2f}x the tolerance)"
        )
    e = max(bad, key=lambda e: (e.nonfinite > 0,
                                max(e.worst_ratio, e.scale_ratio, e.channel_ratio)))  # fmt: skip
    if e.nonfinite:
        why = f"{e.name} has {e.nonfinite} non-finite values where fp64 is finite"
    elif e.worst_ratio > 1.0:
        why = f"{e.name} max error {e.max_abs:.3g} is {e.worst_ratio:.1f}x the tolerance"
    elif e.channel_ratio > e.scale_ratio:  # each channel off by a factor of its own
        why = (f"{e.name} is off per channel by {100 * e.channel_error:.2g}% rms "
               f"({e.channel_ratio:.2g}x the bound for rounding; every element within "
               f"{e.worst_ratio:.2g}x the tolerance)")  # fmt: skip
    else:  # every element within the tolerance, and all of them off by one factor
        why = (f"{e.name} is {100 * e.scale_error:+.2g}% off throughout ({e.scale_ratio:.2g}x "
               f"the bound for rounding; every element within {e.worst_ratio:.2g}x the "
               "tolerance)")  # fmt: skip
    return GateResult(False, errors, why)
