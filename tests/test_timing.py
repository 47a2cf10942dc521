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
