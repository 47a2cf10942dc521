"""memory on CUDA: the caching allocator's peaks in requested bytes (exact, not rounded blocks),
the fused kernels' saved bytes and peaks against the ideal, and what the allocator holds but
does not use counted as available."""

from __future__ import annotations

import pytest
import torch
from gpu_helpers import selection

from normbench.env import available_memory, measure_copy_bandwidth
from normbench.kernels.launch import bwd_grid, partial_stride
from normbench.memprobe import PeakMemory
from normbench.suites.memory import MemoryConfig, run_memory

pytestmark = pytest.mark.gpu
ROWS, N = 8 * 2048, 4096


def test_cuda_peak_by_hand():
    # The CPU test's sequence (tests/test_memory.py), in bytes as the tensors asked for them.
    with PeakMemory("cuda", "first") as mem:
        a = torch.empty(4000, dtype=torch.uint8, device="cuda")
        b = torch.empty(8000, dtype=torch.uint8, device="cuda")
        del a
        mem.mark("second")
        c = torch.empty(12000, dtype=torch.uint8, device="cuda")
        del b, c
        d = torch.empty(1000, dtype=torch.uint8, device="cuda")
    assert mem.phases["first"].peak == 4000 + 8000
    assert mem.total.peak == 8000 + 12000
    assert mem.total.net == 1000
    del d


@pytest.fixture(scope="module")
def fused():
    sel = selection(("rmsnorm", "layernorm"), ("triton",), ("bf16",), (N,), modes=("fwd+bwd",))
    return {r.variant: r for r in run_memory(MemoryConfig(sel, formats=())).cases()}


@pytest.mark.parametrize("variant,stats", [("rmsnorm", 4), ("layernorm", 8)])
def test_fused_kernels_save_and_hold_the_ideal(fused, variant, stats):
    r = fused[variant]
    assert r.ok, r.note
    x = 2 * ROWS * N
    # Saved: x and fp32 statistics per row, nothing else (docs/numerics.md section 9).
    assert r.value("saved_bytes") == r.ideal("saved_bytes") == x + stats * ROWS
    # A training forward allocates y and the statistics, exactly.
    assert r.value("peak_fwd_bytes") == r.ideal("peak_fwd_bytes") == x + stats * ROWS
    # Forward then backward: the ideal plus at most the fp32 partial sums of dW (and dB).
    programs, _ = bwd_grid(ROWS, N, 2, torch.cuda.get_device_properties(0).multi_processor_count)
    partials = 2 * programs * partial_stride(N) * 4
    assert r.ideal("peak_bytes") <= r.value("peak_bytes") <= r.ideal("peak_bytes") + partials


def test_the_allocators_unused_blocks_count_as_available():
    torch.cuda.synchronize()
    gib = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    before = available_memory("cuda")
    del gib  # freed to the caching allocator, which keeps the block
    free, _ = torch.cuda.mem_get_info()
    assert available_memory("cuda") >= before + (1 << 30) - (64 << 20)
    assert available_memory("cuda") >= free + (1 << 30) - (64 << 20)
    torch.cuda.empty_cache()


def test_the_copy_bandwidth_gives_its_buffers_back():
    torch.cuda.empty_cache()
    reserved = torch.cuda.memory_reserved()
    assert measure_copy_bandwidth("cuda") > 0
    assert torch.cuda.memory_reserved() <= reserved + (64 << 20)
