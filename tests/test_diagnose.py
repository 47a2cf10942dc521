"""diagnose: one quick run of every probe (shared), verdicts re-derived from the numbers, and the
verdict functions on synthetic numbers. Hard-coded outcomes only where the spec makes them
must-shows (docs/diagnostics.md section 3): grad-init's Post-LN slope flatter than Pre-LN's,
batchnorm's zero batch-dependence for LN, overflow's square-then-cast failing at 256
(pytorch #133085)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from normbench.report.diagnose_view import view
from normbench.results import Finding, Run, Status, dumps, load_run
from normbench.suites.diagnose import (
    PROBES,
    ProbeResult,
    Verdict,
    amplify,
    attention_gain,
    batchnorm,
    figure_findings,
    grad_init,
    known_norms,
    landscape,
    lipschitz,
    lr_sweep,
    overflow,
    precision,
    rmsnorm_speed,
    run_diagnose,
)
from normbench.suites.diagnose.common import (
    VERDICTS,
    Outcome,
    ProbeContext,
    loglog_slope,
)
from normbench.suites.diagnose.data import MarkovChain
from normbench.suites.diagnose.model import build_model, deepnorm_constants
from normbench.suites.diagnose.norms import parse_variant

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> dict[str, ProbeResult]:
    """Every probe once, quick, seed 0, on CPU, with figures: shared by the tests below."""
    plot_dir = tmp_path_factory.mktemp("plots")
    results = run_diagnose(quick=True, seed=0, device="cpu", plot_dir=plot_dir)
    return {r.probe: r for r in results}


def _png(path: Path | None) -> None:
    assert path is not None and path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_MAGIC


def _finite(values) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


# ---- the shared quick run -----------------------------------------------------------------


def test_every_probe_returns_a_complete_result(quick):
    assert list(quick) == list(PROBES)
    for name, r in quick.items():
        assert "error" not in r.numbers, r.numbers.get("traceback")
        assert r.verdict in VERDICTS
        assert r.claim == PROBES[name].claim and r.source == PROBES[name].source
        assert r.threshold and r.caveat and r.summary and "\n" not in r.summary
        assert r.seconds > 0 and r.status is Status.OK
        json.dumps(r.to_rows())  # JSON-ready


def test_grad_init_post_ln_is_flatter_than_pre_ln(quick):
    r = quick["grad-init"]
    slopes = {k.split("/", 1)[1]: v for k, v in r.numbers.items() if k.startswith("slope/")}
    assert set(slopes) == set(grad_init.DEFAULT_VARIANTS)
    assert _finite(slopes.values()) and all(-1.5 < s < 1.5 for s in slopes.values())
    # Must-show (Xiong et al. 2020): Post-LN's slope is closer to 0 than Pre-LN's.
    assert abs(slopes["post-layernorm"]) < abs(slopes["pre-layernorm"])
    assert slopes["pre-layernorm"] < 0
    for v in slopes:
        grads = r.numbers[f"last_layer_grad/{v}"]
        assert _finite(grads) and min(grads) > 0
        assert loglog_slope(r.numbers["depths"], grads) == pytest.approx(slopes[v])
    assert r.verdict == grad_init.verdict_grad_init(slopes)[0]
    _png(r.figure)


def test_amplify_verdict_follows_its_numbers(quick):
    r = quick["amplify"]
    depths = r.numbers["depths"]
    post, pre = r.numbers["change/post-layernorm"], r.numbers["change/pre-layernorm"]
    assert _finite(post + pre) and min(post + pre) > 0 and max(post + pre) < 10
    ratios = {d: a / b for d, a, b in zip(depths, post, pre, strict=True)}
    assert r.numbers["ratio_post_pre"] == pytest.approx(list(ratios.values()))
    assert r.verdict == amplify.verdict_amplify(ratios)[0]
    assert r.figure is None


def test_lr_sweep_verdict_follows_its_numbers(quick):
    r = quick["lr-sweep"]
    lrs, cap = r.numbers["lrs"], r.numbers["start_loss"]
    runs = [k.split("/", 1)[1] for k in r.numbers if k.startswith("final_loss/")]
    assert "post-layernorm+warmup" in runs and "none" in runs
    sens, stable = {}, {}
    for k in runs:
        finals = r.numbers[f"final_loss/{k}"]
        assert len(finals) == len(lrs)
        sens[k] = lr_sweep.lr_sensitivity(finals, cap)
        stable[k] = lr_sweep.max_stable_lr(lrs, finals, cap)
        assert 0 <= sens[k] <= cap
        assert sens[k] == pytest.approx(r.numbers[f"sensitivity/{k}"])
        assert stable[k] == r.numbers[f"max_stable_lr/{k}"]
        # At its best lr every run learns, and none beats the chain's floor of 1.28 nats.
        assert 1.2 < min(lr_sweep.capped(finals, cap)) < cap - 0.5
    assert r.verdict == lr_sweep.verdict_lr_sweep(sens, stable)[0]
    _png(r.figure)


def test_landscape_verdict_follows_its_numbers(quick):
    r = quick["landscape"]
    steps = r.numbers["checkpoints"]
    variants = [k.split("/", 1)[1] for k in r.numbers if k.startswith("beta/")]
    beta = {v: dict(zip(steps, r.numbers[f"beta/{v}"], strict=True)) for v in variants}
    eig = {v: dict(zip(steps, r.numbers[f"top_eig/{v}"], strict=True)) for v in variants}
    for v in variants:
        assert _finite(r.numbers[f"beta/{v}"]) and min(r.numbers[f"beta/{v}"]) > 0
        assert _finite(r.numbers[f"top_eig/{v}"]) and min(r.numbers[f"top_eig/{v}"]) > 0
        losses = r.numbers[f"loss/{v}"]
        assert losses[-1] < losses[0]  # the trajectory trains
    assert r.verdict == landscape.verdict_landscape(beta, eig)[0]


def test_lipschitz_matches_the_analytic_jacobian(quick):
    r = quick["lipschitz"]
    theory = r.numbers["theory_1_over_sqrt_var_eps"]
    for norm in ("layernorm", "rmsnorm"):
        assert r.numbers[f"gain/{norm}"] == pytest.approx(theory, rel=1e-6)
    assert r.numbers["constant_row_gain/layernorm"] == pytest.approx(1 / math.sqrt(1e-5))
    gains = {n: r.numbers[f"gain/{n}"] for n in ("layernorm", "rmsnorm")}
    assert r.verdict == lipschitz.verdict_lipschitz(gains)[0]


def test_batchnorm_is_batch_dependent_and_layernorm_is_not(quick):
    r = quick["batchnorm"]
    # Must-show: LayerNorm's output never depends on other tokens; BatchNorm's does.
    for key in ("padding_change", "batchmate_change"):
        assert max(r.numbers[f"{key}/layernorm"]) == 0.0
        assert max(r.numbers[f"{key}/batchnorm"]) > 0.01
    assert r.numbers["causal_change/layernorm"] == 0.0
    assert r.numbers["causal_change/batchnorm"] > 0.01
    # Padding dilution matches the closed form for N(1, 2^2) tokens with zero padding.
    i = batchnorm.PAD_FRACTIONS.index(0.45)
    real = 1 - round(0.45 * batchnorm.T) / batchnorm.T
    sigma = math.sqrt(real * 5 - real**2)
    assert r.numbers["real_token_mean/batchnorm"][i] == pytest.approx((1 - real) / sigma, abs=0.05)
    assert r.numbers["real_token_std/batchnorm"][i] == pytest.approx(2 / sigma, abs=0.05)
    assert r.numbers["real_token_std/layernorm"][i] == pytest.approx(1, abs=1e-4)
    # The std of the batch mean falls like 1/sqrt(tokens) (iid tokens).
    slope = loglog_slope(r.numbers["batch_mean_tokens"], r.numbers["std_of_batch_mean/batchnorm"])
    assert slope == pytest.approx(-0.5, abs=0.1)
    changes = {
        n: {
            "padding": max(r.numbers[f"padding_change/{n}"]),
            "batch-mates": max(r.numbers[f"batchmate_change/{n}"]),
            "causal": r.numbers[f"causal_change/{n}"],
        }
        for n in ("layernorm", "batchnorm")
    }
    assert r.verdict == batchnorm.verdict_batchnorm(changes)[0]


def test_attention_gain_verdict_follows_its_numbers(quick):
    r = quick["attention-gain"]
    share = {n: r.numbers[f"share/{n}"] for n in attention_gain.NORMS}
    for values in share.values():
        assert _finite(values) and all(0 < v < 1 for v in values)
    assert max(share["layernorm"]) - min(share["layernorm"]) < 1e-4  # scale-invariant up to eps
    assert r.verdict == attention_gain.verdict_attention_gain(share)[0]
    _png(r.figure)


def test_precision_verdict_follows_its_numbers(quick):
    r = quick["precision"]
    fails: dict[str, dict[str, bool]] = {}
    for key, value in r.numbers.items():
        if key.startswith("final_loss/"):
            _, variant, dtype = key.split("/")
            fails.setdefault(variant, {})[dtype] = precision.failed(value, r.numbers["start_loss"])
            assert r.numbers[f"failed/{variant}/{dtype}"] == (
                "yes" if fails[variant][dtype] else "no"
            )
            assert r.numbers[f"nonfinite_steps/{variant}/{dtype}"] >= 0
    assert {"fp32", "fp16"} <= set(fails["post-layernorm"])
    assert r.verdict == precision.verdict_precision(fails)[0]


def test_rmsnorm_speed_verdict_follows_its_numbers(quick):
    r = quick["rmsnorm-speed"]
    times = {
        b: {"rmsnorm": r.numbers[f"rmsnorm_s/{b}"], "layernorm": r.numbers[f"layernorm_s/{b}"]}
        for b in ("eager", "composite")
    }
    assert all(0 < t < 10 for bt in times.values() for t in bt.values())
    for b, t in times.items():  # the ratio's CI, from the speed suite's raw samples
        t.update({k: r.numbers[f"{k}/{b}"] for k in ("ratio_low", "ratio_high")})
    assert r.verdict == rmsnorm_speed.verdict_rmsnorm_speed(times)[0]


def test_overflow_square_then_cast_fails_at_256(quick):
    r = quick["overflow"]
    sq, up = overflow.SQUARE_THEN_CAST, overflow.UPCAST_FIRST
    # Must-show (pytorch #133085): 256^2 = 65536 > fp16 max 65504, so the row becomes zeros.
    assert r.numbers[f"first_failure_scale/{sq}"] == 256
    assert r.numbers[f"max_safe_scale/{sq}"] == 128
    i256 = r.numbers["scales"].index(256)
    assert r.numbers[f"zero_rows/{sq}"][i256] == overflow.ROWS
    assert r.numbers[f"max_safe_scale/{up}"] == 4096
    assert max(r.numbers[f"zero_rows/{up}"]) == 0
    safe = {sq: r.numbers[f"max_safe_scale/{sq}"], up: r.numbers[f"max_safe_scale/{up}"]}
    assert r.verdict == overflow.verdict_overflow(safe)[0]


# ---- verdict functions on synthetic numbers -----------------------------------------------


@pytest.mark.parametrize(
    ("slopes", "expected"),
    [
        ({"post-layernorm": -0.05, "pre-layernorm": -0.45}, "confirmed"),
        ({"post-layernorm": -0.40, "pre-layernorm": -0.42}, "refuted"),
        ({"post-layernorm": 0.30, "pre-layernorm": -0.40}, "inconclusive"),
        ({"post-layernorm": 0.0, "pre-layernorm": -0.2}, "inconclusive"),
        ({"pre-layernorm": -0.5}, "inconclusive"),
        ({"post-layernorm": math.nan, "pre-layernorm": -0.5}, "inconclusive"),
    ],
)
def test_verdict_grad_init(slopes, expected):
    assert grad_init.verdict_grad_init(slopes)[0] == expected


@pytest.mark.parametrize(
    ("ratios", "expected"),
    [
        ({6: 1.3, 48: 5.6}, "confirmed"),
        ({6: 2.0, 48: 2.1}, "refuted"),
        ({6: 1.0, 24: 1.3, 48: 1.3}, "inconclusive"),
        ({6: 1.0}, "inconclusive"),
    ],
)
def test_verdict_amplify(ratios, expected):
    assert amplify.verdict_amplify(ratios)[0] == expected


@pytest.mark.parametrize(
    ("sens", "stable", "expected"),
    [
        (
            {
                "pre-layernorm": 0.1,
                "none": 0.5,
                "post-layernorm": 0.9,
                "post-layernorm+warmup": 0.3,
            },
            {
                "pre-layernorm": 0.03,
                "none": 0.01,
                "post-layernorm": 0.001,
                "post-layernorm+warmup": 0.01,
            },
            "confirmed",
        ),
        (
            {
                "pre-layernorm": 0.6,
                "none": 0.5,
                "post-layernorm": 0.3,
                "post-layernorm+warmup": 0.3,
            },
            {
                "pre-layernorm": 0.01,
                "none": 0.01,
                "post-layernorm": 0.01,
                "post-layernorm+warmup": 0.01,
            },
            "refuted",
        ),
        (
            {
                "pre-layernorm": 0.1,
                "none": 0.5,
                "post-layernorm": 0.3,
                "post-layernorm+warmup": 0.3,
            },
            {
                "pre-layernorm": 0.03,
                "none": 0.01,
                "post-layernorm": 0.01,
                "post-layernorm+warmup": 0.01,
            },
            "inconclusive",
        ),
        ({"pre-layernorm": 0.1}, {"pre-layernorm": 0.03}, "inconclusive"),
    ],
)
def test_verdict_lr_sweep(sens, stable, expected):
    assert lr_sweep.verdict_lr_sweep(sens, stable)[0] == expected


def test_lr_sensitivity_caps_divergence():
    cap = math.log(64)
    finals = [2.0, 1.5, math.nan, 1e12]
    assert lr_sweep.capped(finals, cap) == [2.0, 1.5, cap, cap]
    assert lr_sweep.lr_sensitivity(finals, cap) == pytest.approx((2 + 1.5 + 2 * cap) / 4 - 1.5)
    assert lr_sweep.max_stable_lr([1e-3, 1e-2, 3e-2, 1e-1], finals, cap) == 1e-2


@pytest.mark.parametrize(
    ("beta", "eig", "expected"),
    [
        ({"pre-layernorm": 1.2, "none": 9.3}, {"pre-layernorm": 10.0, "none": 50.0}, "confirmed"),
        ({"pre-layernorm": 9.0, "none": 9.0}, {"pre-layernorm": 60.0, "none": 50.0}, "refuted"),
        (
            {"pre-layernorm": 1.0, "none": 9.0},
            {"pre-layernorm": 60.0, "none": 50.0},
            "inconclusive",
        ),
        ({"pre-layernorm": 1.0}, {"pre-layernorm": 1.0}, "inconclusive"),
    ],
)
def test_verdict_landscape(beta, eig, expected):
    beta_t = {v: {0: 1.0, 50: b} for v, b in beta.items()}
    eig_t = {v: {0: 1.0, 50: e} for v, e in eig.items()}
    assert landscape.verdict_landscape(beta_t, eig_t)[0] == expected


@pytest.mark.parametrize(
    ("gains", "expected"),
    [
        ({"layernorm": [1.0, 1.5, 1.9]}, "confirmed"),
        ({"layernorm": [1.0, 10.0, 316.0]}, "refuted"),
        ({"layernorm": [1.0, 3.0, 5.0]}, "inconclusive"),
        ({}, "inconclusive"),
    ],
)
def test_verdict_lipschitz(gains, expected):
    assert lipschitz.verdict_lipschitz(gains)[0] == expected


@pytest.mark.parametrize(
    ("ln", "bn", "expected"),
    [
        (0.0, 0.5, "confirmed"),
        (0.0, 1e-4, "refuted"),
        (0.3, 0.5, "refuted"),
        (1e-4, 0.5, "inconclusive"),
    ],
)
def test_verdict_batchnorm(ln, bn, expected):
    tests = ("padding", "batch-mates", "causal")
    changes = {"layernorm": dict.fromkeys(tests, ln), "batchnorm": dict.fromkeys(tests, bn)}
    assert batchnorm.verdict_batchnorm(changes)[0] == expected


@pytest.mark.parametrize(
    ("none", "ln", "expected"),
    [
        ([0.05, 0.2, 0.47], [0.053, 0.053, 0.053], "confirmed"),
        ([0.05, 0.051, 0.052], [0.053, 0.053, 0.053], "refuted"),
        ([0.05, 0.2, 0.47], [0.05, 0.2, 0.47], "refuted"),
        ([0.05, 0.07, 0.08], [0.053, 0.053, 0.053], "inconclusive"),
    ],
)
def test_verdict_attention_gain(none, ln, expected):
    assert attention_gain.verdict_attention_gain({"none": none, "layernorm": ln})[0] == expected


@pytest.mark.parametrize(
    ("post", "pre", "expected"),
    [
        ({"fp32": False, "bf16": False, "fp16": True}, {"fp32": False, "fp16": False}, "confirmed"),
        ({"fp32": True, "bf16": True, "fp16": True}, {"fp32": False, "fp16": False}, "refuted"),
        ({"fp32": False, "bf16": False, "fp16": False}, {"fp32": False, "fp16": False}, "refuted"),
        ({"fp32": False, "fp16": True}, {"fp32": False, "fp16": True}, "inconclusive"),
        (
            {"fp32": True, "bf16": False, "fp16": True},
            {"fp32": False, "fp16": False},
            "inconclusive",
        ),
    ],
)
def test_verdict_precision(post, pre, expected):
    fails = {"post-layernorm": post, "pre-layernorm": pre}
    assert precision.verdict_precision(fails)[0] == expected


def test_precision_failure_rule():
    start = math.log(64)
    assert precision.failed(math.nan, start) and precision.failed(4.0, start)
    assert not precision.failed(2.0, start)


@pytest.mark.parametrize(
    ("ratios", "expected"),
    [
        ({"eager": 0.9, "composite": 0.8}, "confirmed"),
        ({"eager": 4.0, "composite": 1.0}, "refuted"),
        ({"eager": 4.0, "composite": 0.6}, "inconclusive"),
        ({}, "inconclusive"),
    ],
)
def test_verdict_rmsnorm_speed(ratios, expected):
    times = {b: {"rmsnorm": r * 1e-3, "layernorm": 1e-3} for b, r in ratios.items()}
    assert rmsnorm_speed.verdict_rmsnorm_speed(times)[0] == expected


@pytest.mark.parametrize(
    ("sq", "up", "expected"),
    [(4096.0, 4096.0, "confirmed"), (128.0, 4096.0, "refuted"), (128.0, 128.0, "inconclusive")],
)
def test_verdict_overflow(sq, up, expected):
    safe = {overflow.SQUARE_THEN_CAST: sq, overflow.UPCAST_FIRST: up}
    assert overflow.verdict_overflow(safe)[0] == expected


# ---- injected measurements (the speed and stability suites plug in here) ----------------


def test_rmsnorm_speed_takes_an_injected_measurement():
    def measure():
        return {
            "eager": {"rmsnorm": 4.0, "layernorm": 1.0},
            "triton": {"rmsnorm": 0.8, "layernorm": 1.0},
        }

    f = rmsnorm_speed.run(ProbeContext(quick=True), measure=measure)
    assert f.verdict == "inconclusive"
    assert f.numbers["ratio/eager"] == 4.0 and f.numbers["ratio/triton"] == 0.8
    assert "triton" in f.summary


def test_overflow_takes_an_injected_sweep():
    ok = {"max_abs_err": 1e-3, "zero_rows": 0.0, "ok": 1.0}
    sweep = {
        overflow.SQUARE_THEN_CAST: {2.0**k: ok for k in range(13)},
        overflow.UPCAST_FIRST: {2.0**k: ok for k in range(13)},
    }
    f = overflow.run(ProbeContext(), measure=lambda: sweep)
    assert f.verdict == "confirmed"
    assert f.numbers[f"max_safe_scale/{overflow.SQUARE_THEN_CAST}"] == 4096


def test_overflow_max_safe_scale_stops_at_the_first_failure():
    res = {1.0: {"ok": 1.0}, 2.0: {"ok": 0.0}, 4.0: {"ok": 1.0}}
    assert overflow.max_safe_scale(res) == 1.0
    assert overflow.max_safe_scale({1.0: {"ok": 0.0}}) == 0.0


# ---- the runner ---------------------------------------------------------------------------


def test_unknown_probe_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown probe 'nope': choose from grad-init, amplify"):
        run_diagnose(["nope"])


@pytest.mark.parametrize("bad", ["post-groupnorm", "sideways-layernorm", "layernorm", ""])
def test_unknown_norm_is_refused_with_the_rule(bad):
    with pytest.raises(ValueError, match="unknown norm variant"):
        run_diagnose(["lipschitz"], norms=[bad])


def test_bad_depth_and_device_are_refused():
    with pytest.raises(ValueError, match="depths"):
        run_diagnose(["lipschitz"], depths=[0])
    with pytest.raises(ValueError, match="device"):
        run_diagnose(["lipschitz"], device="nonsense")


def test_norm_names_parse_and_list():
    assert parse_variant(" Pre-RMSNorm ").name == "pre-rmsnorm"
    assert parse_variant("none").norm is None
    names = known_norms()
    assert "post-layernorm" in names and "deepnorm-dyt" in names and names[-1] == "none"


def test_progress_moves_to_one_and_plots_only_with_plot_dir():
    seen: list[tuple[str, float]] = []
    results = run_diagnose(
        ["lipschitz", "attention-gain"], quick=True, progress=lambda s, f: seen.append((s, f))
    )
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[0] == 0.0
    assert len(seen) >= 2 * 3  # start, steps, end per probe
    assert all(r.figure is None for r in results)


def test_norms_override_reaches_the_probes():
    (r,) = run_diagnose(["grad-init"], quick=True, depths=[2, 4], norms=["post-rmsnorm", "none"])
    assert r.numbers["depths"] == [2, 4]
    assert {k for k in r.numbers if k.startswith("slope/")} == {"slope/post-rmsnorm", "slope/none"}
    assert r.verdict == "inconclusive"  # no pre-* variant to compare against


def test_a_failing_probe_becomes_an_inconclusive_row(monkeypatch):
    def boom(ctx):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(lipschitz, "run", boom)
    results = run_diagnose(["lipschitz", "overflow"])
    assert results[0].verdict == "inconclusive" and "kaboom" in results[0].summary
    assert results[0].status is Status.ERROR
    assert "RuntimeError" in results[0].numbers["error"]
    assert results[1].probe == "overflow" and "error" not in results[1].numbers
    assert results[1].status is Status.OK


def test_results_are_frozen_and_validated():
    f = Outcome("confirmed", {}, "t", "c", "s")
    assert f.verdict is Verdict.CONFIRMED
    with pytest.raises(AttributeError):
        f.verdict = "refuted"  # type: ignore[misc]
    with pytest.raises(ValueError, match="verdict"):
        Outcome("maybe", {}, "t", "c", "s")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="verdict"):
        ProbeResult("p", "claim", "src", "maybe", {}, "t", "c", "s")  # type: ignore[arg-type]


# ---- results: the view, the file -----------------------------------------------------------


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN (a saved NaN reads back as a NaN, never as the same object)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


SAMPLE = ProbeResult(
    "grad-init", claim="a claim", source="a paper", verdict=Verdict.REFUTED,
    numbers={"depths": [6, 12], "seeds": 3, "slope/none": -0.25, "failed/x": "yes"},
    threshold="a rule", caveat="a caveat", summary="the numbers", figure=Path("/tmp/g.png"),
    seconds=1.5,
)  # fmt: skip
FAILED = ProbeResult(
    "lipschitz", claim="c", source="s", verdict="inconclusive",
    numbers={"error": "RuntimeError: kaboom", "traceback": "Traceback ...", "gain": math.nan},
    threshold="not applied", caveat="did not finish", summary="probe failed", seconds=0.1,
    status=Status.ERROR,
)  # fmt: skip


def test_probe_results_round_trip(tmp_path, quick):
    run = Run("diagnose", {"device_name": "cpu"}, {"quick": True}, [SAMPLE, FAILED],
              figure_findings([SAMPLE, FAILED]))  # fmt: skip
    assert run.summary == ["grad-init: figure /tmp/g.png"]
    path = tmp_path / "diagnose.json"
    path.write_text(dumps(run))
    back = load_run(path)
    assert back.results[0] == SAMPLE and back.findings == run.findings
    failed = back.results[1]
    assert failed.status is Status.ERROR and _same(failed.numbers, FAILED.numbers)
    assert replace(failed, numbers={}) == replace(FAILED, numbers={})
    # Every probe of the quick run reads back as it was (its verdict can be judged again).
    path = tmp_path / "quick.json"
    path.write_text(dumps(Run("diagnose", {}, {}, list(quick.values()))))
    for r, b in zip(quick.values(), load_run(path).of(ProbeResult), strict=True):
        assert _same(r.numbers, b.numbers), r.probe
        assert replace(b, numbers={}) == replace(r, numbers={})


def test_the_view_shows_verdict_claim_and_sources():
    verdicts, sources = view(Run("diagnose", {}, {}, [SAMPLE]))
    assert verdicts[2] == [["grad-init", "refuted", "a claim", "the numbers", "a rule"]]
    assert sources[2] == [["grad-init", "a paper", "a caveat"]]


def _v1_rows(r: ProbeResult) -> list[dict]:
    """What normbench wrote for one probe in schema version 1: a verdict row (the verdict as
    its unit, the rest in extra) and a row per scalar number."""
    base = {"case_id": r.probe, "suite": "diagnose", "variant": r.probe, "backend": "-",
            "dtype": "-", "shape": "-", "mode": "-", "p20": None, "p80": None, "ci_low": None,
            "ci_high": None, "n": None, "samples": []}  # fmt: skip
    extra = {"claim": r.claim, "source": r.source, "verdict": r.verdict.value,
             "numbers": r.numbers, "threshold": r.threshold, "caveat": r.caveat,
             "summary": r.summary, "figure": str(r.figure) if r.figure else None,
             "seconds": r.seconds}  # fmt: skip
    rows = [{**base, "metric": "verdict", "value": None, "unit": r.verdict.value,
             "status": r.status.value, "note": r.summary, "extra": extra}]  # fmt: skip
    for key, v in r.numbers.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            rows.append({**base, "metric": key, "value": float(v), "unit": "", "status": "ok",
                         "note": "", "extra": {}})  # fmt: skip
    return rows


def test_a_version_1_diagnose_file_still_loads(tmp_path):
    data = {"tool": "normbench", "schema_version": 1, "suite": "diagnose", "env": {},
            "config": {}, "summary": ["grad-init: figure /tmp/g.png"],
            "rows": _v1_rows(SAMPLE) + _v1_rows(FAILED)}  # fmt: skip
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(data).replace("NaN", "null"))  # version 1 wrote NaN as null
    run = load_run(path)
    sample, failed = run.of(ProbeResult)
    assert sample == SAMPLE and run.findings == [Finding("grad-init: figure /tmp/g.png")]
    assert failed.status is Status.ERROR and _same(failed.numbers, FAILED.numbers)
    assert replace(failed, numbers={}) == replace(FAILED, numbers={})


# ---- the toy model and data ---------------------------------------------------------------


def test_markov_chain_is_seeded_and_has_the_documented_floor():
    a, b = MarkovChain(seed=3), MarkovChain(seed=3)
    assert torch.equal(a.sample(4, 32), b.sample(4, 32))
    assert not torch.equal(
        MarkovChain(seed=3, stream=1).sample(4, 32), MarkovChain(seed=3).sample(4, 32)
    )
    assert a.loss_floor == pytest.approx(1.2799, abs=1e-4)
    tokens = a.sample(8, 32)
    assert tokens.shape == (8, 33)
    # every transition is one of the token's 4 successors
    succ = a.successors[tokens[:, :-1]]
    assert (succ == tokens[:, 1:, None]).any(-1).all()


@pytest.mark.parametrize(
    "variant",
    ["post-layernorm", "pre-rmsnorm", "deepnorm-layernorm", "pre-dyt", "post-batchnorm", "none"],
)
def test_toy_model_builds_every_placement(variant):
    model = build_model(variant, depth=2, seed=0)
    tokens = MarkovChain(seed=0).sample(2, 32)
    loss = model.loss(tokens)
    value = float(loss.detach())
    assert math.isfinite(value) and 3.0 < value < 8.0  # near ln 64 at init
    assert torch.equal(build_model(variant, depth=2, seed=0).head.weight, model.head.weight)


def test_deepnorm_constants_follow_wang_et_al():
    alpha, beta = deepnorm_constants(6)
    assert alpha == pytest.approx(12**0.25) and beta == pytest.approx(48**-0.25)


@pytest.mark.slow
def test_full_grad_init_keeps_post_ln_flat(tmp_path):
    (r,) = run_diagnose(["grad-init"], quick=False, seed=0, plot_dir=tmp_path)
    slopes = {k.split("/", 1)[1]: v for k, v in r.numbers.items() if k.startswith("slope/")}
    assert abs(slopes["post-layernorm"]) < abs(slopes["pre-layernorm"])
    assert r.verdict == grad_init.verdict_grad_init(slopes)[0]
    assert r.numbers["seeds"] == 5
    _png(r.figure)
