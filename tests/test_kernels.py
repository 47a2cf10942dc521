"""The Triton kernels against an fp64 reference (on CPU they run in Triton's interpreter).

Tolerance rule (docs/numerics.md section 2, from flash-attention's tests), elementwise:
    |impl - ref64| <= 2 * |native_lowprec - ref64| + atol * scale + 1 ulp of the output dtype
native_lowprec is the same formula evaluated in fp32 from the low-precision inputs and cast once.
scale is 1 for activations and max(1, max|ref|) for dW / dB, which are sums over every row.
"""

from __future__ import annotations

import math
import os

import pytest
import torch

from normbench.kernels import available, layer_norm, rms_norm
from tests.kernel_reference import gradcheck64, needs_interpreter

pytestmark = [needs_interpreter, pytest.mark.interpreter]

ATOL = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2, torch.float64: 1e-10}
MANTISSA = {torch.float32: 23, torch.float16: 10, torch.bfloat16: 7, torch.float64: 52}
MIN_EXP = {torch.float32: -126, torch.float16: -14, torch.bfloat16: -126, torch.float64: -1022}
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
DIMS = [17, 1000, 1024, 3000, 4096, 5120, 6144, 8192]


# --- fp64 reference and the fp32 "native" formula ----------------------------------------------


def rms_formula(x, w, eps, offset=0.0, r=None):
    s = x if r is None else x + r
    rstd = torch.rsqrt(s.pow(2).mean(-1, keepdim=True) + eps)
    return s * rstd * (offset + w), s


def ln_formula(x, w, b, eps, r=None):
    s = x if r is None else x + r
    d = s - s.mean(-1, keepdim=True)  # two-pass variance
    y = d * torch.rsqrt(d.pow(2).mean(-1, keepdim=True) + eps) * w
    return (y if b is None else y + b), s


def evaluate(formula, inputs: dict, dy, dres, dtype):
    """Outputs and gradients of `formula` computed in `dtype` (fp64 or fp32) via autograd."""
    leaves = {
        k: (None if v is None else v.detach().to(dtype).requires_grad_(True))
        for k, v in inputs.items()
    }
    y, s = formula(**leaves)
    loss = (y * dy.to(dtype)).sum()
    if dres is not None:
        loss = loss + (s * dres.to(dtype)).sum()
    loss.backward()
    grads = {k: v.grad for k, v in leaves.items() if v is not None}
    return y.detach(), s.detach(), grads


def ulp(ref64, dtype):
    _, exp = torch.frexp(ref64.abs())
    exp = torch.clamp(exp - 1, min=MIN_EXP[dtype])  # subnormal spacing below the normal range
    return torch.pow(2.0, (exp - MANTISSA[dtype]).double())


def assert_rule(name, impl, ref64, native, dtype, param_grad=False):
    impl, native = impl.double(), native.double()
    assert impl.shape == ref64.shape, f"{name}: shape {impl.shape} != {ref64.shape}"
    assert torch.isfinite(impl).all(), f"{name}: non-finite values"
    scale = max(1.0, ref64.abs().max().item()) if param_grad and ref64.numel() else 1.0
    err = (impl - ref64).abs()
    bound = 2 * (native - ref64).abs() + ATOL[dtype] * scale + ulp(ref64, dtype)
    bad = err > bound
    if bad.any():
        i = torch.argmax((err - bound).flatten())
        pytest.fail(
            f"{name} ({dtype}): {int(bad.sum())}/{bad.numel()} out of tolerance; worst "
            f"impl={impl.flatten()[i]:.6g} ref={ref64.flatten()[i]:.6g} "
            f"native={native.flatten()[i]:.6g} bound={bound.flatten()[i]:.3g}"
        )


def run_kernel(family, inputs, dy, dres, eps, offset=0.0):
    """Our kernel's outputs and gradients for the same inputs and upstream gradients."""
    leaves = {
        k: (None if v is None else v.detach().clone().requires_grad_(True))
        for k, v in inputs.items()
    }
    x, w, r = leaves["x"], leaves["w"], leaves.get("r")
    if family == "rms":
        out = rms_norm(x, w, eps=eps, residual=r, offset=offset)
    else:
        out = layer_norm(x, w, leaves["b"], eps=eps, residual=r)
    y, s = (out, None) if r is None else out
    loss = (y.double() * dy.double()).sum()
    if r is not None and dres is not None:
        loss = loss + (s.double() * dres.double()).sum()
    loss.backward()
    grads = {k: v.grad for k, v in leaves.items() if v is not None}
    return y.detach(), (None if s is None else s.detach()), grads


def check_against_reference(family, inputs, eps, dtype, offset=0.0, dres=True):
    """Forward, residual output and every gradient under the tolerance rule."""
    x = inputs["x"]
    gen = torch.Generator().manual_seed(7)
    dy = torch.randn(x.shape, generator=gen).to(x.dtype)
    has_res = inputs.get("r") is not None
    dres_t = torch.randn(x.shape, generator=gen).to(inputs["r"].dtype) if has_res and dres else None
    if family == "rms":

        def formula(x, w, r=None):
            return rms_formula(x, w, eps, offset, r)

    else:

        def formula(x, w, b, r=None):
            return ln_formula(x, w, b, eps, r)

    y, s, g = run_kernel(family, inputs, dy, dres_t if has_res else None, eps, offset)
    if has_res and dres_t is None:  # residual_out unused: its gradient is zero
        dres_t = torch.zeros_like(inputs["r"])
    ref_y, ref_s, ref_g = evaluate(formula, inputs, dy, dres_t, torch.float64)
    nat_y, nat_s, nat_g = evaluate(formula, inputs, dy, dres_t, torch.float32)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert_rule("y", y, ref_y, nat_y.to(dtype), dtype)
    if has_res:
        # residual_out is the fp32 sum rounded once to the residual dtype: bitwise.
        assert s.dtype == inputs["r"].dtype
        assert torch.equal(s, (x.float() + inputs["r"].float()).to(s.dtype))
    for k, ref in ref_g.items():
        gd = inputs[k].dtype
        assert g[k].dtype == gd, f"grad {k} dtype {g[k].dtype} != {gd}"
        assert_rule(f"d{k}", g[k], ref, nat_g[k].to(gd), gd, param_grad=k in ("w", "b"))


def make_inputs(family, m_shape, n, dtype, residual=False, mean=0.5, seed=0, w_dtype=None):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(*m_shape, n, generator=gen) + mean).to(dtype)
    w = (1 + 0.5 * torch.randn(n, generator=gen)).to(w_dtype or dtype)
    inputs = {"x": x, "w": w}
    if family == "ln":
        inputs["b"] = (0.5 * torch.randn(n, generator=gen)).to(w_dtype or dtype)
    if residual:
        inputs["r"] = torch.randn(*m_shape, n, generator=gen).to(dtype)
    return inputs


def rows_for(n):
    # The interpreter runs every program in Python, and each row reduction costs about a
    # millisecond: few rows for wide N, more for narrow N so that several multi-row tiles (and a
    # partly filled last one) and several backward programs are exercised.
    return 37 if n <= 256 else 13 if n <= 1024 else 5


# --- the main sweep ----------------------------------------------------------------------------


def test_available_on_this_machine():
    ok, how = available()
    assert ok, how
    if not torch.cuda.is_available():
        assert "interpreter" in how


@pytest.mark.parametrize("n", DIMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("family", ["rms", "ln"])
def test_forward_backward_matches_fp64(family, dtype, n):
    # mean 0.5: padded lanes must not leak mean^2 into the variance (docs/numerics.md trap 5,
    # triton #9838).
    inputs = make_inputs(family, (rows_for(n),), n, dtype)
    check_against_reference(family, inputs, 1e-6 if family == "rms" else 1e-5, dtype)


@pytest.mark.parametrize("n", [17, 1000, 4096, 8192])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("family", ["rms", "ln"])
def test_fused_residual_add_matches_fp64(family, dtype, n):
    inputs = make_inputs(family, (rows_for(n),), n, dtype, residual=True)
    check_against_reference(family, inputs, 1e-6 if family == "rms" else 1e-5, dtype)


@pytest.mark.parametrize("family", ["rms", "ln"])
def test_residual_out_unused_and_wider_residual(family):
    # bf16 activations with an fp32 residual stream (flash-attention's residual_in_fp32).
    inputs = make_inputs(family, (9,), 256, torch.bfloat16, residual=True)
    inputs["r"] = inputs["r"].float()
    check_against_reference(family, inputs, 1e-5, torch.bfloat16, dres=False)


@pytest.mark.parametrize("family", ["rms", "ln"])
def test_fp32_weight_with_half_activations(family):
    inputs = make_inputs(family, (9,), 1000, torch.float16, w_dtype=torch.float32)
    check_against_reference(family, inputs, 1e-5, torch.float16)


@pytest.mark.parametrize("family", ["rms", "ln"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_strided_and_3d_inputs(family, dtype):
    # Row stride != N and 3-D inputs (docs/numerics.md trap 12, Liger PR #804): a slice of a wider
    # tensor keeps its stride all the way into the kernel.
    n = 1000
    gen = torch.Generator().manual_seed(3)
    wide = torch.randn(2, 3, n + 24, generator=gen).to(dtype)
    x = wide[:, :, :n]
    assert not x.is_contiguous()
    inputs = make_inputs(family, (2, 3), n, dtype, residual=True)
    inputs["x"] = x
    inputs["r"] = torch.randn(6, n + 8, generator=gen).to(dtype)[:, 4 : 4 + n].view(2, 3, n)
    check_against_reference(family, inputs, 1e-5, dtype)


def test_strided_input_stays_a_view():
    n = 1000
    wide = torch.randn(8, n + 16)
    x = wide[:, :n]
    w = torch.ones(n)
    y = rms_norm(x, w)
    ref = rms_formula(x.double(), w.double(), 1e-6)[0]
    assert_rule("y", y, ref, rms_formula(x, w, 1e-6)[0], torch.float32)
    assert wide.stride(0) == n + 16 and y.is_contiguous()


@pytest.mark.parametrize("family", ["rms", "ln"])
def test_empty_batch(family):
    # M = 0 must return empty results, not crash (docs/numerics.md trap 12).
    for shape in [(0, 64), (2, 0, 64)]:
        x = torch.randn(*shape, requires_grad=True)
        w = torch.ones(64, requires_grad=True)
        b = torch.zeros(64, requires_grad=True)
        r = torch.randn(*shape)
        y = rms_norm(x, w) if family == "rms" else layer_norm(x, w, b)
        assert y.shape == shape
        y.sum().backward()
        assert x.grad.shape == shape and torch.equal(w.grad, torch.zeros(64))
        out = rms_norm(x, w, residual=r) if family == "rms" else layer_norm(x, w, b, residual=r)
        assert out[0].shape == shape and out[1].shape == shape


def test_too_wide_rows_are_refused():
    with pytest.raises(ValueError, match="N=262145 exceeds 262,144"):
        rms_norm(torch.randn(2, 262145), torch.ones(262145))
    with pytest.raises(ValueError, match="weight dtype"):
        layer_norm(torch.randn(2, 64), torch.ones(64, dtype=torch.float64), None)


# --- numerical traps (docs/numerics.md section 2) -------------------------------------------


@pytest.mark.parametrize("family", ["rms", "ln"])
def test_trap1_fp16_element_whose_square_overflows(family):
    # pytorch #133085: x*x in fp16 is inf for |x| >= 256, rstd = 0, the whole row silently 0.
    inputs = make_inputs(family, (4,), 1024, torch.float16, mean=0.0)
    inputs["x"][1, 10] = 300.0
    check_against_reference(family, inputs, 1e-5, torch.float16)


@pytest.mark.parametrize("family", ["rms", "ln"])
def test_trap2_fp16_row_whose_sum_of_squares_overflows(family):
    # Each 200^2 fits in fp16, the sum over 1024 lanes (4e7) does not: a half accumulator overflows.
    inputs = make_inputs(family, (4,), 1024, torch.float16)
    sign = torch.where(torch.arange(1024) % 3 == 0, -1.0, 1.0)
    inputs["x"] = (200.0 * sign).expand(4, 1024).to(torch.float16).contiguous()
    check_against_reference(family, inputs, 1e-5, torch.float16)


def test_trap3_fp16_tiny_inputs_keep_unit_rms():
    # x ~ 1e-4: x*x underflows in fp16 (output RMS 1.38 in broken code). eps kept far below
    # mean(x^2) = 1e-8 so the exact answer has RMS 1.
    gen = torch.Generator().manual_seed(5)
    x = (1e-4 * torch.randn(4, 1024, generator=gen)).to(torch.float16)
    w = torch.ones(1024, dtype=torch.float16)
    y = rms_norm(x, w, eps=1e-12)
    rms = y.double().pow(2).mean(-1).sqrt()
    assert torch.allclose(rms, torch.ones(4, dtype=torch.float64), atol=1e-2), rms
    check_against_reference("rms", {"x": x, "w": w}, 1e-12, torch.float16)


def test_trap4_large_mean_layernorm_fp32():
    # x = 1e4 + N(0,1): one-pass E[x^2] - E[x]^2 goes negative in fp32 and gives NaN.
    inputs = make_inputs("ln", (4,), 4096, torch.float32, mean=1e4)
    check_against_reference("ln", inputs, 1e-5, torch.float32)
    y = layer_norm(inputs["x"], torch.ones(4096), None)
    assert torch.allclose(y.double().std(-1), torch.ones(4, dtype=torch.float64), atol=1e-2)


@pytest.mark.parametrize("n", [17, 1000, 3000, 5120, 6144])
def test_trap5_padded_lanes_contribute_zero(n):
    # triton #9838: with N not a power of two, padded lanes leak mean^2 into the variance.
    x = torch.randn(3, n) + 5.0
    w, b = torch.ones(n), torch.zeros(n)
    ref = ln_formula(x.double(), w.double(), b.double(), 1e-5)[0]
    assert_rule("y", layer_norm(x, w, b), ref, ln_formula(x, w, b, 1e-5)[0], torch.float32)


@pytest.mark.parametrize("family", ["rms", "ln"])
def test_trap6_zero_row_tiny_eps_fp16(family):
    # DeepSpeed #581: eps = 1e-8 cast to fp16 is 0, so 0 * rsqrt(0) = NaN.
    n = 512
    x = torch.zeros(2, n, dtype=torch.float16, requires_grad=True)
    w = torch.full((n,), 1.5, dtype=torch.float16, requires_grad=True)
    b = torch.full((n,), 0.25, dtype=torch.float16, requires_grad=True)
    y = rms_norm(x, w, eps=1e-8) if family == "rms" else layer_norm(x, w, b, eps=1e-8)
    expect = torch.zeros_like(y) if family == "rms" else b.detach().expand_as(y)
    assert torch.equal(y, expect)
    y.backward(torch.ones_like(y))
    assert torch.isfinite(x.grad).all() and torch.isfinite(w.grad).all()


def test_trap7_constant_row_layernorm():
    # Constant row: variance 0, the answer is beta with a finite gradient (NaN without eps).
    # Seeded like its neighbours: rstd = 1/sqrt(eps) ~ 316 amplifies dx to ~1e3, where one draw
    # in about 640 of the global RNG lands 1.6 fp32 ulps from fp64, past the rule's bound (seen
    # with the kernels before and after they shared their helpers); the trap is the finite
    # gradient, not that draw.
    gen = torch.Generator().manual_seed(7)
    n = 1000
    x = torch.full((3, n), 0.7, requires_grad=True)
    w = torch.randn(n, generator=gen).requires_grad_()
    b = torch.randn(n, generator=gen).requires_grad_()
    y = layer_norm(x, w, b)
    assert torch.allclose(y, b.detach().expand_as(y), atol=1e-4)
    y.backward(torch.randn(y.shape, generator=gen))
    assert torch.isfinite(x.grad).all() and torch.isfinite(w.grad).all()
    inputs = {"x": x.detach(), "w": w.detach(), "b": b.detach()}
    check_against_reference("ln", inputs, 1e-5, torch.float32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_trap8_massive_activation(dtype):
    # sglang #27540: one element of 2600 in an N(0,1) row of 1024. The outlier maps to ~sqrt(N)=32,
    # the rest to ~x/81; an fp16 square zeroes the token, a bf16 reduction loses precision.
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(2, 1024, generator=gen)
    x[:, 100] = 2600.0
    x = x.to(dtype)
    w = torch.ones(1024, dtype=dtype)
    y = rms_norm(x, w).double()
    rms = x.double().pow(2).mean(-1, keepdim=True).sqrt()
    assert torch.allclose(y[:, 100], torch.full((2,), 32.0, dtype=torch.float64), rtol=1e-2)
    assert 80 < rms.min() < 82
    rest = torch.cat([y[:, :100], y[:, 101:]], 1)
    x_rest = torch.cat([x[:, :100], x[:, 101:]], 1).double()
    assert torch.allclose(rest, x_rest / rms, atol=2e-3, rtol=1e-2)
    check_against_reference("rms", {"x": x, "w": w}, 1e-6, dtype)
    check_against_reference("ln", {"x": x, "w": w, "b": torch.zeros_like(w)}, 1e-5, dtype)


def test_trap9_bf16_weight_gradient_accumulates_in_fp32():
    # Liger PR #950: dW accumulated in bf16 drifts with M. M = 2048 rows (docs/numerics.md trap 9
    # names 131072) already puts a bf16 accumulator 25x outside the fp32-accumulating reference;
    # checked below.
    m, n = 2048, 64
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(m, n, generator=gen).to(torch.bfloat16)
    dy = torch.randn(m, n, generator=gen).to(torch.bfloat16)
    w = torch.ones(n, dtype=torch.bfloat16, requires_grad=True)
    rms_norm(x, w).backward(dy)
    xhat = x.double() * torch.rsqrt(x.double().pow(2).mean(-1, keepdim=True) + 1e-6)
    ref = (dy.double() * xhat).sum(0)
    fp32_acc = (dy.float() * xhat.float()).sum(0).to(torch.bfloat16)

    def rel(v):
        return ((v.double() - ref).norm() / ref.norm()).item()

    assert rel(w.grad) <= 2 * rel(fp32_acc) + 1e-6, (rel(w.grad), rel(fp32_acc))
    acc = torch.zeros(n, dtype=torch.bfloat16)  # what broken code does: a bf16 running sum
    for row in (dy.float() * xhat.float()).to(torch.bfloat16):
        acc = acc + row
    assert rel(acc) > 2 * rel(fp32_acc), "the test would not catch a bf16 accumulator"


@pytest.mark.parametrize("family", ["rms", "ln"])
def test_trap10_weight_gradients_are_bitwise_deterministic(family):
    # Atomics make dW run-to-run different; we reduce fp32 partials in a fixed order.
    inputs = make_inputs(family, (40,), 300, torch.float16, residual=True)
    dy = torch.randn(40, 300).to(torch.float16)
    dres = torch.randn(40, 300).to(torch.float16)
    g1 = run_kernel(family, inputs, dy, dres, 1e-5)[2]
    g2 = run_kernel(family, inputs, dy, dres, 1e-5)[2]
    for k in g1:
        assert torch.equal(g1[k], g2[k]), k


@pytest.mark.parametrize("family", ["rms", "ln"])
def test_trap11_upstream_gradient_is_not_modified(family):
    # Liger #370: dx written into dy in place corrupts a dy shared by two consumers.
    inputs = make_inputs(family, (6,), 1024, torch.float32)
    x = inputs["x"].requires_grad_(True)
    w = inputs["w"]
    y = rms_norm(x, w) if family == "rms" else layer_norm(x, w, inputs["b"])
    z = y.detach().clone().requires_grad_(True)  # a second consumer of the same dy
    dy = torch.randn_like(y)
    saved = dy.clone()
    (dx,) = torch.autograd.grad(y, x, dy)
    (dz,) = torch.autograd.grad((z * 3).sum() + (y.detach() * 0).sum(), z)
    assert torch.equal(dy, saved)
    assert dx.data_ptr() != dy.data_ptr()
    assert torch.equal(dz, torch.full_like(z, 3.0))


def test_trap13_gemma_offset_not_rounded_in_bf16():
    # Liger PR #1462: 1 + w with w = 2^-8 rounded in bf16 gives exactly 1.0; we add in fp32.
    n = 4096
    gen = torch.Generator().manual_seed(13)
    x = torch.randn(4, n, generator=gen).to(torch.bfloat16)
    w = torch.full((n,), 2.0**-8, dtype=torch.bfloat16)
    assert (1 + w).eq(1).all()  # the broken result, for reference
    y = rms_norm(x, w, offset=1.0).double()
    xhat = rms_formula(x.double(), torch.zeros(n, dtype=torch.float64), 1e-6, offset=1.0)[0]
    ratio = (y / xhat)[xhat.abs() > 0.1].mean().item()
    assert abs(ratio - (1 + 2.0**-8)) < 5e-4, ratio
    inputs = {"x": x, "w": w}
    check_against_reference("rms", inputs, 1e-6, torch.bfloat16, offset=1.0)


@pytest.mark.parametrize("family", ["rms", "ln"])
@pytest.mark.parametrize("bad", [math.inf, math.nan])
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_nonfinite_row_stays_nonfinite(family, bad):
    # docs/numerics.md section 1: one inf or NaN must give a non-finite row, never a row of zeros.
    x = torch.randn(3, 1000, dtype=torch.float16)
    x[1, 7] = bad
    w, b = torch.ones(1000, dtype=torch.float16), torch.zeros(1000, dtype=torch.float16)
    y = rms_norm(x, w) if family == "rms" else layer_norm(x, w, b)
    assert not torch.isfinite(y[1]).all()
    assert torch.isfinite(y[0]).all() and torch.isfinite(y[2]).all()


# --- autograd plumbing -------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["rms", "rms_res_offset", "ln", "ln_nobias_res"], ids=lambda c: c)
def test_gradcheck_fp64(case):
    # The interpreter runs fp64 kernels (statistics stay fp64), so finite differences are exact
    # enough for torch.autograd.gradcheck (fast mode, tight tolerances: gradcheck64).
    gen = torch.Generator().manual_seed(11)

    def t(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64, requires_grad=True)

    x, w, b, r = t(2, 8), t(8), t(8), t(2, 8)
    if case == "rms":
        fn, args = (lambda x, w: rms_norm(x, w)), (x, w)
    elif case == "rms_res_offset":
        fn, args = (lambda x, w, r: rms_norm(x, w, residual=r, offset=1.0)), (x, w, r)
    elif case == "ln":
        fn, args = (lambda x, w, b: layer_norm(x, w, b)), (x, w, b)
    else:
        fn, args = (lambda x, w, r: layer_norm(x, w, None, residual=r)), (x, w, r)
    assert gradcheck64(fn, args)


@pytest.mark.parametrize("family", ["rms", "ln"])
def test_saved_tensors_are_minimal(family):
    # The memory suite allows the ideal bytes + 4 per row: we save x (or residual_out), the
    # weight (a parameter, no new memory) and fp32 rstd (and mean) per row.
    m, n = 16, 256
    x = torch.randn(m, n, dtype=torch.bfloat16, requires_grad=True)
    w = torch.ones(n, dtype=torch.bfloat16, requires_grad=True)
    b = torch.zeros(n, dtype=torch.bfloat16, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = rms_norm(x, w) if family == "rms" else layer_norm(x, w, b)
    stats = [t for t in saved if t.dtype == torch.float32]
    assert len(saved) == (3 if family == "rms" else 4)
    assert all(t.shape == (m,) for t in stats) and len(stats) == len(saved) - 2
    assert any(t.data_ptr() == x.data_ptr() for t in saved)  # x itself, not a copy
    y.sum().backward()


def test_residual_gradients_do_not_alias_after_accumulation():
    x = torch.randn(4, 64, requires_grad=True)
    r = torch.randn(4, 64, requires_grad=True)
    w = torch.ones(64, requires_grad=True)
    y, s = rms_norm(x, w, residual=r)
    (y.sum() + s.sum()).backward()
    assert torch.equal(x.grad, r.grad)
    x.grad.zero_()
    assert r.grad.abs().sum() > 0, "x.grad and residual.grad share storage"


def test_works_when_triton_was_imported_first():
    # Triton creates tl.sum / tl.zeros as @jit functions on first import; a process that imported
    # triton before normbench.kernels set TRITON_INTERPRET must still run the kernels.
    import subprocess
    import sys

    code = (
        "import triton, torch\n"
        "from normbench.kernels import rms_norm, layer_norm\n"
        "x = torch.randn(3, 40, requires_grad=True); w = torch.ones(40, requires_grad=True)\n"
        "(rms_norm(x, w).sum() + layer_norm(x, w, None).sum()).backward()\n"
        "assert torch.isfinite(x.grad).all() and torch.isfinite(w.grad).all()\n"
    )
    # Without the CPU suite's TRITON_INTERPRET (tests/conftest.py): normbench.kernels sets it
    # itself, after triton was imported, which is the case under test.
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
