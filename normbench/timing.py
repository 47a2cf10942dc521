"""Timers: CPU (perf_counter_ns) and CUDA (events, L2 flush), with warm-up and adaptive stopping.

Method (docs/numerics.md section 6): warm up until first-call costs are gone, then take samples in
blocks; after at least `min_blocks` blocks stop as soon as the 95% CI of the median is within
+-`target_rel_ci`, or when the time budget is spent. Raw per-call samples are kept, block by block,
so a later comparison can bootstrap over blocks.

The pieces are public so that `ab` times two sides with the same code as `measure`: `warm_up`
returns a `Sampler` (a warmed-up call and its block taker), `block_size` picks the samples per
block, `alternate` takes blocks from one or more samplers until they converge, and
`Sampler.timing` turns the samples into a `Timing`. `measure` is those four for one sampler.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from normbench.machine import MachineState, MachineWatch
from normbench.reliability import assess
from normbench.stats import MIN_FOR_MEDIAN_CI, Summary, summarize

# CPU samples shorter than this are dominated by timer and loop overhead: loop inside the sample.
MIN_SAMPLE_S = 1e-3


@dataclass(frozen=True)
class TimingConfig:
    budget_s: float = 1.0
    min_blocks: int = 5
    block_size: int = 5
    target_rel_ci: float = 0.01
    warmup_s: float = 0.2
    hot: bool = False  # back to back: no L2 flush on CUDA (the caller rotates no inputs either)
    max_samples: int = 5000
    # CUDA: replay short calls from a CUDA graph: "auto" (short or launch-bound calls), "on"
    # (every call), "off" (never); see normbench.timing_cuda.
    cuda_graph: str = "auto"


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
    # Why the figure cannot be trusted (normbench.reliability); empty when nothing was found.
    unreliable: tuple[str, ...] = ()
    machine: MachineState | None = field(default=None, compare=False)
    # CUDA: host seconds to issue one call (wrapper and launches), apart from the GPU time.
    launch_overhead_s: float | None = None


@dataclass(frozen=True)
class Sampler:
    """A call warmed up and ready to time: `take(k)` returns k samples, seconds per call."""

    take: Callable[[int], list[float]]
    per_call: float  # the typical warm-up call, seconds
    inner: int  # calls per sample (CPU: enough for MIN_SAMPLE_S; CUDA: for SHORT_CALL_S)
    first_call_s: float  # the first call, timed apart (compilation, autotuning, allocation)
    warmup_calls: int
    timer: str
    launch_overhead_s: float | None = None  # CUDA: host seconds to issue one call

    @property
    def per_sample(self) -> float:
        return self.per_call * self.inner

    def timing(
        self, samples: list[float], block: int, stopped: str, machine: MachineState | None = None
    ) -> Timing:
        """The Timing of `samples` taken from this sampler in blocks of `block`, with the warnings
        a reader needs and the reasons it cannot be trusted (normbench.reliability), `machine`
        what else the machine did meanwhile."""
        summary = summarize(samples)
        warnings, unreliable = assess(samples, summary, stopped, machine)
        return Timing(
            samples=tuple(samples),
            block_size=block,
            inner_loops=self.inner,
            first_call_s=self.first_call_s,
            warmup_calls=self.warmup_calls,
            stopped=stopped,
            timer=self.timer,
            summary=summary,
            warnings=warnings,
            unreliable=unreliable,
            machine=machine,
            launch_overhead_s=self.launch_overhead_s,
        )


def warmup_calls(
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
    sampler = warm_up(run, device, config)
    block = block_size(sampler.per_sample, config)
    watch = MachineWatch(device)
    with no_gc():
        samples, stopped = alternate([sampler.take], block, config, config.min_blocks, watch)
    return sampler.timing(samples[0], block, stopped, watch.stop())


def warm_up(
    run: Callable[[], object], device: str, config: TimingConfig, label: str = ""
) -> Sampler:
    """Warm `run` up on `device` and return its Sampler: CUDA events (normbench.timing_cuda), or
    perf_counter_ns looped to at least MIN_SAMPLE_S per sample. `label` is added to the timer's
    name (ab: "interleaved")."""
    tag = f", {label}" if label else ""
    if device.startswith("cuda"):
        import torch

        from normbench.timing_cuda import plan

        dev = torch.device(device)
        with torch.cuda.device(dev):  # cuda:N: launches (Triton's too) on N, not the current one
            first, warm = warmup_calls(run, lambda: torch.cuda.synchronize(dev), config.warmup_s)
        per_call = upper_median(warm)
        p = plan(run, device, per_call, config.hot, config.cuda_graph)
        return Sampler(
            p.take, per_call, p.inner, first, len(warm), p.timer(tag), p.launch_overhead_s
        )
    first, warm = warmup_calls(run, lambda: None, config.warmup_s)
    per_call = upper_median(warm)
    inner = cpu_inner_loops(per_call)
    return Sampler(
        cpu_taker(run, inner), per_call, inner, first, len(warm), f"perf_counter_ns{tag}"
    )


def block_size(per_sample_s: float, config: TimingConfig) -> int:
    """Samples per block for samples of `per_sample_s` seconds."""
    # Slow calls (one sample already a sizeable part of the budget) take one sample per block so
    # that min_blocks blocks still fit; fast ones use the configured block.
    if per_sample_s * config.block_size * config.min_blocks > config.budget_s:
        return 1
    return config.block_size


def alternate(
    takers: list[Callable[[int], list[float]]],
    block: int,
    config: TimingConfig,
    min_rounds: int,
    watch: MachineWatch | None = None,
) -> tuple[list[list[float]], str]:
    """Rounds of one block per taker, the order reversed every other round (A B, B A, ...: a drift
    linear over two rounds cancels), until every taker's median CI is within the target after at
    least `min_rounds` rounds, or the budget is spent. The samples per taker, and why it stopped
    ("converged" or "budget"). One taker: `measure`'s adaptive stopping. `watch` is started
    here and sampled after every round (the caller stops it)."""
    samples: list[list[float]] = [[] for _ in takers]
    order = list(range(len(takers)))
    rounds, stopped = 0, "budget"
    start = time.perf_counter()
    if watch is not None:
        watch.start()
    while True:
        for i in order if rounds % 2 == 0 else order[::-1]:
            samples[i].extend(takers[i](block))
        rounds += 1
        if watch is not None:
            watch.sample()
        # Never fewer samples than a 95% CI of the median needs: 3 blocks of 1 (a slow call
        # under --quick) gave [min, max] of 3, a 75% interval, shown as the 95% CI.
        enough = all(len(s) >= MIN_FOR_MEDIAN_CI for s in samples)
        if rounds >= min_rounds and enough:
            if all(summarize(s).rel_ci <= config.target_rel_ci for s in samples):
                stopped = "converged"
                break
            if time.perf_counter() - start >= config.budget_s:
                break
        if len(samples[0]) >= config.max_samples:
            break
    return samples, stopped


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
