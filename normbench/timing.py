"""Timers: CPU (perf_counter_ns) and CUDA (events, L2 flush), with warm-up and adaptive stopping.

Method (docs/numerics.md section 6): warm up until first-call costs are gone, then take samples in
blocks; after at least `min_blocks` blocks stop as soon as the 95% CI of the median is within
+-`target_rel_ci`, or when the time budget is spent. Raw per-call samples are kept, block by block,
so a later comparison can bootstrap over blocks.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from normbench.stats import Summary, summarize

# CPU samples shorter than this are dominated by timer and loop overhead: loop inside the sample.
MIN_SAMPLE_S = 1e-3


@dataclass(frozen=True)
class TimingConfig:
    budget_s: float = 1.0
    min_blocks: int = 5
    block_size: int = 5
    target_rel_ci: float = 0.01
    warmup_s: float = 0.2
    hot: bool = False  # CUDA: skip the L2 flush (back-to-back numbers)
    max_samples: int = 5000


@dataclass(frozen=True)
class Timing:
    samples: tuple[float, ...]  # seconds per call
    block_size: int
    inner_loops: int
    first_call_s: float
    warmup_calls: int
    stopped: str  # "converged" or "budget"
    timer: str
    summary: Summary = field(compare=False)
    warnings: tuple[str, ...] = ()


def _warmup(
    run: Callable[[], object], sync: Callable[[], None], budget_s: float
) -> tuple[float, list[float]]:
    """First call timed apart (compilation, autotuning, allocation), then calls until the last
    three agree within 10% or the warm-up budget is spent."""
    t0 = time.perf_counter()
    run()
    sync()
    first = time.perf_counter() - t0
    times: list[float] = []
    start = time.perf_counter()
    while True:
        t = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - t)
        if len(times) >= 3:
            last = sorted(times[-3:])
            settled = last[-1] <= 1.1 * last[0]
            if settled or time.perf_counter() - start > budget_s:
                break
        if len(times) >= 2 and time.perf_counter() - start > budget_s:
            break
    return first, times


def measure(
    run: Callable[[], object], device: str = "cpu", config: TimingConfig | None = None
) -> Timing:
    """Time `run()` on `device` ("cpu" or "cuda[:i]")."""
    config = config or TimingConfig()
    if device.startswith("cuda"):
        return _measure_cuda(run, device, config)
    return _measure_cpu(run, config)


def _adaptive(take_block: Callable[[int], list[float]], config: TimingConfig, block: int):
    """Collect blocks until the median's CI is tight enough or the budget is spent."""
    samples: list[float] = []
    start = time.perf_counter()
    blocks = 0
    stopped = "budget"
    while True:
        samples.extend(take_block(block))
        blocks += 1
        if blocks >= config.min_blocks:
            if summarize(samples).rel_ci <= config.target_rel_ci:
                stopped = "converged"
                break
            if time.perf_counter() - start >= config.budget_s:
                break
        if len(samples) >= config.max_samples:
            break
    return samples, stopped


def _block_size(per_sample_s: float, config: TimingConfig) -> int:
    # Slow calls (one sample already a sizeable part of the budget) take one sample per block so
    # that min_blocks blocks still fit; fast ones use the configured block.
    if per_sample_s * config.block_size * config.min_blocks > config.budget_s:
        return 1
    return config.block_size


def cpu_taker(run: Callable[[], object], inner: int) -> Callable[[int], list[float]]:
    """A block of k CPU samples, each `inner` calls long, in seconds per call."""

    def take(k: int) -> list[float]:
        out = []
        for _ in range(k):
            t0 = time.perf_counter_ns()
            for _ in range(inner):
                run()
            out.append((time.perf_counter_ns() - t0) * 1e-9 / inner)
        return out

    return take


def cuda_taker(run: Callable[[], object], device: str, flush) -> Callable[[int], list[float]]:
    """A block of k CUDA-event samples (L2 flushed before each when `flush` is a buffer), with one
    synchronize per block, not per sample."""
    import torch

    def take(k: int) -> list[float]:
        events = [
            (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            for _ in range(k)
        ]
        for start, end in events:
            if flush is not None:
                flush.zero_()
            start.record()
            run()
            end.record()
        torch.cuda.synchronize(device)
        return [s.elapsed_time(e) * 1e-3 for s, e in events]

    return take


def l2_flush_buffer(device: str, hot: bool):
    """None for hot numbers; else a buffer twice the L2 size, zeroed before each sample to evict
    the L2 (cold numbers)."""
    if hot:
        return None
    import torch

    dev = torch.device(device)
    l2 = getattr(torch.cuda.get_device_properties(dev), "L2_cache_size", 0) or 64 << 20
    return torch.empty(2 * l2 // 4, dtype=torch.int32, device=dev)


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """No garbage collection inside: a collection inside a sample is noise that belongs to no
    backend."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def upper_median(times: list[float]) -> float:
    """The typical warm-up call (the upper median: one of the measured values)."""
    return sorted(times)[len(times) // 2]


def cpu_inner_loops(per_call: float) -> int:
    """Calls per CPU sample, so that a sample lasts at least MIN_SAMPLE_S."""
    return max(1, math.ceil(MIN_SAMPLE_S / max(per_call, 1e-9)))


def _measure_cpu(run: Callable[[], object], config: TimingConfig) -> Timing:
    first, warm = _warmup(run, lambda: None, config.warmup_s)
    per_call = upper_median(warm)
    inner = cpu_inner_loops(per_call)
    block = _block_size(per_call * inner, config)

    with no_gc():
        samples, stopped = _adaptive(cpu_taker(run, inner), config, block)
    return _finish(samples, block, inner, first, len(warm), stopped, "perf_counter_ns")


def _measure_cuda(run: Callable[[], object], device: str, config: TimingConfig) -> Timing:
    import torch

    dev = torch.device(device)
    flush = l2_flush_buffer(device, config.hot)
    first, warm = _warmup(run, lambda: torch.cuda.synchronize(dev), config.warmup_s)
    block = _block_size(upper_median(warm), config)
    with no_gc():
        samples, stopped = _adaptive(cuda_taker(run, device, flush), config, block)
    timer = "cuda events" + ("" if flush is not None else " (hot L2)")
    return _finish(samples, block, 1, first, len(warm), stopped, timer)


def _finish(samples, block, inner, first, warm, stopped, timer) -> Timing:
    summary = summarize(samples)
    warnings = []
    if summary.spread > 0.1:
        warnings.append(f"unstable: p20-p80 spread is {summary.spread:.0%} of the median")
    if stopped == "budget" and summary.rel_ci > 0.05:
        warnings.append(f"CI of the median is +-{summary.rel_ci:.0%}: raise --time-budget")
    return Timing(
        samples=tuple(samples),
        block_size=block,
        inner_loops=inner,
        first_call_s=first,
        warmup_calls=warm,
        stopped=stopped,
        timer=timer,
        summary=summary,
        warnings=tuple(warnings),
    )
