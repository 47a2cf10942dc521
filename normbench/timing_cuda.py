"""CUDA timing: events around each sample, the L2 flushed before each one for cold numbers, and
short calls timed several to a sample, replayed from a CUDA graph where they can be captured.

normbench.timing's `warm_up` asks `plan` for a CUDA device's way of sampling once the call is
warm, and builds the Sampler from it; it is used exactly as a CPU one (docs/numerics.md
section 6). Samples are always seconds per call.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from normbench.machine_cuda import sample_active

# A call shorter than this is timed several to an event pair. One call's Python wrapper and
# launches cost 30-50 us of host time (issue 21), a sample's own costs (two event records, the
# first launch's latency, the end of the flush) a few us: below ~100 us of GPU work per sample
# those costs, not the kernel, set the time. Calls are added until a sample holds ~100 us.
SHORT_CALL_S = 100e-6
# Never more calls per sample than this (a call is never timed under ~1 us: the warm-up's
# synchronize alone costs more), so a graph stays small.
MAX_INNER = 100
# A call whose host-side issue time is at least this part of its synchronized wall time is
# launch-bound (the GPU waits on the host), however long it is: it is sampled like a short one.
LAUNCH_BOUND = 0.5
# PyTorch's graph capture wants the call run a few times on the capture's side stream first
# (lazy initialisation of handles and workspaces must not happen inside the capture).
CAPTURE_WARMUP = 3
# Plain multi-call samples are queued behind a GPU-side wait (torch.cuda._sleep) that lasts this
# many times the host's issue time of one sample, plus HOLD_EXTRA_S, so that the calls run back
# to back on the GPU even when the host is slower than the kernel. Capped at HOLD_MAX_S.
HOLD_MARGIN, HOLD_EXTRA_S, HOLD_MAX_S = 1.5, 20e-6, 20e-3
# A replay under this share of the same calls queued back to back is missing work (see
# `incomplete_graph`); a whole replay saves only the launch gaps, never a third of the time.
GRAPH_MIN_SHARE = 0.7
# A graph's block starts behind a wait covering the host's issue of one replay (a few us).
GRAPH_LEAD_S = 20e-6
SLEEP_CALIBRATION_CYCLES = 1_000_000  # ~0.5-1 ms at the SM clocks of current GPUs
GRAPH_CHOICES = ("auto", "on", "off")


@dataclass(frozen=True)
class CudaPlan:
    """How a CUDA call is sampled: the block taker, calls per sample, the timer's words and the
    host's issue time per call (the launch overhead, reported apart from the GPU time)."""

    take: Callable[[int], list[float]]
    inner: int
    mode: str  # "cuda graph" or "cuda events"
    details: tuple[str, ...]
    launch_overhead_s: float | None

    def timer(self, tag: str = "") -> str:
        """e.g. 'cuda graph (5 calls per replay)', 'cuda events, interleaved (hot L2)'."""
        return f"{self.mode}{tag}" + (f" ({'; '.join(self.details)})" if self.details else "")


def calls_per_sample(per_call_s: float) -> int:
    """Calls per event pair: 1 for a call of SHORT_CALL_S or more, else enough for SHORT_CALL_S
    (20 us -> 5)."""
    if per_call_s >= SHORT_CALL_S:
        return 1
    # The 1e-9 keeps an exact ratio (100 / 20) from rounding up to the next integer.
    return min(MAX_INNER, math.ceil(SHORT_CALL_S / max(per_call_s, 1e-9) * (1 - 1e-9)))


def plan(
    run: Callable[[], object], device: str, per_call_s: float, hot: bool, cuda_graph: str = "auto"
) -> CudaPlan:
    """The sampling mode of a warmed-up `run` whose synchronized call takes `per_call_s`.

    Short or launch-bound calls take `calls_per_sample` calls per sample, replayed from one CUDA
    graph (cuda_graph "auto" or "on"; "on" captures long calls too) or, when capture fails or
    cuda_graph is "off", run back to back behind a GPU-side wait. The calls per sample are
    raised once more from the GPU time a trial sample shows (the warm-up's time per call holds
    the host's share too). Long calls keep one call between two events. Cold (not `hot`): the
    L2 is flushed before each sample, outside it."""
    if cuda_graph not in GRAPH_CHOICES:
        raise ValueError(f"cuda_graph must be one of {', '.join(GRAPH_CHOICES)}: {cuda_graph!r}")
    inner = calls_per_sample(per_call_s)
    flush = l2_flush_buffer(device, hot)
    hot_words = ("hot L2",) if flush is None else ()
    # One probe of a long call is enough (it only shows whether the call is launch-bound).
    host_s = host_time_per_call(run, device, inner, 3 if per_call_s < 1e-3 else 1)
    short = inner > 1 or host_s >= LAUNCH_BOUND * per_call_s
    failed: tuple[str, ...] = ()
    rate = sleep_rate(device) if short or cuda_graph == "on" else None
    if cuda_graph == "on" or (cuda_graph == "auto" and short):
        # In cold mode the speed suite's `run` rotates its inputs through several buffers, one
        # per call: the graph then holds `inner` calls on `inner` different buffers, each call
        # reading inputs the flush has evicted, which is what a cold sample should time.
        graph, why = capture(run, device, inner)
        if graph is not None:
            lead = hold_cycles(rate, GRAPH_LEAD_S)
            take = graph_taker(graph, run, device, flush, inner, lead)
            replay = trial_per_call(take)
            why = incomplete_graph(replay, run, device, flush, inner, rate, host_s)
        if graph is not None and not why:
            more = calls_per_sample(replay)
            if more > inner:
                bigger, _ = capture(run, device, more)
                if bigger is not None:
                    inner, take = more, graph_taker(bigger, run, device, flush, more, lead)
            details = (f"{_calls(inner)} per replay", *hot_words)
            return CudaPlan(take, inner, "cuda graph", details, host_s)
        failed = (f"no cuda graph: {why}",)
    if not short:
        return CudaPlan(
            cuda_taker(run, device, flush), 1, "cuda events", hot_words + failed, host_s
        )
    take = cuda_taker(run, device, flush, inner, hold_cycles(rate, host_s * inner))
    more = calls_per_sample(trial_per_call(take))
    if more > inner:
        inner = more
        take = cuda_taker(run, device, flush, inner, hold_cycles(rate, host_s * inner))
    details = (f"{_calls(inner)} per sample",) + (("queued behind a GPU wait",) if rate else ())
    return CudaPlan(take, inner, "cuda events", details + hot_words + failed, host_s)


def incomplete_graph(
    replay: float,
    run: Callable[[], object],
    device: str,
    flush,
    inner: int,
    rate: float | None,
    host_s: float,
) -> str:
    """Why a graph that captured is not the whole call ("" when it is): its trial replay's
    time per call, `replay`, against the same calls queued behind a GPU-side wait, which runs
    them back to back as a replay does. A replay well under that (GRAPH_MIN_SHARE) left work
    out: autograd's backward through a graph built outside the capture can run part of its
    work on the forward's stream, and the replay would time the rest, a plausible-looking
    number that is too small. Without the wait (no sleep rate) the queued calls are host-bound
    and prove nothing: not judged."""
    if rate is None:
        return ""
    queued = cuda_taker(run, device, flush, inner, hold_cycles(rate, host_s * inner))
    calls = trial_per_call(queued)
    if replay < GRAPH_MIN_SHARE * calls:
        return (f"its replay took {replay / calls:.2g}x the time of the same calls queued: part "
                "of the call ran outside the capture")  # fmt: skip
    return ""


def _calls(n: int) -> str:
    return f"{n} call" if n == 1 else f"{n} calls"


def trial_per_call(take: Callable[[int], list[float]], k: int = 3) -> float:
    """The median of a trial block of k samples, seconds per call (never among the results)."""
    return sorted(take(k))[k // 2]


def cuda_taker(
    run: Callable[[], object], device: str, flush, inner: int = 1, hold: int | None = None
) -> Callable[[int], list[float]]:
    """A block of k CUDA-event samples of `inner` calls each, in seconds per call: the L2 flushed
    before each when `flush` is a buffer, the GPU held for `hold` cycles before each (so the
    host queues the calls ahead of it), one synchronize per block."""
    import torch

    dev = torch.device(device)

    def take(k: int) -> list[float]:
        with torch.cuda.device(dev):
            stream = torch.cuda.current_stream()
            events = _event_pairs(torch, k)
            for start, end in events:
                if flush is not None:
                    flush.zero_()
                if hold:
                    torch.cuda._sleep(hold)
                start.record(stream)
                for _ in range(inner):
                    run()
                end.record(stream)
            sample_active()  # NVML while the block runs (normbench.machine_cuda)
            torch.cuda.synchronize(dev)
        return [s.elapsed_time(e) * 1e-3 / inner for s, e in events]

    return take


def graph_taker(
    graph, run: Callable[[], object], device: str, flush, inner: int, lead: int | None = None
) -> Callable[[int], list[float]]:
    """A block of k samples, each one replay of `graph` (which holds `inner` calls of `run`)
    between two events, in seconds per call; the L2 flushed before each replay when `flush` is a
    buffer, the block started behind a GPU wait of `lead` cycles (so its first replay is queued,
    not timed from an idle GPU: the flush does that for the later ones, or the previous replay)."""
    import torch

    dev = torch.device(device)
    # The graph replays raw addresses: the tensors it reads belong to `run` (its inputs, rotated
    # copies), which must live as long as the graph does.
    alive = (graph, run)

    def take(k: int) -> list[float]:
        with torch.cuda.device(dev):
            stream = torch.cuda.current_stream()
            events = _event_pairs(torch, k)
            if lead:
                torch.cuda._sleep(lead)
            for start, end in events:
                if flush is not None:
                    flush.zero_()
                start.record(stream)
                alive[0].replay()
                end.record(stream)
            sample_active()
            torch.cuda.synchronize(dev)
        return [s.elapsed_time(e) * 1e-3 / inner for s, e in events]

    return take


def _event_pairs(torch, k: int) -> list:
    return [
        (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
        for _ in range(k)
    ]


def capture(run: Callable[[], object], device: str, inner: int) -> tuple[object | None, str]:
    """`inner` calls of `run` captured into one torch.cuda.CUDAGraph, replayed once to check it;
    or None and why not. A call that synchronizes, copies to the host, allocates pinned memory
    or launches on another stream cannot be captured (autograd's backward through a graph built
    outside the capture often cannot); torch.compile's and Triton's kernels can."""
    import torch

    dev = torch.device(device)
    try:
        with torch.cuda.device(dev):
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(CAPTURE_WARMUP):
                    run()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=side):
                for _ in range(inner):
                    run()
            graph.replay()
            torch.cuda.synchronize(dev)
        return graph, ""
    except Exception as exc:
        # A failed capture ends the capture (torch.cuda.graph's exit) and is not a sticky CUDA
        # error; synchronize so that the next call starts from an idle stream.
        with contextlib.suppress(Exception):
            torch.cuda.synchronize(dev)
        return None, capture_failure(exc)


def capture_failure(exc: BaseException) -> str:
    """Why a capture failed, in one short line. When the capture's body fails, ending the
    capture fails too ("invalidated"): the body's error, the context of the last, is the cause."""
    cause = exc.__context__ if exc.__context__ is not None else exc
    first = (str(cause).strip().splitlines() or [""])[0]
    text = f"{type(cause).__name__}: {first}" if first else type(cause).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def host_time_per_call(
    run: Callable[[], object], device: str, calls: int, probes: int = 3
) -> float:
    """Host seconds to issue one call (Python wrapper and launches, no synchronize): the median
    of `probes` runs of `calls` calls each, started from an idle GPU so the queue never pushes
    back."""
    import torch

    dev = torch.device(device)
    times = []
    with torch.cuda.device(dev):
        for _ in range(probes):
            torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            for _ in range(calls):
                run()
            times.append((time.perf_counter() - t0) / calls)
        torch.cuda.synchronize(dev)
    return sorted(times)[len(times) // 2]


def hold_cycles(rate: float | None, host_s: float) -> int | None:
    """torch.cuda._sleep cycles (at `rate` cycles per second, from `sleep_rate`) that hold the
    GPU while the host issues `host_s` of work; None without a rate (no sleep kernel)."""
    if not rate:
        return None
    seconds = min(HOLD_MAX_S, HOLD_MARGIN * host_s + HOLD_EXTRA_S)
    return max(1, int(rate * seconds))


def sleep_rate(device: str) -> float | None:
    """Cycles per second of torch.cuda._sleep (it spins on the SM clock), timed by events."""
    import torch

    dev = torch.device(device)
    try:
        with torch.cuda.device(dev):
            stream = torch.cuda.current_stream()
            start, end = _event_pairs(torch, 1)[0]
            for _ in range(2):  # the first one loads the kernel
                start.record(stream)
                torch.cuda._sleep(SLEEP_CALIBRATION_CYCLES)
                end.record(stream)
                end.synchronize()
            seconds = start.elapsed_time(end) * 1e-3
    except Exception:
        return None
    return SLEEP_CALIBRATION_CYCLES / seconds if seconds > 0 else None


def l2_flush_buffer(device: str, hot: bool):
    """None for hot numbers; else a buffer twice the L2 size, zeroed before each sample to evict
    the L2 (cold numbers)."""
    if hot:
        return None
    import torch

    dev = torch.device(device)
    # torch's device properties call the L2 size L2_cache_size (bytes, cudaDeviceProp.l2CacheSize);
    # where a build lacks it or reports 0, 64 MiB covers the H100's 50 MiB and the H200's 60 MiB.
    l2 = getattr(torch.cuda.get_device_properties(dev), "L2_cache_size", 0) or 64 << 20
    return torch.empty(2 * l2 // 4, dtype=torch.int32, device=dev)
