"""The correctness gate: right implementations pass, wrong ones are caught and named."""

import pytest
import torch

from normbench.backends.base import backend_from_functions
from normbench.backends.composite import FUNCTIONS as COMPOSITE
from normbench.backends.composite import LLAMA
from normbench.backends.eager import EAGER
from normbench.backends.eager import FUNCTIONS as EAGER_FUNCS
from normbench.cases import Case
from normbench.gate import check, prepare
from normbench.variants import Shape, get_variant

# Groups of 8 channels: with 3-channel groups eager fp16/bf16 group_norm backward on CPU is
# 25x outside the tolerance (a real finding the gate reports, not what this test is about).
SHAPE = Shape(2, 16, 256)


def run_gate(fn, variant, dtype, mode="fwd+bwd", sem=EAGER, shape=SHAPE):
    case = Case(variant, "x", dtype, shape, mode)
    p = prepare(get_variant(variant), case)
    return check(fn, p, sem, grads=mode != "fwd")


@pytest.mark.parametrize("variant", list(EAGER_FUNCS))
@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
def test_eager_passes(variant, dtype):
    result = run_gate(EAGER_FUNCS[variant], variant, dtype)
    assert result.ok, result.note
    assert {e.name for e in result.errors} >= {"y", "dx"}


@pytest.mark.parametrize("variant", ["layernorm", "rmsnorm", "add_rmsnorm", "groupnorm"])
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_composite_passes_against_its_llama_reference(variant, dtype):
    result = run_gate(COMPOSITE[variant], variant, dtype, sem=LLAMA)
    assert result.ok, result.note


def test_wrong_eps_is_a_mismatch():
    def bad(x, weight, eps):
        return EAGER_FUNCS["rmsnorm"](x, weight, 0.5)

    x_small = Shape(1, 4, 32)
    result = run_gate(bad, "rmsnorm", "fp32", mode="fwd", shape=x_small)
    assert not result.ok
    assert result.note.startswith("y max error")


def test_one_pass_variance_fails_on_offset_mean():
    # E[x^2] - E[x]^2 cancels catastrophically for x = 1e4 + N(0,1) in fp32
    # (docs/numerics.md trap 4).
    def one_pass(x, weight, bias, eps):
        m = x.mean(-1, keepdim=True)
        var = (x * x).mean(-1, keepdim=True) - m * m
        return (x - m) * torch.rsqrt(var + eps) * weight + bias

    case = Case("layernorm", "x", "fp32", Shape(1, 8, 256), "fwd")
    p = prepare(get_variant("layernorm"), case)
    p.inputs["x"] = p.inputs["x"] + 1e4
    result = check(one_pass, p, EAGER, grads=False)
    assert not result.ok


def test_wrong_shape_and_dtype_are_named():
    shape = Shape(1, 4, 32)
    r = run_gate(lambda x, weight, eps: x[..., :8], "rmsnorm", "fp32", "fwd", shape=shape)
    assert not r.ok and "shape" in r.note
    r = run_gate(lambda x, weight, eps: x.float() * 0 + 1, "rmsnorm", "bf16", "fwd", shape=shape)
    assert not r.ok and "float32" in r.note and "bf16" in r.note


def test_in_place_dy_modification_is_caught():
    # Liger #370: a backward that writes dx into dy corrupts dy for its other consumers.
    class Clobber(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            return EAGER_FUNCS["rmsnorm"](x, w, 1e-6)

        @staticmethod
        def backward(ctx, dy):
            x, w = ctx.saved_tensors
            with torch.enable_grad():
                xx, ww = x.detach().requires_grad_(), w.detach().requires_grad_()
                y = EAGER_FUNCS["rmsnorm"](xx, ww, 1e-6)
                dx, dw = torch.autograd.grad(y, (xx, ww), dy)
            dy.mul_(0)
            return dx, dw

    r = run_gate(lambda x, weight, eps: Clobber.apply(x, weight), "rmsnorm", "fp32")
    assert not r.ok and "in place" in r.note


def _writes_into(name):
    """An RMSNorm that returns the right y and then, outside autograd's view, scales one of its
    arguments by 0 (x) or adds 1 (weight): a hidden in-place write no version counter sees."""

    def rmsnorm(x, weight, eps):
        y = EAGER_FUNCS["rmsnorm"](x, weight, eps)
        with torch.no_grad():
            {"x": x, "weight": weight}[name].mul_(0).add_(1 if name == "weight" else 0)
        return y

    return rmsnorm


@pytest.mark.parametrize("mode", ["fwd", "bwd", "fwd+bwd"])
@pytest.mark.parametrize("name", ["x", "weight"])
def test_a_hidden_write_into_an_argument_is_caught_in_every_mode(name, mode):
    # With gradients the kernel is given fresh leaves, not the prepared inputs: the gate must
    # watch what the kernel was given (docs/numerics.md trap 11). It once watched the inputs
    # only, and passed a kernel that zeroed its x in bwd and fwd+bwd.
    r = run_gate(_writes_into(name), "rmsnorm", "fp32", mode, shape=Shape(1, 4, 32))
    assert not r.ok and r.note == "modified an input or dy in place", r.note


def test_the_right_kernel_passes_in_every_mode():
    for mode in ("fwd", "bwd", "fwd+bwd"):
        r = run_gate(EAGER_FUNCS["rmsnorm"], "rmsnorm", "fp32", mode, shape=Shape(1, 4, 32))
        assert r.ok, (mode, r.note)


def test_function_backend_helper():
    b = backend_from_functions("mine", {"rmsnorm": EAGER_FUNCS["rmsnorm"]}, dtypes=["fp32"])
    case = Case("layernorm", "mine", "fp32", SHAPE, "fwd")
    assert "has no layernorm" in b.supports(case)
    assert "bf16" in b.supports(Case("rmsnorm", "mine", "bf16", SHAPE, "fwd"))
    assert b.supports(Case("rmsnorm", "mine", "fp32", SHAPE, "fwd")) is None


def test_the_inputs_are_put_back_whatever_the_kernel_raises():
    # The case loop turns a plugin's sys.exit() into an error row and goes on to the next
    # backend of the case group, which must see the inputs intact.
    def writes_then_exits(x, weight, eps):
        with torch.no_grad():
            x.mul_(0)
        raise SystemExit(3)

    case = Case("rmsnorm", "x", "fp32", Shape(1, 4, 32), "fwd")
    p = prepare(get_variant("rmsnorm"), case)
    x = p.inputs["x"].clone()
    with pytest.raises(SystemExit):
        check(writes_then_exits, p, EAGER, grads=False)
    assert torch.equal(p.inputs["x"], x)


def test_a_shapes_fwd_and_bwd_share_one_set_of_inputs(monkeypatch):
    """The synthetic inputs do not depend on the mode: made once for both (fp64 on the CPU,
    they are most of a GPU case's wait); each case still sees itself as the set's case."""
    import normbench.gate
    from normbench.suites.common import PreparedCache

    made = []
    real = normbench.gate.prepare
    monkeypatch.setattr(normbench.gate, "prepare", lambda *a, **k: made.append(1) or real(*a, **k))
    cache = PreparedCache(seed=0)
    fwd = Case("rmsnorm", "eager", "fp32", Shape(1, 4, 64), "fwd")
    bwd = Case("rmsnorm", "eager", "fp32", Shape(1, 4, 64), "bwd")
    a, b = cache.get(fwd), cache.get(bwd)
    assert len(made) == 1 and (a.case, b.case) == (fwd, bwd)
    assert a.inputs["x"] is b.inputs["x"] and a.dys[0] is b.dys[0]
    assert torch.equal(b.inputs["x"], prepare(get_variant("rmsnorm"), bwd, 0).inputs["x"])
    cache.get(Case("rmsnorm", "eager", "fp32", Shape(1, 4, 128), "fwd"))
    assert len(made) == 2  # a new shape: a new set


def test_a_kernel_off_by_one_factor_is_a_mismatch_that_says_so():
    # bf16, 1.2% too large everywhere: every element within the tolerance, so the note read
    # "y max error 0.0638 is 0.8x the tolerance" for a mismatch.
    def scaled(x, weight, eps):
        return (EAGER_FUNCS["rmsnorm"](x.float(), weight.float(), eps) * 1.012).to(x.dtype)

    result = run_gate(scaled, "rmsnorm", "bf16", mode="fwd", shape=Shape(2, 16, 1024))
    assert not result.ok
    assert result.note.startswith("y is +1.2% off throughout (")
    (y,) = result.errors
    assert y.worst_ratio <= 1.0 and y.scale_ratio > 1.0
    assert y.scale_error == pytest.approx(0.012, rel=0.05)
