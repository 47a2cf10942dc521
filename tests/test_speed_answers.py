"""The speed run's answers follow their CIs (docs/numerics.md section 6): the speedup over eager
and the RMSNorm-vs-LayerNorm headline carry a 95% CI of the ratio of medians, a CI that includes
1 reads "can't tell", and faster and slower are the same x factor both ways. On synthetic samples
whose true ratios are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from normbench.cases import Case
from normbench.report.speed_view import TIE_TITLE, speedup_cell, view
from normbench.results import Measurement, Run
from normbench.results.speed import SpeedResult
from normbench.speed_answers import add_speedups, ratio_words, rms_ln_ratios, rms_vs_ln, ties
from normbench.suites.diagnose import rmsnorm_speed
from normbench.variants.base import Shape

SHAPE = Shape(1, 64, 1024)
BLOCK = 5
HEAD = "Is RMSNorm faster than LayerNorm here? RMSNorm vs LayerNorm: "


def draws(median: float, sigma: float, n: int, seed: int) -> np.ndarray:
    """Lognormal timings: their true median is `median` (the population's, not the sample's)."""
    return median * np.exp(np.random.default_rng(seed).normal(0.0, sigma, n))


def result(variant, backend, samples, shape=SHAPE, with_samples=True) -> SpeedResult:
    case = Case(variant, backend, "fp32", shape, "fwd")
    time = Measurement(
        "time", float(np.median(samples)), "ms", n=len(samples),
        samples=tuple(float(x) for x in samples) if with_samples else (),
    )  # fmt: skip
    return SpeedResult.of_case(case, [time], block_size=BLOCK)


def pair(rms_median, ln_median, sigma=0.02, n=200, backend="eager", shape=SHAPE, seed=1):
    rms = draws(rms_median, sigma, n, seed)
    ln = draws(ln_median, sigma, n, seed + 1000)
    return result("rmsnorm", backend, rms, shape), result("layernorm", backend, ln, shape)


def delta_half_width(sigma: float, n: int) -> float:
    """Reference half-width of the 95% CI of log(median a / median b) for two independent
    lognormal samples of n: the median's asymptotic variance pi sigma^2 / (2n) on each side."""
    return 1.96 * math.sqrt(2 * math.pi * sigma**2 / (2 * n))


# ---- the words ------------------------------------------------------------------------------


def test_ratio_words_say_the_same_factor_both_ways():
    slower = ratio_words(1.5, 1.4, 1.6, "RMSNorm")
    faster = ratio_words(1 / 1.5, 1 / 1.6, 1 / 1.4, "RMSNorm")
    assert slower == "RMSNorm 1.50x slower (95% CI 1.40x-1.60x)"
    assert faster == "RMSNorm 1.50x faster (95% CI 1.40x-1.60x)"
    assert ratio_words(2.0, None, None, "X") == "X 2.00x slower (no CI)"
    assert ratio_words(0.5, math.nan, math.nan, "X") == "X 2.00x faster (no CI)"


def test_a_tight_ci_gets_the_decimals_it_needs():
    # At 2 decimals these would read 2.00x-2.00x, and 1.00x for a bound that excludes 1.
    assert ratio_words(2.001, 1.998, 2.004, "X") == "X 2.001x slower (95% CI 1.998x-2.004x)"
    assert ratio_words(1 / 1.003, 1 / 1.004, 1 / 1.002, "X") == (
        "X 1.003x faster (95% CI 1.002x-1.004x)"
    )
    assert (
        ratio_words(1.0, 0.999, 1.002, "X") == "can't tell (X takes 0.999x-1.002x the time, 95% CI)"
    )


@pytest.mark.parametrize(("low", "high"), [(0.8, 1.1), (1.0, 1.3), (0.7, 1.0)])
def test_a_ci_that_includes_one_cannot_tell(low, high):
    words = ratio_words(0.95, low, high, "RMSNorm")
    assert words == f"can't tell (RMSNorm takes {low:.2f}x-{high:.2f}x the time, 95% CI)"
    assert "faster" not in words and "slower" not in words


def test_ties_is_a_ci_including_one_but_not_the_exact_reference():
    assert ties(0.9, 1.1) and ties(1.0, 1.2)
    assert not ties(1.01, 1.2) and not ties(0.8, 0.99)
    assert not ties(1.0, 1.0)  # eager against itself: exactly 1, not a tie to flag
    assert not ties(None, None) and not ties(math.nan, 1.2)


# ---- the headline -------------------------------------------------------------------------


def test_clear_2x_is_slower_with_a_ci_bracketing_2():
    rms, ln = pair(2.0, 1.0)
    g, low, high = rms_ln_ratios([rms, ln])["eager"]
    assert g == pytest.approx(rms.time.value / ln.time.value, rel=1e-12)
    assert low < 2.0 < high  # the true ratio
    # Its width is what the median's sampling error predicts (within a factor 2 either way).
    half = (math.log(high) - math.log(low)) / 2
    assert 0.5 < half / delta_half_width(0.02, 200) < 2
    answer = rms_vs_ln([rms, ln])
    assert answer == HEAD + f"eager: {ratio_words(g, low, high, 'RMSNorm')}."
    assert answer.startswith(HEAD + "eager: RMSNorm 2.00x slower (95% CI ")


def test_overlapping_samples_cannot_tell():
    rms, ln = pair(1.03, 1.0, sigma=0.3, n=40)  # +-30% noise hides a 3% difference
    g, low, high = rms_ln_ratios([rms, ln])["eager"]
    assert low < 1 < high
    answer = rms_vs_ln([rms, ln])
    assert (
        answer
        == HEAD + f"eager: can't tell (RMSNorm takes {low:.2f}x-{high:.2f}x the time, 95% CI)."
    )
    assert "faster" not in answer.removeprefix(HEAD) and "slower" not in answer


def test_faster_and_slower_pairs_read_symmetrically():
    rms, ln = pair(1.5, 1.0)
    slow = rms_ln_ratios([rms, ln])["eager"]
    # The same samples with the variants swapped: RMSNorm now takes 1/1.5 of the time.
    swapped = [
        result("rmsnorm", "eager", ln.time.samples),
        result("layernorm", "eager", rms.time.samples),
    ]
    fast = rms_ln_ratios(swapped)["eager"]
    assert fast[0] == pytest.approx(1 / slow[0], rel=1e-12)
    assert slow[1] < 1.5 < slow[2] and 1 / fast[2] < 1.5 < 1 / fast[1]
    # Bootstraps of the same samples, resampled apart: the same bounds up to resampling noise
    # (a tenth of the CI's width).
    width = slow[2] - slow[1]
    assert 1 / fast[2] == pytest.approx(slow[1], abs=width / 10)
    assert 1 / fast[1] == pytest.approx(slow[2], abs=width / 10)
    words_slow, words_fast = (rms_vs_ln(r) for r in ([rms, ln], swapped))
    assert "eager: RMSNorm 1.50x slower (95% CI " in words_slow
    assert "eager: RMSNorm 1.50x faster (95% CI " in words_fast


def test_per_backend_and_geometric_mean_over_shapes():
    other = Shape(1, 64, 4096)
    eager = [*pair(1.5, 1.0), *pair(2.0, 1.0, shape=other, seed=7)]
    comp = [*pair(1.0, 1.0, sigma=0.3, n=40, backend="composite", seed=3)]
    got = rms_ln_ratios(eager + comp)
    r1 = eager[0].time.value / eager[1].time.value
    r2 = eager[2].time.value / eager[3].time.value
    g, low, high = got["eager"]
    assert g == pytest.approx(math.sqrt(r1 * r2), rel=1e-12)
    assert low < math.sqrt(3.0) < high
    # Averaging two cases' logs halves the variance: the CI is 1/sqrt(2) of one case's.
    half = (math.log(high) - math.log(low)) / 2
    assert 0.5 < half / (delta_half_width(0.02, 200) / math.sqrt(2)) < 2
    assert got["composite"][1] < 1 < got["composite"][2]
    answer = rms_vs_ln(eager + comp)
    assert (
        answer
        == HEAD + "; ".join(f"{b}: {ratio_words(*v, 'RMSNorm')}" for b, v in got.items()) + "."
    )
    assert "; composite: can't tell (" in answer


def test_the_headline_is_reproducible():
    results = [*pair(1.2, 1.0, sigma=0.1, n=60)]
    assert rms_vs_ln(results) == rms_vs_ln(list(results))


def test_results_without_samples_keep_a_figure_without_ci():
    rms, ln = (result(r.variant, r.backend, r.time.samples, with_samples=False) for r in pair(2, 1))
    g, low, high = rms_ln_ratios([rms, ln])["eager"]
    assert g == pytest.approx(rms.time.value / ln.time.value) and math.isnan(low)
    assert rms_vs_ln([rms, ln]) == HEAD + f"eager: RMSNorm {g:.2f}x slower (no CI)."
    assert rms_vs_ln([rms]) is None  # nothing to pair


# ---- the speedup over eager ---------------------------------------------------------------


def speedups(results):
    return {r.backend: r.get("speedup") for r in add_speedups(results)}


def test_speedup_ci_brackets_the_true_ratio():
    eager = result("rmsnorm", "eager", draws(3.0, 0.05, 150, 1))
    comp = result("rmsnorm", "composite", draws(1.0, 0.05, 150, 2))
    sp = speedups([eager, comp])
    assert sp["composite"].value == pytest.approx(eager.time.value / comp.time.value)
    assert sp["composite"].ci_low < 3.0 < sp["composite"].ci_high
    half = (math.log(sp["composite"].ci_high) - math.log(sp["composite"].ci_low)) / 2
    assert 0.5 < half / delta_half_width(0.05, 150) < 2
    assert (sp["eager"].value, sp["eager"].ci_low, sp["eager"].ci_high) == (1.0, 1.0, 1.0)
    assert speedup_cell(sp["composite"]) == f"{sp['composite'].value:.2f}x"
    assert speedup_cell(sp["eager"]) == "1.00x"


def test_a_speedup_that_ties_eager_is_marked():
    eager = result("rmsnorm", "eager", draws(1.0, 0.3, 40, 1))
    comp = result("rmsnorm", "composite", draws(1.02, 0.3, 40, 2))
    sp = speedups([eager, comp])["composite"]
    assert sp.ci_low < 1 < sp.ci_high
    assert speedup_cell(sp) == f"~{sp.value:.2f}x"
    run = Run("speed", {}, {}, add_speedups([eager, comp]))
    ((title, cols, rows),) = view(run)
    assert title == TIE_TITLE
    assert [row[cols.index("vs eager")] for row in rows] == ["1.00x", f"~{sp.value:.2f}x"]


def test_a_speedup_with_a_side_timed_unreliable_is_not_told_apart():
    """A tight CI of samples a busy machine spoiled printed 0.29x unmarked beside its
    `unreliable` status: it is '~', and its note says which side."""
    from dataclasses import replace

    eager = result("rmsnorm", "eager", draws(1.0, 0.02, 40, 1))
    comp = replace(result("rmsnorm", "composite", draws(3.4, 0.02, 40, 2)),
                   unreliable="other processes used 48% of the CPUs")  # fmt: skip
    out = add_speedups([eager, comp])
    sp = out[1].get("speedup")
    assert not ties(sp.ci_low, sp.ci_high)  # the CI alone would tell them apart
    assert sp.note.endswith("not told apart: composite timed unreliable")
    assert speedup_cell(sp) == f"~{sp.value:.2f}x"
    assert out[0].get("speedup").note == "eager time / this time"  # eager against itself
    busy_eager = replace(eager, unreliable="other processes used 48% of the CPUs")
    sp = add_speedups([busy_eager, result("rmsnorm", "composite", draws(3.4, 0.02, 40, 2))])
    assert speedup_cell(sp[1].get("speedup")).startswith("~")


def test_speedups_without_samples_render_as_before():
    eager = result("rmsnorm", "eager", draws(3.0, 0.05, 20, 1), with_samples=False)
    comp = result("rmsnorm", "composite", draws(1.0, 0.05, 20, 2), with_samples=False)
    results = add_speedups([eager, comp])
    sp = {r.backend: r.get("speedup") for r in results}
    assert sp["composite"].ci_low is None and sp["composite"].ci_high is None
    ((title, cols, rows),) = view(Run("speed", {}, {}, results))
    assert title == "speed"
    assert rows[1][cols.index("vs eager")] == f"{eager.time.value / comp.time.value:.2f}x"


# ---- the rmsnorm-speed probe --------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "verdict", "words"),
    [
        (0.90, 0.94, "confirmed", "below 0.95"),
        (0.96, 1.02, "refuted", "not below 0.95"),
        (0.90, 0.97, "inconclusive", "can't tell against 0.95"),
    ],
)
def test_probe_judges_by_the_ci(low, high, verdict, words):
    times = {"eager": {"rmsnorm": 0.93, "layernorm": 1.0, "ratio_low": low, "ratio_high": high}}
    v, reason = rmsnorm_speed.verdict_rmsnorm_speed(times)
    assert v == verdict
    assert reason.endswith(
        f"eager: {ratio_words(0.93, low, high, 'RMSNorm')}: RMS/LN 0.93, {words}"
    )


def test_probe_cannot_tell_where_one_backend_straddles():
    times = {
        "eager": {"rmsnorm": 0.8, "layernorm": 1.0, "ratio_low": 0.78, "ratio_high": 0.82},
        "composite": {"rmsnorm": 0.94, "layernorm": 1.0, "ratio_low": 0.90, "ratio_high": 0.99},
    }
    v, reason = rmsnorm_speed.verdict_rmsnorm_speed(times)
    assert v == "inconclusive" and reason.startswith("can't tell on composite: ")
    times["composite"].update(ratio_low=0.97, ratio_high=0.99)
    v, reason = rmsnorm_speed.verdict_rmsnorm_speed(times)
    assert v == "inconclusive" and reason.startswith("depends on the implementation: ")


def test_the_headline_leaves_unreliable_cases_out():
    """A clear 2x on eager, but its pair on composite was timed on a busy machine: composite
    gets "can't tell" with the reason, eager keeps its figure, and the count is said."""
    from dataclasses import replace

    eager = list(pair(2.0, 1.0))
    busy = [replace(r, unreliable="other processes used 90% of the CPUs while it was timed")
            for r in pair(2.0, 1.0, backend="composite", seed=5)]  # fmt: skip
    answer = rms_vs_ln(eager + busy)
    assert "eager: RMSNorm 2.00x slower" in answer
    assert "composite: can't tell (its cases were timed while unreliable)" in answer
    assert answer.endswith("(2 unreliable cases left out.)")
    # Every case unreliable: every backend can't tell, and no count is appended.
    only_busy = rms_vs_ln(busy)
    assert "composite: can't tell" in only_busy and "left out" not in only_busy
