"""The fp64 references against torch.nn modules; the byte models against hand-computed values."""

import pytest
import torch

from normbench.dtypes import to_torch
from normbench.inputs import make_tensors
from normbench.variants import DEFAULT_SEMANTICS, VARIANTS, Shape, get_variant
from normbench.variants.base import Semantics
from normbench.variants.groupnorm import num_groups

SHAPE = Shape(2, 5, 64)


def ref(name, tensors, sem=DEFAULT_SEMANTICS, rt=None):
    v = get_variant(name)
    return v.formula(tensors, dict(v.scalars), sem, rt)


def module_output(name, t):
    n = SHAPE.dim
    x = t["x"]
    if name == "layernorm":
        m = torch.nn.LayerNorm(n, eps=1e-5, dtype=torch.float64)
    elif name == "rmsnorm":
        m = torch.nn.RMSNorm(n, eps=1e-6, dtype=torch.float64)
    elif name == "batchnorm":
        m = torch.nn.BatchNorm1d(n, eps=1e-5, dtype=torch.float64).train()
        with torch.no_grad():
            m.weight.copy_(t["weight"]), m.bias.copy_(t["bias"])
        return m(x.reshape(-1, n)).reshape(x.shape)
    elif name == "groupnorm":
        m = torch.nn.GroupNorm(num_groups(n), n, eps=1e-5, dtype=torch.float64)
        with torch.no_grad():
            m.weight.copy_(t["weight"]), m.bias.copy_(t["bias"])
        return m(x.reshape(-1, n)).reshape(x.shape)
    elif name == "instancenorm":
        m = torch.nn.InstanceNorm1d(n, eps=1e-5, affine=True, dtype=torch.float64)
        with torch.no_grad():
            m.weight.copy_(t["weight"]), m.bias.copy_(t["bias"])
        return m(x.transpose(1, 2)).transpose(1, 2)
    else:
        raise AssertionError(name)
    with torch.no_grad():
        m.weight.copy_(t["weight"])
        if getattr(m, "bias", None) is not None:
            m.bias.copy_(t["bias"])
    return m(x)


@pytest.mark.parametrize("name", ["layernorm", "rmsnorm", "batchnorm", "groupnorm", "instancenorm"])
def test_reference_matches_torch_module(name):
    t = make_tensors(get_variant(name), SHAPE, seed=3)
    (y,) = ref(name, t)
    with torch.no_grad():
        expected = module_output(name, t)
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)


def test_dyt_reference_is_the_paper_formula():
    t = make_tensors(get_variant("dyt"), SHAPE, seed=1)
    (y,) = ref("dyt", t)
    expected = t["weight"] * torch.tanh(0.5 * t["x"]) + t["bias"]
    torch.testing.assert_close(y, expected, rtol=0, atol=0)


@pytest.mark.parametrize("name,base", [("add_layernorm", "layernorm"), ("add_rmsnorm", "rmsnorm")])
def test_add_variants_normalize_the_sum_and_return_it(name, base):
    t = make_tensors(get_variant(name), SHAPE, seed=2)
    y, s = ref(name, t)
    torch.testing.assert_close(s, t["x"] + t["residual"])
    plain = {k: v for k, v in t.items() if k != "residual"}
    plain["x"] = s
    torch.testing.assert_close(y, ref(base, plain)[0])


def test_llama_cast_rounds_before_the_weight():
    t = make_tensors(get_variant("rmsnorm"), SHAPE, seed=0)
    rt = to_torch("bf16")
    (y,) = ref("rmsnorm", t, Semantics(cast="llama"), rt)
    h = t["x"] * torch.rsqrt(t["x"].pow(2).mean(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(y, t["weight"] * h.to(rt).double(), rtol=0, atol=0)


def test_eps_conventions_differ_near_eps():
    # Mean square near eps: clamp and inside differ by up to sqrt(2) (docs/numerics.md section 1).
    x = torch.full((1, 1, 4), 1e-3, dtype=torch.float64)  # mean square 1e-6 == eps
    t = {"x": x, "weight": torch.ones(4, dtype=torch.float64)}
    inside = ref("rmsnorm", t, Semantics(eps="inside"))[0]
    clamp = ref("rmsnorm", t, Semantics(eps="clamp"))[0]
    torch.testing.assert_close(clamp / inside, torch.full_like(x, 2**0.5))


def test_byte_models_by_hand():
    s = Shape(2, 3, 8)  # M = 6, N = 8
    rms, ln = VARIANTS["rmsnorm"], VARIANTS["layernorm"]
    # RMSNorm fwd: 2bMN + N*bw = 2*2*48 + 8*2 = 208
    assert rms.ideal_bytes(s, 2, 2, "fwd") == 208
    # RMSNorm bwd: 3bMN + 4M (rstd) + N*bw (w) + N*bw (dw) = 288 + 24 + 16 + 16
    assert rms.ideal_bytes(s, 2, 2, "bwd") == 344
    # A training step's forward also writes the rstd its backward reads: 4M = 24 more.
    assert rms.ideal_bytes(s, 2, 2, "fwd+bwd") == 208 + 24 + 344
    # LayerNorm fwd: 2bMN + 2N*bw = 384 + 64 (fp32)
    assert ln.ideal_bytes(s, 4, 4, "fwd") == 448
    # LayerNorm bwd: 3bMN + 8M + N*bw + 2N*bw = 576 + 48 + 32 + 64
    assert ln.ideal_bytes(s, 4, 4, "bwd") == 720
    assert ln.ideal_bytes(s, 4, 4, "fwd+bwd") == 448 + 48 + 720  # mean and rstd: 8M
    # add + RMSNorm fwd: 4bMN + N*bw = 384 + 16
    assert VARIANTS["add_rmsnorm"].ideal_bytes(s, 2, 2, "fwd") == 400
    add_ln = VARIANTS["add_layernorm"]
    assert add_ln.ideal_bytes(s, 2, 2, "fwd+bwd") == (
        add_ln.ideal_bytes(s, 2, 2, "fwd") + 48 + add_ln.ideal_bytes(s, 2, 2, "bwd"))  # fmt: skip
    dyt = VARIANTS["dyt"]  # no statistics: the sum of the two
    assert dyt.ideal_bytes(s, 2, 2, "fwd+bwd") == dyt.ideal_bytes(s, 2, 2, "fwd") + dyt.ideal_bytes(
        s, 2, 2, "bwd"
    )
    # Saved for backward: x plus one fp32 per row (RMSNorm), two (LayerNorm).
    assert rms.ideal_saved(s, 2) == 96 + 24
    assert ln.ideal_saved(s, 2) == 96 + 48
    # BatchNorm keeps two fp32 statistics per channel, not per row.
    assert VARIANTS["batchnorm"].ideal_saved(s, 2) == 96 + 64


def test_unknown_variant_names_the_known_ones():
    with pytest.raises(ValueError, match="choose from layernorm, rmsnorm"):
        get_variant("nosuch")
