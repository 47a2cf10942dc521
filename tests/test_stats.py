import math

import numpy as np
import pytest

from normbench.stats import geomean, median_ci, summarize


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
