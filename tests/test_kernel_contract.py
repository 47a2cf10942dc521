"""The kernels' contract (docs/numerics.md section 9) and the options peers have, through the
interpreter.

Each "found" test reproduces a finding of the kernel review with its own numbers; each option
test checks every output and gradient against the fp64 contract (tests/kernel_reference.py).
"""

from __future__ import annotations

import pytest
import torch

from normbench.kernels import launch, layer_norm, rms_norm
from tests.kernel_reference import check, formula, gradcheck64, needs_interpreter, worst_ratio

pytestmark = [needs_interpreter, pytest.mark.interpreter]

BF16, FP16, FP32, FP64 = torch.bfloat16, torch.float16, torch.float32, torch.float64


def _randn(*shape, dtype=FP32, mean=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (mean + torch.randn(*shape, generator=g, dtype=FP64)).to(dtype)


def _params(n, dtype, seed=1, shape=None):
    shape = shape or (n,)
    return 1 + 0.1 * _randn(*shape, dtype=dtype, seed=seed), 0.1 * _randn(
        *shape, dtype=dtype, seed=seed + 1
    )


# --- what was found ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, c, strided",
    [(BF16, 64.0, False), (FP16, 1000.0, False), (BF16, 0.0, True)],
    ids=["bf16-c64", "fp16-c1000", "bf16-c0-strided"],
)
def test_found_add_layernorm_backward_matches_its_forward(dtype, c, strided):
    # M=37, N=1024, x ~ N(0,1), r = c + N(0,1), fp32 weight and bias: dW was 1.43 off (allowed
    # 6.6e-3) at bf16 c=64, dx 3.6e-2 (allowed 5.3e-3) at fp16 c=1000, because backward rebuilt
    # x_hat from the rounded residual output while forward normalized the fp32 sum.
    m, n = 37, 1024
    x = _randn(m, 2 * n if strided else n, dtype=dtype, seed=3)
    r = _randn(m, 2 * n if strided else n, dtype=dtype, mean=c, seed=4)
    if strided:
        x, r = x[:, :n], r[:, :n]
    w, b = _params(n, FP32)
    ratios = check("ln", {"x": x, "w": w, "b": b, "r": r}, eps=1e-5)
    assert max(ratios.values()) <= 1


def test_found_db_is_rounded_once_to_the_bias_dtype():
    # bf16 weight with an fp32 bias: dB went through bf16 first (error 6.2e-2 at |dB| = 16.2).
    m, n = 300, 512
    x = _randn(m, n, dtype=BF16, seed=5)
    w, _ = _params(n, BF16)
    _, b = _params(n, FP32)
    check("ln", {"x": x, "w": w, "b": b}, eps=1e-5)
    # and the fp32 dB is fp32-exact, not bf16-exact: compare with the fp32 sum of dy directly
    xl, bl = x.clone().requires_grad_(True), b.clone().requires_grad_(True)
    dy = _randn(m, n, dtype=BF16, seed=6)
    layer_norm(xl, w, bl).backward(dy)
    want = dy.double().sum(0)
    assert bl.grad.dtype == FP32
    assert (bl.grad.double() - want).abs().max() < 1e-4 * want.abs().max()


@pytest.mark.parametrize("family", ["rms", "ln"])
def test_found_dx_keeps_x_dtype_beside_a_narrow_residual(family):
    # fp32 x with a bf16 residual: dx was dragged to bf16 (error 1.6e-2, allowed about 1e-4).
    m, n = 16, 1024
    x = _randn(m, n, dtype=FP32, seed=7)
    r = _randn(m, n, dtype=BF16, seed=8)
    w, b = _params(n, FP32)
    inputs = {"x": x, "w": w, "r": r} | ({"b": b} if family == "ln" else {})
    ratios = check(family, inputs)
    assert ratios["dx"] <= 1


@pytest.mark.parametrize("family", ["rms", "ln"])
def test_found_double_backward_raises_instead_of_dropping_terms(family):
    x = _randn(4, 64, seed=9).requires_grad_(True)
    w = torch.ones(64, requires_grad=True)
    y = rms_norm(x, w) if family == "rms" else layer_norm(x, w, None)
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(y.pow(2).sum(), x, create_graph=True)
    # without create_graph the same backward works
    (g,) = torch.autograd.grad(y.pow(2).sum(), x)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("variant", ["rms", "ln", "add_rms", "add_ln"])
def test_found_weight_none_is_elementwise_affine_false(variant):
    # weight=None raised AttributeError: 'NoneType' object has no attribute 'contiguous'.
    family = variant.removeprefix("add_")
    inputs = {"x": _randn(6, 300, dtype=BF16, seed=10)}
    if variant.startswith("add"):
        inputs["r"] = _randn(6, 300, dtype=BF16, seed=11)
    check(family, inputs)


# --- options the peers have ----------------------------------------------------------------


@pytest.mark.parametrize("x_dtype, w_dtype", [(FP16, BF16), (FP32, BF16), (BF16, FP32)])
@pytest.mark.parametrize("family", ["rms", "ln"])
def test_weight_dtype_apart_from_x(family, x_dtype, w_dtype):
    n = 1000
    w, b = _params(n, w_dtype)
    inputs = {"x": _randn(9, n, dtype=x_dtype, seed=12), "w": w}
    if family == "ln":
        inputs["b"] = b
    check(family, inputs)


@pytest.mark.parametrize("dtype", [FP32, FP16, BF16])
def test_rmsnorm_with_bias(dtype):
    # QuACK tests/test_rmsnorm.py test_rmsnorm_with_bias: fp16 x, fp32 weight and bias.
    w, b = _params(1024, FP32)
    check("rms", {"x": _randn(32, 1024, dtype=dtype, seed=13), "w": w, "b": b})


@pytest.mark.parametrize("family", ["rms", "ln"])
@pytest.mark.parametrize("dtype", [FP32, FP16, BF16])
def test_per_head_weight_qk_norm(family, dtype):
    # QK-norm with a weight per head, x (B, S, H, D), weight and bias (H, D) in fp32, with a
    # residual: QuACK tests/test_rmsnorm.py test_rmsnorm_qk shape (2, 16, 4, 64).
    shape, h, d = (2, 16, 4, 64), 4, 64
    w, b = _params(d, FP32, shape=(h, d))
    inputs = {
        "x": _randn(*shape, dtype=dtype, seed=14),
        "w": w,
        "b": b,
        "r": _randn(*shape, dtype=dtype, seed=15),
    }
    check(family, inputs)


def test_per_head_weight_needs_the_head_dim():
    with pytest.raises(ValueError, match=r"needs x of shape \(\.\.\., 4, 64\)"):
        rms_norm(torch.randn(2, 8, 64), torch.ones(4, 64))


@pytest.mark.parametrize("family", ["rms", "ln"])
def test_residual_in_fp32_apart_from_x(family):
    # bf16 x and residual, residual_out in fp32: exactly x + r (QuACK
    # test_rmsnorm_residual_dtype_override), the norm of that fp32 sum, dresidual in bf16.
    n = 2048
    w, b = _params(n, FP32)
    inputs = {"x": _randn(5, n, dtype=BF16, seed=16), "w": w, "r": _randn(5, n, dtype=BF16)}
    if family == "ln":
        inputs["b"] = b
    check(family, inputs, res_dtype=FP32)
    # an fp32 residual stream (flash-attention's residual_in_fp32): fp32 r beside bf16 x
    inputs["r"] = _randn(5, n, dtype=FP32, seed=17)
    check(family, inputs)
    # the first layer: no residual yet, the stream starts as x in fp32
    del inputs["r"]
    check(family, inputs, res_dtype=FP32)


@pytest.mark.parametrize("dtype", [FP16, BF16])
def test_llama_cast_matches_hugging_face_llama_rmsnorm(dtype):
    # Hugging Face LlamaRMSNorm (Liger's casting_mode="llama"): weight * x_hat.to(input_dtype).
    n = 512
    x = _randn(64, n, dtype=dtype, seed=18)
    w = (1 + 0.1 * _randn(n, seed=19)).to(dtype)
    check("rms", {"x": x, "w": w}, cast="llama")
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
    want = w * h.to(dtype)
    got = rms_norm(x, w, cast="llama")
    # x_hat is rounded exactly as HF rounds it; the weight product rounds once (HF too, in
    # 16-bit): at most one ulp apart where the fp32 product sits on a rounding boundary.
    assert (got.double() - want.double()).abs().max() <= 2 ** -(7 if dtype == BF16 else 10) * 4


@pytest.fixture
def small_loop(monkeypatch):
    """The looped kernels at small N: rows above 64 loop over 16-wide chunks."""
    monkeypatch.setattr(launch, "TILE_MAX_N", 64)
    monkeypatch.setattr(launch, "LOOP_BLOCK", 16)


@pytest.mark.parametrize("family", ["rms", "ln"])
@pytest.mark.parametrize("dtype", [FP32, FP16, BF16])
def test_looped_kernels_small_chunks(small_loop, family, dtype):
    n = 72  # 5 chunks, the last one partial
    w, b = _params(n, FP32)
    inputs = {"x": _randn(7, n, dtype=dtype, mean=0.5, seed=20), "w": w, "b": b}
    inputs["r"] = _randn(7, n, dtype=dtype, mean=3.0, seed=21)
    check(family, inputs)
    del inputs["w"]
    check(family, inputs, res_dtype=FP32)


@pytest.mark.parametrize("family", ["rms", "ln"])
def test_looped_kernels_offset_rows(small_loop, family):
    # docs/numerics.md trap 4 (x = 1e4 + N(0, 1)) and padded lanes (docs/numerics.md trap 5) through
    # the chunked statistics.
    n = 1000
    inputs = {"x": _randn(3, n, mean=1e4, seed=22), "w": _params(n, FP32)[0]}
    check(family, inputs, eps=1e-5)


@pytest.mark.parametrize("family", ["rms", "ln"])
@pytest.mark.parametrize("n", [16384, 32768])
def test_wide_rows_above_8192(family, n):
    # Llama 3 405B: N = 16384; QuACK tests up to 262144 (below, forward only).
    w, b = _params(n, FP32)
    inputs = {"x": _randn(3, n, dtype=BF16, seed=23), "w": w, "r": _randn(3, n, dtype=BF16)}
    if family == "ln":
        inputs["b"] = b
    check(family, inputs)


def test_widest_row_forward():
    n = launch.MAX_N  # 262144, QuACK's widest
    x = _randn(1, n, dtype=BF16, seed=24)
    w = _params(n, FP32)[0]
    y = rms_norm(x, w)
    ref, _ = formula("rms", {"x": x.double(), "w": w.double()}, eps=1e-6)
    nat, _ = formula("rms", {"x": x.float(), "w": w.float()}, eps=1e-6)
    assert worst_ratio(y, ref, nat.to(BF16), BF16) <= 1
    with pytest.raises(ValueError, match="exceeds 262,144"):
        rms_norm(torch.randn(1, n + 1), None)


@pytest.mark.parametrize(
    "case", ["rms_nw_bias", "rms_heads_res", "ln_heads", "ln_nw_res", "rms_llama_res"]
)
def test_gradcheck_fp64_options(case):
    def t(*shape):
        gen = torch.Generator().manual_seed(len(shape) + sum(shape))
        return torch.randn(*shape, generator=gen, dtype=FP64, requires_grad=True)

    x, x4, r4 = t(3, 8), t(1, 2, 2, 8), t(1, 2, 2, 8)
    wh, bh, b, r = t(2, 8), t(2, 8), t(8), t(3, 8)
    fns = {
        "rms_nw_bias": (lambda x, b: rms_norm(x, None, bias=b), (x, b)),
        "rms_heads_res": (
            lambda x, w, b, r: rms_norm(x, w, residual=r, bias=b)[0],
            (x4, wh, bh, r4),
        ),
        "ln_heads": (lambda x, w, b: layer_norm(x, w, b), (x4, wh, bh)),
        "ln_nw_res": (lambda x, r: layer_norm(x, None, None, residual=r), (x, r)),
        "rms_llama_res": (lambda x, r: rms_norm(x, None, residual=r, cast="llama"), (x, r)),
    }
    fn, args = fns[case]
    assert gradcheck64(fn, args)


def test_gradcheck_fp64_looped(monkeypatch):
    monkeypatch.setattr(launch, "TILE_MAX_N", 16)  # rows of 24: two chunks, the last partial
    monkeypatch.setattr(launch, "LOOP_BLOCK", 16)
    gen = torch.Generator().manual_seed(0)
    x, r, w, b = (
        torch.randn(*s, generator=gen, dtype=FP64, requires_grad=True)
        for s in ((2, 24), (2, 24), (24,), (24,))
    )
    assert gradcheck64(lambda x, r, w: rms_norm(x, w, residual=r)[0], (x, r, w))
    assert gradcheck64(lambda x, w, b: layer_norm(x, w, b), (x[:1], w, b))


class _OneWrongElement(torch.autograd.Function):
    """Identity whose backward scales one element of the gradient by 1 + 1e-4."""

    @staticmethod
    def forward(ctx, y):
        return y.clone()

    @staticmethod
    def backward(ctx, g):
        g = g.clone()
        g[0, 3] *= 1 + 1e-4
        return g


def test_gradcheck64_catches_one_wrong_element():
    # The fast-mode check above must not be weaker than the full one it replaces.
    gen = torch.Generator().manual_seed(1)
    x, b = (torch.randn(*s, generator=gen, dtype=FP64, requires_grad=True) for s in ((3, 8), (8,)))
    assert gradcheck64(lambda x, b: rms_norm(x, None, bias=b), (x, b))
    with pytest.raises(RuntimeError, match="Jacobian mismatch"):
        gradcheck64(lambda x, b: _OneWrongElement.apply(rms_norm(x, None, bias=b)), (x, b))


@pytest.mark.parametrize("family", ["rms", "ln"])
def test_single_head_weight_keeps_its_shape(family):
    # A (1, N) weight with x (..., 1, N): dW must come back (1, N), not (N,).
    x = _randn(3, 1, 64, seed=26).requires_grad_(True)
    w = torch.ones(1, 64, requires_grad=True)
    y = rms_norm(x, w) if family == "rms" else layer_norm(x, w, None)
    y.sum().backward()
    assert w.grad.shape == (1, 64)


def test_fp64_with_a_bf16_residual_is_refused_in_words():
    x = torch.randn(2, 16, dtype=FP64)
    with pytest.raises(ValueError, match="with fp64 x the residual"):
        rms_norm(x, None, residual=torch.randn(2, 16).to(BF16))
    # fp64 x with an fp32 residual keeps fp64 accumulators in backward too
    xs = x.clone().requires_grad_(True)
    r = torch.randn(2, 16, dtype=FP32, requires_grad=True)
    y, _ = rms_norm(xs, None, residual=r)
    y.backward(torch.ones_like(y))
    s = xs.detach() + r.detach().double()
    s = s.float().double().requires_grad_(True)
    (s * torch.rsqrt(s.pow(2).mean(-1, keepdim=True) + 1e-6)).backward(torch.ones_like(s))
    assert (xs.grad - s.grad).abs().max() < 1e-12
