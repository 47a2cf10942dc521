"""The stability suite: the ulp measure, the verdict rules (tolerance, silent zeros, inf/NaN
propagation, determinism, declared semantics), each input distribution with a correct and a
broken implementation, the 2^k range sweep, and the CLI."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from normbench.backends.base import backend_from_functions
from normbench.cli import app
from normbench.inputs import DISTRIBUTIONS, GEMMA_W, get_distribution, make_tensors
from normbench.numerics import MANTISSA_BITS as MANTISSA
from normbench.registry import register_backend, unregister_backend
from normbench.results import Status, dumps, load_run
from normbench.results.stability import (
    StabilityResult,
    SweepPointResult,
    SweepRangeResult,
    Verdict,
)
from normbench.suites.stability import SweepPoint, check_case, range_sweep, safe_run
from normbench.variants import Shape, get_variant
from normbench.variants.base import Semantics
from normbench.verdicts import FAIL, PASS, WARN, check_tensor, combine, ulp_error

FIXTURES = Path(__file__).parent / "stability_fixtures.py"
runner = CliRunner()


@pytest.fixture
def add_backend():
    """Register test-only backends; unregister them afterwards."""
    names = []

    def add(name, functions, **kw):
        register_backend(backend_from_functions(name, functions, **kw), origin="tests")
        names.append(name)
        return name

    yield add
    for n in names:
        unregister_backend(n)


@pytest.fixture
def fp16_square():
    """The broken `(x * x).float()` RMSNorm of pytorch #133085, kept in stability_fixtures.py."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("stability_fixtures", FIXTURES)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    register_backend(mod.broken_backend(), origin="tests")
    yield mod.NAME
    unregister_backend(mod.NAME)


# ---------------------------------------------------------------- the ulp measure


def test_ulp_error_counts_output_ulps_above_a_floor():
    ref = torch.tensor([1.0, 1000.0, 0.0, 2.0**-20])
    # fp16: spacing 2^-10 at 1, 0.5 at 1000; below the floor 0.01, ulps at 0.01: 2^-17.
    impl = torch.tensor([1.0 + 2.0**-10, 1001.0, 1e-3, 2.0**-20])
    u = ulp_error(impl, ref, "fp16", floor=0.01)
    assert u[0].item() == pytest.approx(1.0)
    assert u[1].item() == pytest.approx(2.0)
    assert u[2].item() == pytest.approx(1e-3 / 2.0**-17)  # not 1e-3 / (subnormal spacing)
    assert u[3].item() == 0.0
    # The default floor is the reference's RMS: an error near zero counts in ulps of typical
    # values (RMS of [3, 4, 0, 0] is 2.5: fp16 spacing 2^-9), not of the tiny value itself.
    ref = torch.tensor([3.0, -4.0, 0.0, 1e-6])
    u = ulp_error(ref + torch.tensor([0.0, 0.0, 2.0**-9, 2.0**-8]), ref, "fp16")
    assert u.tolist() == pytest.approx([0.0, 0.0, 1.0, 2.0])
    # bf16 spacing at 1 is 2^-7; a NaN where the reference is finite is infinitely wrong.
    assert ulp_error(torch.tensor([1.0 + 2.0**-7]), torch.tensor([1.0]), "bf16").item() == 1.0
    assert math.isinf(ulp_error(torch.tensor([math.nan]), torch.tensor([1.0]), "fp32").item())


# ---------------------------------------------------------------- verdict rules


def _ref():
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 64, generator=g, dtype=torch.float64)


def test_exact_and_one_ulp_pass_a_silent_zero_row_fails():
    ref = _ref()
    assert check_tensor("y", ref.half(), ref, ref.half(), "fp16").verdict == PASS
    broken = ref.clone()
    broken[1] = 0
    c = check_tensor("y", broken, ref, ref.half(), "fp16")
    assert c.verdict == FAIL and c.error.silent_zero_rows == 1
    assert c.symptom == "rows silently zero (1 of 4 rows of y)"


def test_error_grades_warn_then_fail_against_the_tolerance():
    ref = torch.ones(2, 64, dtype=torch.float64)
    native = ref.clone()  # native exact: the bound is atol (1e-2 in fp16) + 1 ulp (2^-10)
    bound = 1e-2 + 2.0**-10
    signs = torch.tensor([1.0, -1.0], dtype=torch.float64).repeat(32)  # no systematic part
    for excess, verdict in ((0.9, PASS), (2.0, WARN), (5.0, FAIL)):
        impl = ref + excess * bound * signs
        c = check_tensor("y", impl, ref, native, "fp16")
        assert c.verdict == verdict, (excess, c.symptom)
        assert c.error.worst_ratio == pytest.approx(excess)
        assert c.error.scale_error == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("factor, verdict", [(1.005, PASS), (1.01, WARN), (1.02, FAIL),
                                             (1.05, FAIL)])  # fmt: skip
def test_a_kernel_systematically_off_is_caught_where_the_elementwise_rule_is_blind(factor, verdict):
    """bf16's atol (5e-2) let a kernel 1.5% too large everywhere PASS and 5% only WARN. The
    scale error is bounded by 2 unit roundoffs (2 x 2^-8 = 0.78%) over the fp32 formula's."""
    g = torch.Generator().manual_seed(3)
    ref = torch.randn(64, 1024, generator=g, dtype=torch.float64)
    native = ref.bfloat16()
    impl = (ref * factor).bfloat16()
    c = check_tensor("y", impl, ref, native, "bf16")
    if factor <= 1.01:
        assert c.error.worst_ratio <= 1.0  # every element within the elementwise rule
    assert c.error.scale_error == pytest.approx(factor - 1, rel=0.05)
    assert c.error.scale_ratio == pytest.approx((factor - 1) / (2 * 2.0**-8), rel=0.1)
    assert c.verdict == verdict, c.symptom
    if verdict != PASS and c.error.worst_ratio <= 1.0:
        assert c.symptom.startswith(f"y is +{100 * (factor - 1):.2g}% off throughout")
    # A parameter gradient is a sum over rows, its accumulation is judged by its tolerance:
    # no scale rule there.
    assert check_tensor("dweight", impl, ref, native, "bf16", param=True).error.scale_ratio == 0


def test_errors_that_are_no_common_scale_are_not_called_systematic():
    """The scale rule's false alarms in review: per-row or per-channel errors that happen not
    to cancel in 4 rows (groupnorm, batchnorm), and an implementation more accurate than the
    fp32 formula, were FAIL "y is -17% off throughout"."""
    g = torch.Generator().manual_seed(5)
    ref = torch.randn(4, 256, generator=g, dtype=torch.float64)
    native = ref.bfloat16().double()
    per_row = 1 + 0.02 * torch.randn(4, 1, generator=g, dtype=torch.float64)  # one per row
    per_channel = 1 + 0.02 * torch.randn(1, 256, generator=g, dtype=torch.float64)
    for impl in (ref * per_row, ref * per_channel):
        c = check_tensor("y", impl.bfloat16(), ref, native, "bf16")
        assert c.error.scale_ratio <= 1.0, c.symptom
    # More accurate than the fp32 formula: not judged for scale at all.
    worse_native = (ref * 1.03).bfloat16()
    better = check_tensor("y", (ref * 1.02).bfloat16(), ref, worse_native, "bf16")
    assert better.error.scale_ratio == 0.0
    # A common scale is still found in 4 rows.
    common = check_tensor("y", (ref * 1.03).bfloat16(), ref, native, "bf16")
    assert common.error.scale_ratio > 2.0 and common.verdict == FAIL


def test_a_gain_off_per_channel_is_caught_where_the_scale_and_elementwise_rules_are_blind():
    """Gemma's (1 + w) formed in bf16 (trap 13): each channel's gain off by up to half an ulp,
    both ways, so no common scale, and every element within its tolerance: it was PASS. Its
    per-channel rms error is judged against a quarter of a unit roundoff."""
    g = torch.Generator().manual_seed(11)
    ref = torch.randn(4, 1000, generator=g, dtype=torch.float64)
    w = 2.0**-8 + 2.0**-10 * torch.randn(1000, generator=g, dtype=torch.float64)
    native = ref.bfloat16()
    rounded_gain = (1 + w).bfloat16().double() / (1 + w)  # what 1 + w in bf16 does to y
    impl = (ref * rounded_gain).bfloat16()
    c = check_tensor("y", impl, ref, native, "bf16")
    assert c.error.worst_ratio <= 1.0 and c.error.scale_ratio <= 1.0  # blind, both
    assert c.verdict == FAIL and c.symptom.startswith("y is off per channel by"), c.symptom
    assert c.error.channel_error == pytest.approx(float((rounded_gain - 1).std()), rel=0.25)
    assert c.measures()["channel_error"] == c.error.channel_error

    # Rounding alone (each element off on its own, by more than the formula's) and errors per
    # row are no channel errors; each check reaches the rule (an error over twice the fp32
    # formula's).
    def noisy(t, ulps, dtype):
        return t * (1 + ulps * 2.0**-MANTISSA[dtype] * torch.randn(t.shape, generator=g,
                                                                  dtype=torch.float64))  # fmt: skip

    per_row = ref * (1 + 0.01 * torch.randn(4, 1, generator=g, dtype=torch.float64))
    for impl in (noisy(ref, 2, "bf16").bfloat16(), per_row.bfloat16()):
        c = check_tensor("y", impl, ref, native, "bf16")
        assert c.error.rel > 2 * c.native_rel and c.error.channel_ratio == 0.0, c.symptom
    # An fp32 kernel that forms 1 + w in fp32, as the fp32 formula does, is no worse than it:
    # its channels err by the formula's own, which the bound allows twice over (64 rows, so
    # that those channel errors of a third of a unit roundoff are beyond chance).
    ref = torch.randn(64, 1000, generator=g, dtype=torch.float64)
    as_formula = (ref * ((1 + w).float().double() / (1 + w))).float()
    impl = noisy(as_formula.double(), 1.5, "fp32").float()
    c = check_tensor("y", impl, ref, as_formula, "fp32")
    assert c.error.rel > 2 * c.native_rel
    assert c.error.channel_ratio <= 1.0 and c.verdict == PASS, c.symptom
    exact_gain = check_tensor("y", impl, ref, ref.float(), "fp32")  # a formula without them
    assert exact_gain.error.channel_ratio > 1.0, exact_gain.error


def test_gemma_weight_fails_a_kernel_that_forms_one_plus_w_in_bf16(add_backend):
    def rms_gemma_bf16(x, weight, eps):
        xf = x.float()
        h = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
        return (h * (1 + weight).float()).to(x.dtype)  # 1 + w in bf16 (Liger PR #1462)

    name = add_backend("gemma_bf16", {"rmsnorm": rms_gemma_bf16},
                       semantics=Semantics(eps="inside", cast="gemma"))  # fmt: skip
    v = check_case(name, "rmsnorm", "bf16", "gemma-weight", dim=1000)
    assert v.verdict == FAIL and "off per channel" in v.reason, v.reason
    assert check_case("gemma", "rmsnorm", "bf16", "gemma-weight", dim=1000).verdict == PASS


def test_marginal_excess_within_twice_the_fp32_formula_norm_error_passes():
    ref = torch.ones(2, 64, dtype=torch.float64)
    native = ref + 0.01  # the fp32 formula is off by 0.01 everywhere but the first element
    native[0, 0] = 1.0
    impl = ref + 0.015  # over the bound (2 * 0 + atol + ulp) at [0, 0] only, by 1.4x
    c = check_tensor("y", impl, ref, native, "fp16")
    assert c.verdict == PASS and "within 2x the fp32 formula" in c.symptom


def test_non_finite_where_fp64_is_finite_fails():
    ref = _ref()
    impl = ref.clone()
    impl[2, 5] = math.inf
    c = check_tensor("dx", impl, ref, ref, "fp32")
    assert c.verdict == FAIL and c.error.nonfinite == 1
    assert c.symptom == "dx has 1 non-finite values where fp64 is finite"


def test_inf_input_row_must_come_out_non_finite():
    # docs/numerics.md section 1: one +inf or NaN in a row gives a non-finite row, never zeros.
    ref = _ref()
    ref[0] = 0.0
    ref[0, 3] = math.nan  # RMSNorm of a row with one +inf: 0 * x, NaN at the inf
    tainted = torch.tensor([True, False, False, False])
    zeros = ref.clone()
    zeros[0] = 0.0
    c = check_tensor("y", zeros, ref, ref, "fp16", tainted=tainted)
    assert c.verdict == FAIL and c.lost_rows == 1 and c.lost_zero_rows == 1
    assert "come out as finite zeros" in c.symptom
    # Propagating (even over-propagating: a whole NaN row) passes.
    all_nan = ref.clone()
    all_nan[0] = math.nan
    assert check_tensor("y", all_nan, ref, ref, "fp16", tainted=tainted).verdict == PASS
    assert check_tensor("y", ref.clone(), ref, ref, "fp16", tainted=tainted).verdict == PASS
    # The NaN must not leak into the clean rows.
    leaked = all_nan.clone()
    leaked[2, 0] = math.nan
    c = check_tensor("y", leaked, ref, ref, "fp16", tainted=tainted)
    assert c.verdict == FAIL and c.error.nonfinite == 1


def test_parameter_gradient_may_turn_nan_but_not_lose_it():
    ref = torch.ones(64, dtype=torch.float64)
    ref[7] = math.nan
    tainted = torch.tensor([True, False])
    over = torch.full((64,), math.nan, dtype=torch.float64)
    assert check_tensor("dweight", over, ref, ref, "fp16", param=True, tainted=tainted).verdict == (
        PASS
    )
    lost = torch.ones(64, dtype=torch.float64)
    c = check_tensor("dweight", lost, ref, ref, "fp16", param=True, tainted=tainted)
    assert c.verdict == FAIL and c.lost_elements == 1


def test_combine_prefixes_the_trap_and_flags_nondeterminism():
    ref = _ref()
    ok = check_tensor("y", ref, ref, ref, "fp32")
    bad = check_tensor("y", torch.zeros_like(ref), ref, ref, "fp16")
    v = combine([ok, bad], trap="fp16 square overflows at |x| >= 256")
    assert v.verdict == FAIL
    assert v.reason == "fp16 square overflows at |x| >= 256: rows silently zero (4 of 4 rows of y)"
    v = combine([ok], nondeterministic=["dweight"], deterministic=False)
    assert v.verdict == WARN and "differ bitwise in dweight" in v.reason


# ---------------------------------------------------------------- the distributions


def test_every_distribution_is_seeded_described_and_listed():
    v = get_variant("rmsnorm")
    for name, d in DISTRIBUTIONS.items():
        assert d.description and (d.trap or name in ("normal", "unit-max"))
        a = make_tensors(v, Shape(1, 4, 256), seed=3, dist=name)
        b = make_tensors(v, Shape(1, 4, 256), seed=3, dist=name)
        assert torch.equal(a["x"].nan_to_num(), b["x"].nan_to_num()), name
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0 and "input distributions" in result.output
    for name in DISTRIBUTIONS:
        assert name in result.output


def test_distributions_hold_the_values_their_traps_need():
    v = get_variant("rmsnorm")

    def x(name, dim=256):
        return make_tensors(v, Shape(1, 4, dim), dist=name)["x"].reshape(4, dim)

    assert (x("large").abs() >= 256).float().mean() > 0.2  # their fp16 squares overflow
    s = x("sum-overflow")
    assert (s.abs() == 200).all() and (s.half() * s.half()).isfinite().all()
    assert (s.pow(2).sum(-1) > 65504).all()  # each square fits in fp16, the row's sum does not
    t = x("tiny").half()
    assert (t * t == 0).float().mean() > 0.3  # x * x underflows fp16 (docs/numerics.md trap 3)
    assert x("near-eps").pow(2).mean().item() == pytest.approx(1e-6, rel=0.2)
    assert x("offset").mean().item() == pytest.approx(1e4, abs=0.1)
    # Rounded to half precision, the offset rows are one value or nearly (spacing 8 and 64 at
    # 1e4): the trap named there is the near-zero variance, not fp32's cancellation.
    off = x("offset", 1000)
    assert (off.float().std(-1) > 0.5).all()
    for dt, share in ((torch.float16, 0.5), (torch.bfloat16, 1.0)):
        assert (off.to(dt).double().std(-1) == 0).double().mean() >= share
    trap = get_distribution("offset").trap_for
    assert trap("fp32").startswith("mean 1e4 >> std: cancellation")
    assert trap("fp16").startswith("mean 1e4 >> std, rounded to fp16 (spacing 8 at 1e4)")
    assert "overflows fp16" in trap("fp16") and "overflows" not in trap("bf16")
    m = x("massive")
    assert ((m == 2600).sum(-1) == 1).all() and (m == 2600).any(0).sum() == 1  # one channel
    c = x("constant")
    assert (c == c[:, :1]).all()
    z = x("zero")
    assert (z[0::2] == 0).all() and (z[1::2] != 0).all()
    for name, test in (("inf", torch.isposinf), ("nan", torch.isnan)):
        bad = test(x(name))
        assert (bad[0::2].sum(-1) == 1).all() and not bad[1::2].any()
    w = make_tensors(v, Shape(1, 4, 256), dist="gemma-weight")["weight"]
    assert (w - GEMMA_W).abs().max() < 2**-7 and get_distribution("gemma-weight").cast == "gemma"
    u = x("unit-max", 1000)
    assert torch.allclose(u.abs().amax(-1), torch.full((4,), 0.999, dtype=torch.float64))
    assert (u * 256).half().abs().max() < 256  # so 2^8 is the last scale the fp16 square survives


def test_correct_implementations_pass_on_normal_fp16():
    from normbench import kernels

    backends = ["eager", "composite"] + (["triton"] if kernels.available()[0] else [])
    for variant in ("rmsnorm", "layernorm"):
        for b in backends:
            v = check_case(b, variant, "fp16", "normal", dim=1000, rows=4, determinism=True)
            assert v.verdict == PASS, (variant, b, v.reason)
            assert v.deterministic is True


@pytest.mark.parametrize(
    "dist", ["large", "sum-overflow", "tiny", "offset", "massive", "constant", "zero", "inf", "nan"]
)
def test_eager_rmsnorm_passes_every_trap_in_fp16(dist):
    v = check_case("eager", "rmsnorm", "fp16", dist, dim=256, rows=4)
    assert v.verdict == PASS, v.reason


@pytest.mark.parametrize(
    ("dist", "symptom"),
    [
        ("large", "rows silently zero"),  # docs/numerics.md trap 1, pytorch #133085
        ("massive", "rows silently zero"),  # docs/numerics.md trap 8, sglang #27540
        ("offset", "rows silently zero"),  # 1e4 squares to 1e8
        ("tiny", "dx error"),  # docs/numerics.md trap 3: x * x underflows
    ],
)
def test_square_before_upcast_fails_where_the_square_leaves_fp16(fp16_square, dist, symptom):
    v = check_case(fp16_square, "rmsnorm", "fp16", dist, dim=256, rows=4)
    assert v.verdict == FAIL and symptom in v.reason
    assert v.reason.startswith(get_distribution(dist).trap_for("fp16"))
    assert check_case(fp16_square, "rmsnorm", "fp16", "normal", dim=256, rows=4).verdict == PASS
    assert check_case(fp16_square, "rmsnorm", "bf16", dist, dim=256, rows=4).verdict != FAIL


def test_large_magnitude_reason_in_words(fp16_square):
    v = check_case(fp16_square, "rmsnorm", "fp16", "large", dim=1000, rows=4)
    assert v.reason == "fp16 square overflows at |x| >= 256: rows silently zero (4 of 4 rows of y)"


def _rms(x, ms, weight, eps):
    return (x.float() * torch.rsqrt(ms + eps) * weight.float()).to(x.dtype)


def test_half_precision_sum_of_squares_fails_sum_overflow(add_backend):
    # docs/numerics.md trap 2: each fp16 square of 200 fits (40000), the half-precision sum does
    # not.
    def half_sum(x, weight, eps):
        sq = x.float().pow(2).to(x.dtype)
        ms = sq.sum(-1, keepdim=True).float() / x.shape[-1]
        return _rms(x, ms, weight, eps)

    name = add_backend("half_sum", {"rmsnorm": half_sum})
    v = check_case(name, "rmsnorm", "fp16", "sum-overflow", dim=256, rows=4)
    assert v.verdict == FAIL and "silently zero" in v.reason
    assert check_case(name, "rmsnorm", "fp16", "normal", dim=256, rows=4).verdict == PASS


@pytest.mark.parametrize("name", ["x", "weight"])
def test_a_hidden_write_into_an_argument_fails(add_backend, name):
    # docs/numerics.md trap 11: the right y, then an argument overwritten where autograd does
    # not look. Stability runs forward and backward on fresh leaves; the judge once watched the
    # prepared inputs instead, and called this kernel PASS.
    def writes(x, weight, eps):
        y = _rms(x, x.float().pow(2).mean(-1, keepdim=True), weight, eps)
        with torch.no_grad():
            {"x": x, "weight": weight}[name].mul_(0).add_(1 if name == "weight" else 0)
        return y

    v = check_case(add_backend("writes", {"rmsnorm": writes}), "rmsnorm", "fp16", dim=256, rows=4)
    assert v.verdict == FAIL and v.reason == "modifies an input or dy in place (Liger #370)"


def test_a_declared_in_place_kernel_gets_its_own_copies(add_backend):
    # Semantics(inplace=True): the kernel writes its output into x, as it says it does. The
    # speed and memory gates give it copies; stability did not, and once it watched the leaves
    # it called such a kernel FAIL in bwd and fwd+bwd (docs/plugins.md).
    def overwrite(x, weight, eps):
        y = _rms(x, x.float().pow(2).mean(-1, keepdim=True), weight, eps)
        x.copy_(y)
        return x

    name = add_backend("overwrite", {"rmsnorm": overwrite}, semantics=Semantics(inplace=True))
    assert check_case(name, "rmsnorm", "fp16", dim=256, rows=4).verdict == PASS
    bad = add_backend("overwrite_undeclared", {"rmsnorm": overwrite})
    v = check_case(bad, "rmsnorm", "fp16", dim=256, rows=4)
    assert v.verdict == FAIL and "in-place operation" in v.reason  # autograd refused it


def test_no_eps_gives_nan_on_zero_and_constant_rows(add_backend):
    # docs/numerics.md traps 6 and 7: 0 / sqrt(0) and a zero variance without eps are NaN.
    def rms_no_eps(x, weight, eps):
        return _rms(x, x.float().pow(2).mean(-1, keepdim=True), weight, 0.0)

    def ln_no_eps(x, weight, bias, eps):
        return F.layer_norm(x.float(), (x.shape[-1],), weight.float(), bias.float(), 0.0).to(
            x.dtype
        )

    name = add_backend("no_eps", {"rmsnorm": rms_no_eps, "layernorm": ln_no_eps})
    v = check_case(name, "rmsnorm", "fp16", "zero", dim=256, rows=4)
    assert v.verdict == FAIL and "non-finite values where fp64 is finite" in v.reason
    v = check_case(name, "layernorm", "fp32", "constant", dim=256, rows=4)
    assert v.verdict == FAIL
    assert check_case("eager", "layernorm", "fp32", "constant", dim=256, rows=4).verdict == PASS


def test_eps_cast_to_fp16_fails_the_zero_rows_at_eps_1e8(add_backend):
    # docs/numerics.md trap 6: eps = 1e-8 in fp16 is 0, and a zero row 0 / sqrt(0). The input
    # ran at the variants' own eps (1e-6, 1e-5, which fp16 holds): such a kernel got WARN.
    def rms_eps_cast(x, weight, eps):
        e = torch.tensor(eps, dtype=x.dtype)  # DeepSpeed #581
        return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True).to(x.dtype) + e) * weight

    def ln_eps_cast(x, weight, bias, eps):
        mu = x.mean(-1, keepdim=True)
        var = (x - mu).pow(2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + torch.tensor(eps, dtype=x.dtype)) * weight + bias

    name = add_backend("eps_cast", {"rmsnorm": rms_eps_cast, "layernorm": ln_eps_cast})
    for variant in ("rmsnorm", "layernorm"):
        v = check_case(name, variant, "fp16", "zero", dim=256, rows=4)
        assert v.verdict == FAIL and "y has" in v.reason and "non-finite" in v.reason, v.reason
        assert v.reason.startswith("all-zero rows at eps = 1e-8")
        assert check_case("eager", variant, "fp16", "zero", dim=256, rows=4).verdict == PASS
    from normbench.inputs import scalars_for

    rms = get_variant("rmsnorm")
    assert scalars_for(rms, "zero", "fp16")["eps"] == 1e-8  # what the reference uses too
    assert scalars_for(rms, "zero", "bf16")["eps"] == rms.scalars["eps"] == 1e-6
    assert scalars_for(rms, "normal", "fp16")["eps"] == 1e-6


def test_an_exact_value_beyond_the_range_rounds_to_inf():
    # dx of a zero fp16 row at eps 1e-8 is dy / sqrt(1e-8), up to 7e4: its fp16 rounding is inf,
    # which is exact; an inf below 65520 (the overflow point) is an error.
    ref = torch.tensor([[7.0e4, -7.0e4, 65519.0, 1.0]], dtype=torch.float64)
    impl = torch.tensor([[math.inf, -math.inf, 65504.0, 1.0]], dtype=torch.float16)
    c = check_tensor("dx", impl, ref, ref, "fp16")
    assert c.verdict == PASS and c.error.nonfinite == 0, c.symptom
    assert c.max_ulp < 1  # the exact infs are no error of 1e306 ulps either
    impl[0, 2] = math.inf
    assert check_tensor("dx", impl, ref, ref, "fp16").error.nonfinite == 1
    impl[0, 2], impl[0, 1] = 65504.0, math.inf  # the wrong sign
    assert check_tensor("dx", impl, ref, ref, "fp16").error.nonfinite == 1


def test_one_pass_variance_fails_offset(add_backend):
    # docs/numerics.md trap 4: E[x^2] - E[x]^2 with x = 1e4 + N(0, 1) in fp32 cancels.
    def one_pass(x, weight, bias, eps):
        h = x.float()
        mean = h.mean(-1, keepdim=True)
        var = (h * h).mean(-1, keepdim=True) - mean * mean
        return ((h - mean) * torch.rsqrt(var + eps) * weight + bias).to(x.dtype)

    name = add_backend("one_pass", {"layernorm": one_pass})
    v = check_case(name, "layernorm", "fp32", "offset", dim=256, rows=4)
    assert v.verdict == FAIL and v.reason.startswith("mean 1e4 >> std")
    assert check_case(name, "layernorm", "fp32", "normal", dim=256, rows=4).verdict == PASS


def test_hiding_nan_fails_inf_and_nan_inputs(add_backend):
    def scrubbed(x, weight, eps):
        return torch.nan_to_num(F.rms_norm(x, (x.shape[-1],), weight, eps), 0.0, 0.0, 0.0)

    name = add_backend("scrubbed", {"rmsnorm": scrubbed})
    for dist in ("inf", "nan"):
        v = check_case(name, "rmsnorm", "fp16", dist, dim=256, rows=4)
        assert v.verdict == FAIL, v.reason
        assert "2 of 2 rows of y come out as finite zeros" in v.reason


def test_eps_convention_is_compared_with_the_declared_reference(add_backend):
    # docs/numerics.md section 1: clamping eps differs by up to sqrt(2) near eps; declared, it
    # passes.
    def clamped(x, weight, eps):
        return _rms(x, torch.clamp(x.float().pow(2).mean(-1, keepdim=True), min=eps), weight, 0.0)

    wrong = add_backend("clamp_as_inside", {"rmsnorm": clamped})
    right = add_backend(
        "clamp_declared", {"rmsnorm": clamped}, semantics=Semantics(eps="clamp", cast="fp32")
    )
    assert check_case(wrong, "rmsnorm", "fp32", "near-eps", dim=256, rows=4).verdict == FAIL
    v = check_case(right, "rmsnorm", "fp32", "near-eps", dim=256, rows=4)
    assert v.verdict == PASS and "declared eps clamp" in v.semantics_note
    assert "not an error" in v.semantics_note


def test_llama_cast_is_a_semantic_difference_not_an_error():
    v = check_case("composite", "rmsnorm", "fp16", "normal", dim=256, rows=4)
    assert v.verdict == PASS and v.semantics_note.startswith("declared cast llama")


def test_gemma_weight_runs_only_gemma_semantics():
    # docs/numerics.md trap 13 (Liger PR #1462): (1 + w) with w ~ 2^-8 formed in fp32.
    assert check_case("gemma", "rmsnorm", "bf16", "gemma-weight", dim=256, rows=4).verdict == PASS
    v = check_case("eager", "rmsnorm", "bf16", "gemma-weight", dim=256, rows=4)
    assert v.reason.startswith("not run: gemma-weight tests implementations with cast gemma")


def test_nondeterministic_backward_is_flagged(add_backend):
    # docs/numerics.md trap 10: two runs on the same inputs must be bitwise identical.
    def noisy(x, weight, eps):
        y = F.rms_norm(x, (x.shape[-1],), weight, eps)
        return y + 1e-7 * torch.randn_like(y)

    name = add_backend("noisy", {"rmsnorm": noisy})
    v = check_case(name, "rmsnorm", "fp32", "normal", dim=256, rows=4, determinism=True)
    assert v.verdict == WARN and v.deterministic is False and "differ bitwise in y" in v.reason


# ---------------------------------------------------------------- the range sweep


def test_safe_run_is_the_pass_run_around_zero():
    def pts(verdicts, start):
        return [SweepPoint(start + i, v, "") for i, v in enumerate(verdicts)]

    assert safe_run(pts(["FAIL", "PASS", "PASS", "PASS", "WARN"], -2)) == (-1, 1)
    assert safe_run(pts(["PASS", "FAIL", "PASS", "PASS"], 3)) == (5, 6)  # longest, 0 not swept
    assert safe_run(pts(["FAIL", "FAIL"], 0)) == (None, None)


def test_sweep_of_the_broken_fixture_ends_at_2_to_the_8(fp16_square):
    res = range_sweep(fp16_square, "rmsnorm", "fp16", range(6, 11), dim=1000, rows=4)
    assert res.largest_pass_scale == 2.0**8 and res.largest_pass_k == 8
    assert res.per_k == {6: PASS, 7: PASS, 8: PASS, 9: FAIL, 10: FAIL}
    assert "rows silently zero" in res.first_failure_above().reason
    good = range_sweep("eager", "rmsnorm", "fp16", range(6, 11), dim=1000, rows=4)
    assert good.largest_pass_k == 10 and good.edge(10)
    # 2^16 * 0.999 still rounds to a finite fp16; 2^17 does not: that scale is skipped.
    top = range_sweep("eager", "rmsnorm", "fp16", range(16, 18), dim=64, rows=2)
    assert top.per_k == {16: PASS, 17: "skipped"}


def _config(backends, dists=("normal", "large"), sweep=(7, 8, 9), pattern=None):
    from normbench.config import Selection, StabilityConfig

    sel = Selection(("rmsnorm",), backends, ("fp16",), (256,), (1,), (4,), ("fwd+bwd",),
                    pattern=pattern)  # fmt: skip
    return StabilityConfig(sel, dists, sweep=sweep, formats=())


def test_sweep_cases_are_the_selection_on_unit_max_under_its_filter():
    from normbench.suites.stability import sweep_cases

    cases = sweep_cases(_config(("eager", "composite"), pattern="/eager/").selection)
    assert [c.id for c in cases] == ["rmsnorm/eager/fp16/1x4x256/fwd+bwd/unit-max"]
    assert len(sweep_cases(_config(("eager", "composite")).selection)) == 2


def test_run_is_typed_and_its_json_reads_back_equal(fp16_square, tmp_path):
    from normbench.suites.stability import failed, run_stability

    run = run_stability(_config(("eager", fp16_square), ("normal", "large", "gemma-weight")))
    cases = run.of(StabilityResult)
    assert [(r.backend, r.dist, r.verdict) for r in cases] == [
        ("eager", "normal", Verdict.PASS), (fp16_square, "normal", Verdict.PASS),
        ("eager", "large", Verdict.PASS), (fp16_square, "large", Verdict.FAIL),
        ("eager", "gemma-weight", Verdict.SKIPPED), (fp16_square, "gemma-weight", Verdict.SKIPPED),
    ]  # fmt: skip
    assert cases[-1].status is Status.SKIPPED and "cast gemma" in cases[-1].reason
    bad = cases[3]
    assert bad.status is Status.MISMATCH and bad.tensor == "y" and "silently zero" in bad.reason
    assert bad.value("verdict") == 2 and bad.value("y_silent_zero_rows") == 4
    assert cases[0].deterministic is True and cases[0].value("deterministic") == 1.0
    points = {r.k: r.verdict for r in run.of(SweepPointResult) if r.backend == fp16_square}
    assert points == {7: Verdict.PASS, 8: Verdict.PASS, 9: Verdict.FAIL}
    (rng,) = [r for r in run.of(SweepRangeResult) if r.backend == fp16_square]
    assert (rng.low_k, rng.high_k, rng.low_edge, rng.high_edge) == (7, 8, True, False)
    assert rng.value("safe_scale_max") == 2.0**8 and "silently zero" in rng.high.note
    assert "Safe range rmsnorm/fp16_square/fp16 N=256: 2^7 .. 2^8." in run.summary
    assert failed(run, "FAIL")
    path = tmp_path / "run.json"
    path.write_text(dumps(run))
    back = load_run(path)
    assert back.results == run.results and back.findings == run.findings


# ---------------------------------------------------------------- the CLI


def test_cli_stability_flags_the_fixture_and_fail_on(tmp_path):
    base = [
        "stability",
        "--fp16",
        "--variant",
        "rmsnorm",
        "--dim",
        "256",
        "--seq",
        "4",
        "--dist",
        "normal,large",
    ]
    base += ["--plugin", str(FIXTURES)]
    try:
        ok = runner.invoke(
            app, [*base, "--backend", "eager", "--fail-on", "WARN", "--format", "none"]
        )
        assert ok.exit_code == 0, ok.output
        assert "--fail-on WARN: no case reached WARN or FAIL." in ok.output
        bad = runner.invoke(
            app,
            [*base, "--backend", "eager,fp16_square", "--fail-on", "fail", "--out", str(tmp_path)],
        )
        assert bad.exit_code == 1, bad.output
        # The exit 1 says why in the log: how many cases reached the level.
        fails = sum(1 for r in load_run(next(tmp_path.glob("*.json"))).of(StabilityResult)
                    if r.verdict is Verdict.FAIL)  # fmt: skip
        cases = "1 case" if fails == 1 else f"{fails} cases"
        assert fails and f"--fail-on FAIL: {cases} reached FAIL: exit 1." in bad.output
        assert "rows silently zero" in bad.output and "worst case per implementation" in bad.output
        sweep = ["--dist", "normal", "--sweep-range", "7:9", "--format", "none"]
        swept = runner.invoke(app, [*base, "--backend", "fp16_square", *sweep, "--fail-on", "FAIL"])
        assert swept.exit_code == 1, swept.output
        # The sweep's points are counted apart from the cases (each is one scale of a case).
        assert "--fail-on FAIL: 1 case and 1 sweep point reached FAIL: exit 1." in swept.output
        assert "Safe range rmsnorm/fp16_square/fp16 N=256: 2^7 .. 2^8." in swept.output
        assert "Determinism: the 1 checked case bitwise identical over two runs" in swept.output
    finally:
        unregister_backend("fp16_square")
    runs = list(tmp_path.glob("*.json"))
    assert len(runs) == 1
    assert json.loads(runs[0].read_text())["schema_version"] == 2
    cases = load_run(runs[0]).of(StabilityResult)
    large = {r.case_id: r for r in cases}["rmsnorm/fp16_square/fp16/1x4x256/fwd+bwd/large"]
    assert large.verdict is Verdict.FAIL and large.status is Status.MISMATCH
    metrics = {m for r in cases for m in (x.metric for x in r.measurements)}
    for m in [
        "y_max_abs",
        "y_rel",
        "y_max_ulp",
        "y_nonfinite",
        "y_silent_zero_rows",
        "y_lost_propagation",
        "dx_max_ulp",
        "dweight_rel",
        "deterministic",
    ]:
        assert m in metrics
    rerender = runner.invoke(app, ["report", str(runs[0]), "--format", "none"])
    assert rerender.exit_code == 0 and "verdict per input" in rerender.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dist", "normal,gaussian"], "unknown input distribution 'gaussian': choose from"),
        (["--sweep-range", "8"], "--sweep-range expects LO:HI"),
        (["--sweep-range", "9:3"], "LO (9) is above HI (3)"),
        (["--fail-on", "maybe"], "--fail-on 'MAYBE': choose from FAIL, WARN"),
        (["--dtype", "fp8"], "unknown dtype 'fp8'"),
        (["--backend", "nope"], "unknown backend 'nope'"),
    ],
)
def test_cli_bad_input_is_one_sentence_exit_2(args, message, tmp_path):
    result = runner.invoke(app, ["stability", *args, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not list(tmp_path.iterdir())
