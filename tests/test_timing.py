import time

from normbench.timing import TimingConfig, measure


def test_cpu_timer_measures_a_known_sleep():
    t = measure(lambda: time.sleep(0.002), "cpu", TimingConfig(budget_s=0.2, warmup_s=0.01))
    # A sleep never returns early, and this one is long enough for one call per sample.
    assert t.summary.median >= 0.002
    assert t.summary.median < 0.05
    assert t.inner_loops == 1
    assert t.summary.n == len(t.samples) >= 5
    assert t.timer == "perf_counter_ns"


def test_fast_calls_are_looped_inside_a_sample():
    calls = []
    t = measure(lambda: calls.append(1), "cpu", TimingConfig(budget_s=0.05, warmup_s=0.01))
    assert t.inner_loops > 1  # each sample >= 1 ms
    assert t.summary.median < 1e-4
    assert len(calls) >= t.inner_loops * t.summary.n


def test_first_call_is_timed_apart():
    state = {"first": True}

    def run():
        if state.pop("first", False):
            time.sleep(0.05)

    t = measure(run, "cpu", TimingConfig(budget_s=0.05, warmup_s=0.01))
    assert t.first_call_s >= 0.05
    assert t.summary.median < 0.01


def test_a_slow_call_over_budget_still_gets_a_95_percent_median_ci():
    # 3 blocks of 1 sample (a slow call under --quick) used to stop at 3 samples, whose
    # [min, max] covers the median with 75%, shown as the 95% CI.
    from scipy.stats import binom

    from normbench.stats import MIN_FOR_MEDIAN_CI, median_ci

    config = TimingConfig(budget_s=0.01, warmup_s=0.0, min_blocks=3)
    t = measure(lambda: time.sleep(0.004), "cpu", config)
    assert t.block_size == 1 and t.summary.n == MIN_FOR_MEDIAN_CI
    # 6 is the fewest samples whose range is a 95% CI: coverage 1 - 2 * 0.5^n.
    coverage = {n: 1 - 2 * binom.pmf(0, n, 0.5) for n in range(3, 8)}
    assert min(n for n, c in coverage.items() if c >= 0.95) == MIN_FOR_MEDIAN_CI
    s = sorted(t.samples)
    assert median_ci(s) == (s[0], s[-1])
