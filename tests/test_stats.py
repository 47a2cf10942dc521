import math
import warnings
from fractions import Fraction
from itertools import accumulate

import numpy as np
import pytest

from normbench.stats import geomean, median_ci, process_ci, ratio_ci, summarize


def test_summary_of_known_samples():
    s = summarize([5.0, 1.0, 4.0, 2.0, 3.0])
    assert s.n == 5
    assert s.median == 3.0
    assert s.p20 == pytest.approx(np.quantile([1, 2, 3, 4, 5], 0.2))
    assert s.p80 == pytest.approx(4.2)
    assert s.mean == 3.0
    assert s.stdev == pytest.approx(math.sqrt(2.5))
    # Fewer than 6 samples: no order-statistic pair covers 95%, the CI is the range.
    assert (s.ci_low, s.ci_high) == (1.0, 5.0)


def test_median_ci_ranks_match_the_binomial_table():
    # n = 100: the distribution-free 95% CI of the median is the 40th to 61st smallest
    # (Conover, Practical Nonparametric Statistics, Table A3).
    data = np.arange(1, 101, dtype=float)
    assert median_ci(data) == (40.0, 61.0)


def exact_median_ci(sorted_x, confidence: float) -> tuple[float, float]:
    """Reference: [x(r), x(n+1-r)] misses the median when at most r - 1 samples lie below it (or,
    by symmetry, above), so its coverage is 1 - 2 P(B <= r - 1) for B ~ Binomial(n, 1/2). Take
    the largest r with P(B <= r - 1) <= (1 - confidence) / 2, in exact integer arithmetic; the
    full range when not even r = 1 qualifies."""
    n = len(sorted_x)
    tail = (1 - Fraction(str(confidence))) / 2
    below = list(accumulate(math.comb(n, j) for j in range(n + 1)))  # 2^n P(B <= k)
    r = 0
    while r < n and Fraction(below[r], 2**n) <= tail:
        r += 1
    if r == 0:
        return float(sorted_x[0]), float(sorted_x[-1])
    return float(sorted_x[r - 1]), float(sorted_x[n - r])


@pytest.mark.parametrize("confidence", [0.6, 0.8, 0.9, 0.95, 0.98, 0.99])
def test_median_ci_matches_the_exact_binomial_order_statistics(confidence):
    # Odd and even n, n too small for any pair of ranks, ties, constant samples. (Levels whose
    # tail (1 - c) / 2 is not a power-of-two fraction: no binomial tail equals it exactly.)
    rng = np.random.default_rng(11)
    for n in [*range(1, 61), 99, 100, 101, 255, 256, 1000]:
        for x in (rng.exponential(size=n), rng.integers(0, 4, size=n), np.full(n, 7.0)):
            x = np.sort(x.astype(float))
            assert median_ci(x, confidence) == exact_median_ci(x, confidence), (n, x)


def test_median_ci_of_too_few_samples_is_the_range():
    assert median_ci([3.0], 0.95) == (3.0, 3.0)
    assert median_ci([1.0, 2.0], 0.5) == (1.0, 2.0)  # only the upper rank exists at 50%
    assert all(math.isnan(v) for v in median_ci([], 0.95))


def test_median_ci_coverage_is_near_95_percent():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(2000):
        sample = np.sort(rng.exponential(size=25))
        lo, hi = median_ci(sample)
        hits += lo <= math.log(2) <= hi
    assert 0.93 <= hits / 2000 <= 0.99


def test_rel_ci_and_spread():
    s = summarize([10.0] * 20)
    assert s.rel_ci == 0.0 and s.spread == 0.0
    assert summarize([]).n == 0


def test_geomean_ignores_non_positive():
    assert geomean([2.0, 8.0]) == pytest.approx(4.0)
    assert math.isnan(geomean([0.0, -1.0]))


def test_geomean_is_the_exponent_of_the_mean_log():
    rng = np.random.default_rng(2)
    values = list(rng.lognormal(0, 1, size=200))
    ref = math.exp(sum(math.log(v) for v in values) / len(values))
    assert geomean([*values, 0.0, math.inf, math.nan]) == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_ratio_ci_standard_error_uses_the_normal_quantile_of_its_level(confidence):
    # Normal log-ratio replicates of sd 0.1: the se read off the percentiles is 0.1 at every
    # level only if the half-width is divided by the quantile of that level.
    rep = np.random.default_rng(4).normal(0.0, 0.1, 200_000)
    ci = ratio_ci([1.0], [1.0], rep, confidence)
    assert ci.log_se == pytest.approx(0.1, rel=0.01)


@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99])
def test_process_ci_is_welchs_interval_at_its_level(confidence):
    from scipy.stats import t

    rng = np.random.default_rng(6)
    base = [list(rng.lognormal(m, 0.02, 9)) for m in rng.normal(0, 0.1, 4)]
    new = [list(rng.lognormal(m, 0.02, 7)) for m in rng.normal(0.2, 0.2, 3)]
    ci = process_ci(base, new, confidence)
    lb, ln = (np.log([np.median(g) for g in side]) for side in (base, new))
    vb, vn = lb.var(ddof=1) / 4, ln.var(ddof=1) / 3
    df = (vb + vn) ** 2 / (vb**2 / 3 + vn**2 / 2)  # Welch-Satterthwaite, by hand
    q = t.ppf((1 + confidence) / 2, df) * math.sqrt(vb + vn)
    center = ln.mean() - lb.mean()
    assert ci.df == pytest.approx(df, rel=1e-12)
    assert ci.log_se == pytest.approx(math.sqrt(vb + vn), rel=1e-12)
    assert (ci.low, ci.high) == pytest.approx((math.exp(center - q), math.exp(center + q)))
    assert ci.processes == 3


def test_process_ci_of_identical_medians_is_a_point_with_the_pooled_df():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's precision warning must not reach the user
        ci = process_ci([[1.0, 2.0, 3.0]] * 3, [[2.0, 2.0]] * 4)
        one_side = process_ci([[2.0]] * 3, [[2.0], [2.1], [2.3]])
    assert (ci.low, ci.ratio, ci.high) == pytest.approx((1.0, 1.0, 1.0))
    assert ci.df == 5 and ci.log_se == 0.0
    assert one_side.df == pytest.approx(2.0) and one_side.low < one_side.high
