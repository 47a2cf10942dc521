"""The CUDA timer's modes on CPU, with torch.cuda replaced by a simulated GPU.

The simulation keeps two clocks: the host's (advanced by each call's host cost) and the GPU's
(each queued op starts when both the GPU is free and the host has issued it). So a short kernel
behind a slow wrapper is host-bound unless the calls are queued ahead (a GPU-side wait) or come
from one graph replay, as on a real GPU; the tests assert the numbers this model gives.
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import pytest
import torch

from normbench import timing, timing_cuda
from normbench.timing_cuda import calls_per_sample, capture_failure, hold_cycles, plan

KERNEL_S = 20e-6  # GPU time of one call
HOST_S = 40e-6  # host time to issue one call (wrapper + launch)
FLUSH_S = 30e-6
SLEEP_RATE = 1.5e9  # cycles per second of the fake torch.cuda._sleep
REPLAY_HOST_S = 5e-6


class FakeGpu:
    def __init__(self) -> None:
        self.host = 0.0
        self.gpu_free = 0.0
        self.capturing: FakeGraph | None = None
        self.captures = 0
        self.flushes = 0

    def enqueue(self, gpu_s: float, host_s: float = 0.0, tag: object = None) -> float:
        self.host += host_s
        if self.capturing is not None:
            self.capturing.ops.append((gpu_s, tag))
            return self.gpu_free
        self.gpu_free = max(self.gpu_free, self.host) + gpu_s
        return self.gpu_free

    def sync(self, *_: object) -> None:
        if self.capturing is not None:
            raise RuntimeError("operation not permitted when stream is capturing")
        self.host = max(self.host, self.gpu_free)

    def busy(self) -> bool:
        return self.gpu_free > self.host


class FakeGraph:
    gpu: FakeGpu

    def __init__(self) -> None:
        self.ops: list[tuple[float, object]] = []

    def replay(self) -> None:
        self.gpu.enqueue(sum(s for s, _ in self.ops), REPLAY_HOST_S)


class FakeEvent:
    gpu: FakeGpu

    def __init__(self, enable_timing: bool = False) -> None:
        assert enable_timing
        self.t: float | None = None

    def record(self, stream: object = None) -> None:
        self.t = self.gpu.enqueue(0.0, 1e-6)

    def synchronize(self) -> None:
        self.gpu.sync()

    def elapsed_time(self, end: FakeEvent) -> float:
        return (end.t - self.t) * 1e3  # ms, as torch's


class FakeStream:
    def wait_stream(self, other: object) -> None:
        pass


@pytest.fixture
def gpu(monkeypatch) -> FakeGpu:
    g = FakeGpu()
    FakeGraph.gpu = FakeEvent.gpu = g

    @contextlib.contextmanager
    def graph(cuda_graph: FakeGraph, stream: object = None):
        g.captures += 1
        g.capturing = cuda_graph
        try:
            yield
        except Exception as exc:
            g.capturing = None
            raise RuntimeError("CUDA error: operation failed due to a previous error") from exc
        g.capturing = None

    def sleep(cycles: int) -> None:
        g.enqueue(cycles / SLEEP_RATE)

    cuda = torch.cuda
    monkeypatch.setattr(cuda, "synchronize", g.sync)
    monkeypatch.setattr(cuda, "Event", FakeEvent)
    monkeypatch.setattr(cuda, "Stream", FakeStream)
    monkeypatch.setattr(cuda, "current_stream", lambda *a: FakeStream())
    monkeypatch.setattr(cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(cuda, "device", lambda d: contextlib.nullcontext())
    monkeypatch.setattr(cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(cuda, "graph", graph)
    monkeypatch.setattr(cuda, "_sleep", sleep, raising=False)
    monkeypatch.setattr(
        timing_cuda, "host_time_per_call", lambda run, device, calls, probes=3: HOST_S
    )

    class Flush:
        def zero_(self) -> None:
            g.flushes += 1
            g.enqueue(FLUSH_S, 3e-6)

    monkeypatch.setattr(
        timing_cuda, "l2_flush_buffer", lambda device, hot: None if hot else Flush()
    )
    return g


def rotating_run(gpu: FakeGpu, kernel_s: float = KERNEL_S, buffers: int = 7):
    """A call that reads the next of `buffers` input buffers each time (cold-mode rotation)."""
    state = {"i": 0}

    def run() -> None:
        gpu.enqueue(kernel_s, HOST_S, tag=state["i"] % buffers)
        state["i"] += 1

    return run


def test_calls_per_sample_reach_100_us():
    assert calls_per_sample(20e-6) == 5
    assert calls_per_sample(12.5e-6) == 8
    assert calls_per_sample(33e-6) == 4  # ceil(3.03)
    assert calls_per_sample(99e-6) == 2
    assert calls_per_sample(100e-6) == 1
    assert calls_per_sample(1e-3) == 1
    assert calls_per_sample(1e-8) == timing_cuda.MAX_INNER


def test_short_call_is_replayed_from_a_graph_of_enough_calls(gpu):
    run = rotating_run(gpu)
    # The warm-up's synchronized call (60 us: host and GPU) asks for 2 calls; the trial replay
    # shows 20 us of GPU per call, so the graph is captured again with 5.
    p = plan(run, "cuda", 60e-6, hot=False, cuda_graph="auto")
    assert p.inner == 5
    assert p.timer() == "cuda graph (5 calls per replay)"
    assert p.timer(", interleaved") == "cuda graph, interleaved (5 calls per replay)"
    assert p.launch_overhead_s == HOST_S
    assert gpu.captures == 2
    before = gpu.flushes
    samples = p.take(4)
    assert samples == pytest.approx([KERNEL_S] * 4, rel=1e-9, abs=0)  # seconds per call
    assert gpu.flushes - before == 4  # one flush per sample, outside the events


def test_graph_captures_consecutive_buffers(gpu, monkeypatch):
    captured = []
    real = timing_cuda.capture

    def spy(run, device, inner):
        graph, why = real(run, device, inner)
        captured.append([tag for _, tag in graph.ops])
        return graph, why

    monkeypatch.setattr(timing_cuda, "capture", spy)
    plan(rotating_run(gpu, buffers=7), "cuda", 60e-6, hot=True)
    # 3 side-stream warm-up calls (buffers 0-2), then 2 captured (3, 4); the completeness
    # check's 3 samples of the 2 calls queued (5, 6, 0, 1, 2, 3); 3 warm-up (4, 5, 6), then 5
    # captured.
    assert captured == [[3, 4], [0, 1, 2, 3, 4]]


def test_a_graph_missing_part_of_the_call_is_not_used(gpu):
    """A capture that "succeeds" while part of the work runs outside it (autograd's backward on
    the forward's stream) replays the rest: plausible, too small. Its replay is checked
    against the same calls queued, and events time it instead."""
    state = {"i": 0}

    def half_captured() -> None:
        gpu.enqueue(KERNEL_S / 2, HOST_S / 2, tag=state["i"])  # captured when capturing
        capturing, gpu.capturing = gpu.capturing, None
        gpu.enqueue(KERNEL_S / 2, HOST_S / 2)  # on another stream: never in the graph
        gpu.capturing = capturing
        state["i"] += 1

    p = plan(half_captured, "cuda", 60e-6, hot=True)
    assert p.timer().startswith("cuda events (")
    assert "no cuda graph: its replay took 0.5x the time of the same calls queued" in p.timer()
    assert p.take(3) == pytest.approx([KERNEL_S] * 3, rel=1e-6)  # the whole call, both halves


def test_hot_graph_has_no_flush(gpu):
    p = plan(rotating_run(gpu), "cuda", 60e-6, hot=True)
    assert p.timer() == "cuda graph (5 calls per replay; hot L2)"
    assert gpu.flushes == 0
    assert p.take(3) == pytest.approx([KERNEL_S] * 3, rel=1e-9)


def test_failed_capture_falls_back_to_calls_behind_a_gpu_wait(gpu):
    inner_run = rotating_run(gpu)

    def syncing_run() -> None:  # a backend that synchronizes (e.g. .item()) cannot be captured
        inner_run()
        gpu.sync()

    p = plan(syncing_run, "cuda", 60e-6, hot=True)
    assert p.timer() == (
        "cuda events (3 calls per sample; queued behind a GPU wait; hot L2; "
        "no cuda graph: RuntimeError: operation not permitted when stream is capturing)"
    )
    # A call that waits for the GPU makes the calls serial whatever is queued ahead: after the
    # first kernel each one costs its host time and its kernel, and the end event is recorded
    # 1 us after the last wait: (20 + 2 x 60 + 1) / 3 us per call. The trial sample (2 calls,
    # ~40 us per call) asked for 3.
    expected = (KERNEL_S + 2 * (HOST_S + KERNEL_S) + 1e-6) / 3
    assert p.take(3) == pytest.approx([expected] * 3, rel=1e-9)


def test_calls_behind_the_gpu_wait_time_the_kernel_not_the_host(gpu, monkeypatch):
    monkeypatch.setattr(timing_cuda, "capture", lambda run, device, inner: (None, "no"))
    p = plan(rotating_run(gpu), "cuda", 60e-6, hot=False)
    assert p.inner == 5  # raised from the trial sample's 20 us per call
    assert (
        p.timer() == "cuda events (5 calls per sample; queued behind a GPU wait; no cuda graph: no)"
    )
    assert p.take(3) == pytest.approx([KERNEL_S] * 3, rel=1e-9)


def test_without_the_wait_back_to_back_calls_are_host_bound(gpu, monkeypatch):
    # What the wait is for: the same calls without it run at the host's pace (40 us, not 20).
    monkeypatch.setattr(timing_cuda, "capture", lambda run, device, inner: (None, "no"))
    monkeypatch.setattr(timing_cuda, "sleep_rate", lambda device: None)
    p = plan(rotating_run(gpu), "cuda", 60e-6, hot=True)
    assert p.timer() == "cuda events (3 calls per sample; hot L2; no cuda graph: no)"
    samples = p.take(3)
    # From an idle GPU (3 x 40 + 20) / 3 us per call, then the host's pace (3 x 40 + 2) / 3.
    assert samples == pytest.approx([(3 * HOST_S + KERNEL_S) / 3] + [(3 * HOST_S + 2e-6) / 3] * 2)
    assert min(samples) > 2 * KERNEL_S


def test_cuda_graph_off_never_captures(gpu):
    p = plan(rotating_run(gpu), "cuda", 60e-6, hot=True, cuda_graph="off")
    assert gpu.captures == 0
    assert p.timer() == "cuda events (5 calls per sample; queued behind a GPU wait; hot L2)"
    assert p.take(2) == pytest.approx([KERNEL_S] * 2, rel=1e-9)


def test_long_call_keeps_one_call_per_event_pair(gpu, monkeypatch):
    probes = []
    monkeypatch.setattr(
        timing_cuda,
        "host_time_per_call",
        lambda run, device, calls, probes_=3: probes.append((calls, probes_)) or HOST_S,
    )
    run = rotating_run(gpu, kernel_s=1e-3)
    cold = plan(run, "cuda", 1.05e-3, hot=False)
    assert (cold.inner, cold.timer(), gpu.captures) == (1, "cuda events", 0)
    assert probes == [
        (1, 1)
    ]  # one call, one probe: a long call's host time only decides launch-bound
    # As before this change: the first sample of a block shows the part of the host's 40 us
    # that the 30 us flush does not hide (plus the event records' 1 us each); later ones none.
    assert cold.take(2) == pytest.approx([1.011e-3, 1e-3], rel=1e-9)
    hot = plan(run, "cuda", 1.05e-3, hot=True)
    assert hot.timer() == "cuda events (hot L2)"
    on = plan(run, "cuda", 1.05e-3, hot=True, cuda_graph="on")
    assert on.timer() == "cuda graph (1 call per replay; hot L2)"
    assert on.take(2) == pytest.approx([1e-3] * 2, rel=1e-9)  # the block starts queued


def test_launch_bound_long_call_is_sampled_like_a_short_one(gpu, monkeypatch):
    # 300 us per synchronized call, 280 us of it the host's: the GPU waits on the host.
    monkeypatch.setattr(
        timing_cuda, "host_time_per_call", lambda run, device, calls, probes=3: 280e-6
    )
    p = plan(rotating_run(gpu, kernel_s=150e-6), "cuda", 300e-6, hot=True)
    assert p.timer() == "cuda graph (1 call per replay; hot L2)"
    assert p.take(2) == pytest.approx([150e-6] * 2, rel=1e-9)


def test_unknown_cuda_graph_choice_is_refused(gpu):
    with pytest.raises(ValueError, match="auto, on, off"):
        plan(rotating_run(gpu), "cuda", 60e-6, hot=True, cuda_graph="yes")


def test_nvml_is_read_while_the_block_runs(gpu, monkeypatch):
    seen = []
    monkeypatch.setattr(timing_cuda, "sample_active", lambda: seen.append(gpu.busy()))
    p = plan(rotating_run(gpu), "cuda", 60e-6, hot=True)
    seen.clear()
    p.take(3)
    assert seen == [True]  # once per block, before the synchronize


def test_capture_failure_names_the_body_error():
    try:
        try:
            raise RuntimeError("operation not permitted when stream is capturing\nmore")
        except RuntimeError:
            raise RuntimeError("capture invalidated") from None
    except RuntimeError as exc:
        # `from None` hides the context from tracebacks but keeps __context__: the body's error.
        assert capture_failure(exc) == (
            "RuntimeError: operation not permitted when stream is capturing"
        )
    long = ValueError("x" * 200)
    assert len(capture_failure(long)) == 120
    assert capture_failure(long).endswith("...")


def test_hold_cycles_cover_the_host_issue_time():
    # 1.5 x 100 us + 20 us = 170 us at 1 GHz.
    assert hold_cycles(1e9, 100e-6) == 170_000
    assert hold_cycles(1e9, 1.0) == 20_000_000  # capped at 20 ms
    assert hold_cycles(None, 100e-6) is None


def test_sleep_rate_is_measured_by_events(gpu):
    assert timing_cuda.sleep_rate("cuda") == pytest.approx(SLEEP_RATE, rel=1e-6)


def test_l2_flush_is_twice_the_devices_l2(monkeypatch):
    made = []
    monkeypatch.setattr(
        torch, "empty", lambda n, dtype, device: made.append((n, dtype, str(device))) or "buf"
    )
    props = SimpleNamespace(L2_cache_size=50 << 20)  # H100
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: props)
    real = timing_cuda.l2_flush_buffer
    assert real("cuda:1", hot=True) is None
    assert real("cuda:1", hot=False) == "buf"
    assert made[-1] == (2 * (50 << 20) // 4, torch.int32, "cuda:1")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: SimpleNamespace())
    real("cuda", hot=False)
    assert made[-1][0] == 2 * (64 << 20) // 4  # no L2 size reported: 64 MiB


def test_host_time_per_call_is_the_issue_time(monkeypatch):
    import time

    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
    monkeypatch.setattr(torch.cuda, "device", lambda d: contextlib.nullcontext())
    t = timing_cuda.host_time_per_call(lambda: time.sleep(0.002), "cuda", 2)
    assert 0.002 <= t < 0.02


def test_warm_up_and_measure_report_mode_and_launch_overhead(gpu, monkeypatch):
    monkeypatch.setattr(timing, "warmup_calls", lambda run, sync, budget: (0.5, [60e-6] * 3))
    config = timing.TimingConfig(budget_s=0.2, min_blocks=3, hot=True)
    sampler = timing.warm_up(rotating_run(gpu), "cuda", config, "interleaved")
    assert (sampler.inner, sampler.per_call, sampler.launch_overhead_s) == (5, 60e-6, HOST_S)
    assert sampler.timer == "cuda graph, interleaved (5 calls per replay; hot L2)"
    t = timing.measure(rotating_run(gpu), "cuda", config)
    assert t.inner_loops == 5
    assert t.launch_overhead_s == HOST_S
    assert t.summary.median == pytest.approx(KERNEL_S, rel=1e-9)
    assert t.timer == "cuda graph (5 calls per replay; hot L2)"


def test_graph_taker_keeps_the_calls_inputs_alive(gpu):
    import gc
    import weakref

    class Run:  # stands for the runner's closure over its input tensors
        def __call__(self) -> None:
            gpu.enqueue(KERNEL_S, HOST_S)

    run = Run()
    gone = weakref.ref(run)
    p = plan(run, "cuda", 60e-6, hot=True)
    del run
    gc.collect()
    assert gone() is not None  # the graph replays the addresses of what `run` holds
    assert p.take(1) == pytest.approx([KERNEL_S], rel=1e-9)
    del p
    gc.collect()
    assert gone() is None
