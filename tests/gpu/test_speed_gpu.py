"""speed on CUDA: CUDA events against a copy timed by hand, the L2 flush (cold) against hot,
multi-call samples and CUDA graphs for short calls with the launch overhead apart, the suite end
to end, and a case on cuda:N timed on N's stream."""

from __future__ import annotations

import pytest
import torch
from gpu_helpers import by_case, selection

from normbench.config import SpeedConfig
from normbench.suites.speed import run_speed
from normbench.timing import TimingConfig, measure
from normbench.timing_cuda import SHORT_CALL_S, cuda_taker, l2_flush_buffer

pytestmark = pytest.mark.gpu


def hand_timed(fn, calls: int = 20, repeats: int = 7) -> float:
    """Seconds per call: `calls` back to back between two events, the median of `repeats`."""
    out = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        out.append(start.elapsed_time(end) * 1e-3 / calls)
    return sorted(out)[repeats // 2]


def test_events_time_a_copy_as_timed_by_hand():
    src = torch.ones(64 << 20, device="cuda")  # 256 MiB: far past the L2
    dst = torch.empty_like(src)
    copy = lambda: dst.copy_(src)  # noqa: E731
    copy()
    ref = hand_timed(copy)
    t = measure(copy, "cuda", TimingConfig(budget_s=0.5, hot=True))
    assert t.summary.median == pytest.approx(ref, rel=0.05), t.timer
    assert t.timer.startswith("cuda events") and t.inner_loops == 1  # ~100+ us: one per sample
    # The copy moves 512 MiB: an HBM GPU does it at 1-5 TB/s.
    assert 0.5e12 < 2 * src.numel() * 4 / t.summary.median < 6e12


def test_the_l2_flush_makes_an_l2_sized_copy_cold():
    # One call per event pair (a multi-call sample is cold only for its first call; the speed
    # suite rotates its inputs for that): the flush alone decides where the copy reads from.
    src = torch.ones(4 << 20, device="cuda")  # 16 MiB, and 16 MiB written: inside the L2
    dst = torch.empty_like(src)
    copy = lambda: dst.copy_(src)  # noqa: E731
    copy()
    flush = l2_flush_buffer("cuda", hot=False)
    assert flush is not None and l2_flush_buffer("cuda", hot=True) is None
    cold = sorted(cuda_taker(copy, "cuda", flush)(21))[10]
    hot = sorted(cuda_taker(copy, "cuda", None)(21))[10]
    # Read from the L2, hot is faster than from memory (H100: about 2x at this size).
    assert cold > 1.2 * hot, (cold, hot)


def test_short_calls_are_timed_several_to_a_sample_with_the_launch_apart():
    x = torch.randn(8 * 2048, 1024, device="cuda", dtype=torch.bfloat16)  # ~20 us of work
    w = torch.ones(1024, device="cuda", dtype=torch.bfloat16)
    fn = lambda: torch.nn.functional.rms_norm(x, (1024,), w, 1e-6)  # noqa: E731
    for graph in ("auto", "off"):
        t = measure(fn, "cuda", TimingConfig(budget_s=0.3, hot=True, cuda_graph=graph))
        assert t.inner_loops * t.summary.median >= 0.5 * SHORT_CALL_S, t.timer
        assert t.launch_overhead_s is not None and t.launch_overhead_s > 0
        assert ("cuda graph" in t.timer) == (graph == "auto"), t.timer
    # Both ways time the kernel, not the launch path: within 15% of each other.
    on = measure(fn, "cuda", TimingConfig(budget_s=0.3, hot=True, cuda_graph="on"))
    off = measure(fn, "cuda", TimingConfig(budget_s=0.3, hot=True, cuda_graph="off"))
    assert on.summary.median == pytest.approx(off.summary.median, rel=0.15)


def test_speed_suite_times_the_compiled_kernels(tmp_path):
    sel = selection(("rmsnorm", "layernorm"), ("eager", "triton"), ("bf16",), (4096,),
                    modes=("fwd", "bwd"))  # fmt: skip
    run = run_speed(SpeedConfig(sel, threads=1, time_budget=0.3, quick=True, out=tmp_path))
    cases = by_case(run.cases())
    assert len(cases) == 8 and all(r.ok for r in cases.values()), [r.note for r in run.cases()]
    copy = run.env["copy_bandwidth_gbps"]
    assert 500 < copy < 6000
    for r in cases.values():
        assert r.timer.startswith("cuda") and r.cache == "cold", r.timer
        assert r.value("bandwidth") > 0.1 * copy, r.case_id
        assert 10 < r.value("pct_sol") < 115, (r.case_id, r.value("pct_sol"))
    for variant in ("rmsnorm", "layernorm"):  # the fused kernel: not slower than eager
        for mode in ("fwd", "bwd"):
            triton = cases[(variant, "triton", "bf16", 4096, mode)]
            eager = cases[(variant, "eager", "bf16", 4096, mode)]
            assert triton.time.value < 1.2 * eager.time.value, (variant, mode)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_a_case_on_another_device_is_timed_on_its_own_stream(tmp_path):
    # Events recorded on device 0's stream while the work ran on 1 would read ~0.
    last = torch.cuda.device_count() - 1
    times = {}
    for dev in ("cuda:0", f"cuda:{last}"):
        sel = selection(("rmsnorm",), ("triton", "eager"), ("bf16",), (4096,), device=dev)
        run = run_speed(SpeedConfig(sel, threads=1, time_budget=0.3, quick=True, out=tmp_path))
        assert torch.cuda.current_device() == 0
        times[dev] = {r.backend: r.time.value for r in run.cases() if r.ok}
    for backend in ("triton", "eager"):
        assert times[f"cuda:{last}"][backend] == pytest.approx(times["cuda:0"][backend], rel=0.3)
