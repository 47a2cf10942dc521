"""The kernels' contract as a plain torch formula, for any option, and the tolerance rule.

The contract (docs/numerics.md section 9): s = x, or x + residual rounded once
to the residual output's dtype; RMSNorm y = s * rsqrt(mean(s^2) + eps) [rounded to x's dtype
first with cast="llama"] * (offset + w) + b; LayerNorm y = (s - mean) * rsqrt(var + eps) * w + b;
every output rounded once to its own dtype. Rounding steps pass gradients straight through.

Tolerance rule (docs/numerics.md section 2, from flash-attention's tests), elementwise:
    |impl - ref64| <= 2 * |native_fp32 - ref64| + atol * scale + 1 ulp of the tensor's dtype
"""

from __future__ import annotations

import pytest
import torch

from normbench.kernels import interpreter_problem_here, layer_norm, rms_norm, triton_problem_here

# The kernel tests run in Triton's interpreter; where it cannot run beside this numpy (Triton
# before 3.7 with numpy 2.4 or newer), or the Triton is older than the kernels' floor, they are
# skipped with that reason, as the triton backend reports itself unavailable with it.
_PROBLEM = triton_problem_here() or interpreter_problem_here()
needs_interpreter = pytest.mark.skipif(_PROBLEM is not None, reason=_PROBLEM or "")


def _compile_problem() -> str | None:
    try:
        from normbench.kernels import aot
    except ImportError as exc:
        return f"triton cannot be imported ({exc})"
    return triton_problem_here() or aot.tools_missing()


# Compiling for a GPU without one (the audit's path): a Triton at or above the kernels' floor
# whose wheel carries ptxas and cuobjdump.
_COMPILE = _compile_problem()
needs_compiler = pytest.mark.skipif(
    _COMPILE is not None, reason=f"cannot compile for a GPU here: {_COMPILE}"
)

ATOL = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2, torch.float64: 1e-10}
MANTISSA = {torch.float32: 23, torch.float16: 10, torch.bfloat16: 7, torch.float64: 52}
MIN_EXP = {torch.float32: -126, torch.float16: -14, torch.bfloat16: -126, torch.float64: -1022}


def round_st(t: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """t rounded to `dtype` and back, with a straight-through gradient."""
    if dtype is None or dtype == t.dtype or dtype == torch.float64:
        return t
    return t + (t.to(dtype).to(t.dtype) - t).detach()


def formula(family, t, *, eps, offset=0.0, res_dtype=None, cast="fp32", x_dtype=None):
    """(y, residual_out or None) of the contract, computed in the dtype of the tensors in `t`."""
    x, w, b, r = t["x"], t.get("w"), t.get("b"), t.get("r")
    s = x if r is None else x + r
    if r is not None or res_dtype is not None:
        s = round_st(s, res_dtype)
    if family == "rms":
        h = s * torch.rsqrt(s.pow(2).mean(-1, keepdim=True) + eps)
        if cast == "llama":
            h = round_st(h, x_dtype)
        y = h if w is None else h * (offset + w)
    else:
        d = s - s.mean(-1, keepdim=True)  # two-pass variance
        h = d * torch.rsqrt(d.pow(2).mean(-1, keepdim=True) + eps)
        y = h if w is None else h * w
    if b is not None:
        y = y + b
    res = s if (r is not None or res_dtype is not None) else None
    return y, res


def gradcheck64(fn, args) -> bool:
    """torch.autograd.gradcheck of an fp64 kernel call, in fast mode with tight tolerances.

    Each call runs in Triton's interpreter, so the full Jacobian (two forward calls per input
    element, one backward per output element) costs 10-20 s a case. Fast mode compares one random
    projection v^T J u instead; at atol 1e-9, rtol 1e-7 (fp64 central differences at eps 1e-6 are
    good to about 1e-10) it still fails a gradient off by 1e-4 in a single element, which the
    full check at its default rtol of 1e-3 would pass (tests/test_kernel_contract.py
    test_gradcheck64_catches_one_wrong_element).
    """
    return torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-9, rtol=1e-7, fast_mode=True)


def ulp(ref64: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    _, exp = torch.frexp(ref64.abs())
    exp = torch.clamp(exp - 1, min=MIN_EXP[dtype])
    return torch.pow(2.0, (exp - MANTISSA[dtype]).double())


def worst_ratio(impl, ref64, native, dtype, param_grad=False) -> float:
    """max(error / bound) under the rule: <= 1 passes."""
    impl, native = impl.double(), native.double()
    scale = max(1.0, ref64.abs().max().item()) if param_grad and ref64.numel() else 1.0
    err = (impl - ref64).abs()
    bound = 2 * (native - ref64).abs() + ATOL[dtype] * scale + ulp(ref64, dtype)
    return float((err / bound).max()) if err.numel() else 0.0


def assert_rule(name, impl, ref64, native, dtype, param_grad=False):
    assert impl.shape == ref64.shape, f"{name}: shape {impl.shape} != {ref64.shape}"
    assert torch.isfinite(impl).all(), f"{name}: non-finite values"
    ratio = worst_ratio(impl, ref64, native, dtype, param_grad)
    if ratio > 1:
        err = (impl.double() - ref64).abs().max().item()
        pytest.fail(f"{name} ({dtype}): {ratio:.3g}x the tolerance (max abs error {err:.3g})")


def _evaluate(family, inputs, dy, dres, work, **kw):
    leaves = {
        k: v.detach().to(work).requires_grad_(True) for k, v in inputs.items() if v is not None
    }
    y, s = formula(family, leaves, x_dtype=inputs["x"].dtype, **kw)
    loss = (y * dy.to(work)).sum()
    if s is not None and dres is not None:
        loss = loss + (s * dres.to(work)).sum()
    loss.backward()
    return y.detach(), (None if s is None else s.detach()), {k: v.grad for k, v in leaves.items()}


def run_kernel(family, inputs, dy, dres, *, eps, offset=0.0, res_dtype=None, cast="fp32"):
    leaves = {
        k: v.detach().clone().requires_grad_(True) for k, v in inputs.items() if v is not None
    }
    x, w, b, r = (leaves.get(k) for k in ("x", "w", "b", "r"))
    if family == "rms":
        out = rms_norm(x, w, eps, r, offset, bias=b, residual_dtype=res_dtype, cast=cast)
    else:
        out = layer_norm(x, w, b, eps, r, residual_dtype=res_dtype)
    y, s = out if isinstance(out, tuple) else (out, None)
    loss = (y.double() * dy.double()).sum()
    if s is not None and dres is not None:
        loss = loss + (s.double() * dres.double()).sum()
    loss.backward()
    return y.detach(), (None if s is None else s.detach()), {k: v.grad for k, v in leaves.items()}


def check(family, inputs, *, eps=1e-6, offset=0.0, res_dtype=None, cast="fp32", seed=7):
    """Every output and gradient of the kernel against the contract under the rule; returns the
    worst ratio per tensor (for tests that also compare with a looser, wrong reference)."""
    x = inputs["x"]
    gen = torch.Generator().manual_seed(seed)
    dy = torch.randn(x.shape, generator=gen).to(x.dtype)
    out_dtype = res_dtype or (inputs["r"].dtype if inputs.get("r") is not None else None)
    dres = None
    if out_dtype is not None:
        dres = torch.randn(x.shape, generator=gen).to(out_dtype)
    kw = dict(eps=eps, offset=offset, res_dtype=res_dtype, cast=cast)
    y, s, g = run_kernel(family, inputs, dy, dres, **kw)
    kw["res_dtype"] = out_dtype
    ref_y, ref_s, ref_g = _evaluate(family, inputs, dy, dres, torch.float64, **kw)
    nat_y, nat_s, nat_g = _evaluate(family, inputs, dy, dres, torch.float32, **kw)
    assert y.dtype == x.dtype, f"y is {y.dtype}, x is {x.dtype}"
    ratios = {"y": worst_ratio(y, ref_y, nat_y.to(x.dtype), x.dtype)}
    assert_rule("y", y, ref_y, nat_y.to(x.dtype), x.dtype)
    if out_dtype is not None:
        assert s.dtype == out_dtype
        # the residual output is the fp32 sum rounded once: bitwise
        want = x.float() if inputs.get("r") is None else x.float() + inputs["r"].float()
        assert torch.equal(s, want.to(out_dtype))
    for k, ref in ref_g.items():
        gd = inputs[k].dtype
        assert g[k].dtype == gd, f"grad of {k} is {g[k].dtype}, expected {gd}"
        native = nat_g[k].to(gd)
        ratios["d" + k] = worst_ratio(g[k], ref, native, gd, k in ("w", "b"))
        assert_rule(f"d{k}", g[k], ref, native, gd, param_grad=k in ("w", "b"))
    return ratios
