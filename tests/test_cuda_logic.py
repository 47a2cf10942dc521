"""The CUDA-side findings of issue 21, on CPU: each fix checked with the device queries patched
(compute capability, allocator statistics, free memory, the current device) or with the
environment variable Triton reads. Their twins on a real GPU are in tests/gpu/."""

from __future__ import annotations

import contextlib
import sys
import types

import pytest
import torch

from normbench import env
from normbench.backends.base import backend_from_functions
from normbench.backends.composite import FUNCTIONS
from normbench.backends.external import FlashInferBackend, QuackBackend
from normbench.backends.torchscript import TorchScriptBackend
from normbench.backends.triton import TritonBackend
from normbench.cases import Case
from normbench.config import check_device_dtypes
from normbench.errors import UsageError
from normbench.memprobe import PeakMemory, cuda_requested
from normbench.registry import register_backend, unregister_backend
from normbench.results import GenericCase, Measurement
from normbench.suites import common
from normbench.variants import Shape, get_variant
from tests.ab_spy import graphs_in_first_block

CPU_CASE = Case("rmsnorm", "triton", "bf16", Shape(1, 4, 64), "fwd")
CUDA_CASE = Case("rmsnorm", "quack", "bf16", Shape(1, 4, 64), "fwd", device="cuda:1")


# --- the interpreter or the compiler, one per process ----------------------------------------


def test_compiled_kernels_refuse_cpu_cases(monkeypatch):
    # With a GPU present normbench.kernels leaves TRITON_INTERPRET unset: compiled kernels,
    # which take CUDA tensors only. `--device cpu` there gave error rows.
    from normbench import kernels

    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setattr(kernels, "available", lambda: (True, "compiled on NVIDIA H100"))
    reason = TritonBackend().supports(CPU_CASE)
    assert reason and "compiled for CUDA" in reason and "TRITON_INTERPRET=1" in reason
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert TritonBackend().supports(CPU_CASE) is None


def test_the_interpreter_is_never_timed_on_a_gpu(monkeypatch):
    from normbench.suites.memory import interpreted

    monkeypatch.setenv("TRITON_INTERPRET", "1")  # set by the user on a GPU box
    blocker = TritonBackend().timing_blocker("cuda:0")
    assert blocker and "TRITON_INTERPRET is set" in blocker and "never timed" in blocker
    big = Case("rmsnorm", "triton", "bf16", Shape(8, 2048, 4096), "fwd+bwd", device="cuda:0")
    assert interpreted(TritonBackend(), big)  # memory: no peaks, small-row saved bytes
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert TritonBackend().timing_blocker("cuda:0") is None
    assert "interpreter on CPU" in TritonBackend().timing_blocker("cpu")


def test_the_interpreter_on_a_gpu_is_named_first_whatever_else_blocks_it(monkeypatch):
    # On the lent H200 (Triton 3.6, numpy 2.5) the interpreter cannot run at all: the reason
    # said so and never named TRITON_INTERPRET, which the user set and should unset.
    from normbench import kernels

    numpy_problem = "Triton 3.6.0's interpreter cannot run beside numpy 2.5.2"
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(kernels, "available", lambda: (False, numpy_problem))
    on_gpu = Case("rmsnorm", "triton", "bf16", Shape(1, 4, 64), "fwd", device="cuda:0")
    reason = TritonBackend().supports(on_gpu)
    assert reason.startswith("TRITON_INTERPRET is set") and numpy_problem in reason
    assert TritonBackend().supports(CPU_CASE) == numpy_problem  # on CPU it is the only way


def test_a_cases_inputs_come_from_its_devices_generator(monkeypatch):
    """A CUDA case's inputs are made by cuda:N's own generator (fp64 on the CPU took seconds per
    GPU case); a CPU case's are the CPU generator's values, as before."""
    from normbench import inputs
    from normbench.gate import prepare

    asked = []

    real = torch.Generator

    def recorder(device="cpu"):
        asked.append(str(device))
        return real()  # made on the CPU here: no GPU to make it on

    monkeypatch.setattr(torch, "Generator", recorder)
    assert inputs.generator("cuda:1", 3).initial_seed() == 3 and asked == ["cuda:1"]
    assert inputs.generator("cpu", 3) is not None and asked[-1] == "cpu"
    monkeypatch.undo()
    cpu = Case("rmsnorm", "eager", "fp32", Shape(1, 4, 64), "fwd+bwd")
    p = prepare(get_variant("rmsnorm"), cpu, seed=5)
    want = torch.randn((1, 4, 64), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert torch.equal(p.inputs["x"], want.float())


# --- the selected device made current -----------------------------------------------------------


class FakeDeviceContext:
    """torch.cuda.device's stand-in: records the index made current while inside."""

    current: list[int] = []

    def __init__(self, device) -> None:
        self.index = torch.device(device).index if not isinstance(device, int) else device

    def __enter__(self):
        self.current.append(self.index)

    def __exit__(self, *exc):
        self.current.pop()


def test_kernel_launches_follow_the_tensors_device():
    from normbench.kernels import _common as C

    guard = C.on_device(torch.device("cuda", 1))
    assert isinstance(guard, torch.cuda.device) and guard.idx == 1
    assert isinstance(C.on_device(torch.device("cpu")), contextlib.nullcontext)


def test_each_case_runs_with_its_device_current(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device", FakeDeviceContext)
    monkeypatch.setattr(common, "too_big", lambda case: None)
    seen = []

    def work(case):
        seen.append((case.device, list(FakeDeviceContext.current)))
        return GenericCase.of_case(case, [Measurement("time", 1.0, "ms")])

    cases = [CUDA_CASE, Case("rmsnorm", "eager", "fp32", Shape(1, 4, 64), "fwd")]
    common.CaseLoop("speed").run(cases, work)
    assert seen == [("cuda:1", [1]), ("cpu", [])]
    assert FakeDeviceContext.current == []


# --- memory: requested bytes, and what the allocator holds counts as free ------------------------


class FakeAllocator:
    """The caching allocator's statistics: each block rounded up to 512 bytes, as CUDA's."""

    def __init__(self) -> None:
        self.requested = self.allocated = 0
        self.peak_requested = self.peak_allocated = 0

    def alloc(self, n: int) -> None:
        self.requested += n
        self.allocated += -(-n // 512) * 512
        self.peak_requested = max(self.peak_requested, self.requested)
        self.peak_allocated = max(self.peak_allocated, self.allocated)

    def free(self, n: int) -> None:
        self.requested -= n
        self.allocated -= -(-n // 512) * 512

    def reset(self, *_: object) -> None:
        self.peak_requested, self.peak_allocated = self.requested, self.allocated

    def stats(self, *_: object) -> dict:
        return {"requested_bytes.all.current": self.requested,
                "requested_bytes.all.peak": self.peak_requested,
                "allocated_bytes.all.current": self.allocated,
                "allocated_bytes.all.peak": self.peak_allocated}  # fmt: skip


@pytest.fixture
def allocator(monkeypatch):
    a = FakeAllocator()
    monkeypatch.setattr(torch.cuda, "memory_stats", a.stats)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", a.reset)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *_: None)
    return a


def allocation_sequence(a: FakeAllocator) -> PeakMemory:
    # The CPU test's sequence (test_memory.py), on the caching allocator's statistics.
    a.alloc(100)  # allocated before the block: not counted
    with PeakMemory("cuda", "first") as mem:
        a.alloc(4000)
        a.alloc(8000)
        a.free(4000)
        mem.mark("second")
        a.alloc(12000)
        a.free(8000)
        a.free(12000)
        a.alloc(1000)
    return mem


def test_cuda_peaks_are_the_requested_bytes_not_the_blocks(allocator, monkeypatch):
    mem = allocation_sequence(allocator)  # the ideal is in bytes, and so are these peaks
    assert (mem.phases["first"].peak, mem.phases["first"].net) == (4000 + 8000, 8000)
    assert (mem.total.peak, mem.total.net) == (8000 + 12000, 1000)
    # What the blocks say (the statistics of a torch without requested bytes): rounded up.
    blocks = FakeAllocator()
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", blocks.reset)
    monkeypatch.setattr(torch.cuda, "memory_stats", lambda *_: {
        k: v for k, v in blocks.stats().items() if k.startswith("allocated")})  # fmt: skip
    mem = allocation_sequence(blocks)
    assert (mem.total.peak, mem.total.net) == (8192 + 12288, 1024)


def test_requested_bytes_fall_back_to_allocated_on_an_older_torch(monkeypatch):
    old = {"allocated_bytes.all.current": 1024, "allocated_bytes.all.peak": 4096}
    monkeypatch.setattr(torch.cuda, "memory_stats", lambda *_: old)
    assert cuda_requested("cuda:0") == (1024, 4096)


def test_memory_the_allocator_holds_unused_counts_as_available(monkeypatch):
    gib = 1 << 30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda dev: (1 * gib, 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda dev: 3 * gib)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda dev: 1 * gib)
    assert env.available_memory("cuda:0") == 3 * gib  # 1 free + 2 cached, unused


def test_the_copy_bandwidth_buffers_are_released(monkeypatch):
    from normbench import timing

    released = []
    monkeypatch.setattr(env, "release_cached", released.append)
    one_ms = types.SimpleNamespace(summary=types.SimpleNamespace(median=1e-3))
    monkeypatch.setattr(timing, "measure", lambda *a, **k: one_ms)
    assert env.measure_copy_bandwidth("cpu", nbytes=1 << 20) > 0
    assert released == ["cpu"]  # after its buffers are dropped


def test_release_gives_the_allocators_cache_back_on_cuda_only(monkeypatch):
    emptied = []
    monkeypatch.setattr(torch.cuda, "device", FakeDeviceContext)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    env.release_cached("cuda:1")
    env.release_cached("cpu")
    assert emptied == [1]


# --- TorchScript: one graph executor per case --------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_scripts_each_case_anew():
    backend, variant = TorchScriptBackend(), get_variant("rmsnorm")
    first, second = backend.build(variant, None), backend.build(variant, None)
    # One executor per scripted function: a shared one would carry the earlier cases' shapes.
    assert first.qualified_name != second.qualified_name
    x, w = torch.randn(4, 64), torch.randn(64)
    assert torch.equal(first(x, w, 1e-6), FUNCTIONS["rmsnorm"](x, w, 1e-6))
    assert torch.equal(second(x, w, 1e-6), first(x, w, 1e-6))


# --- what the selected GPU can do ---------------------------------------------------------------


@pytest.fixture
def two_archs(monkeypatch):
    """cuda:0 an H100 (sm_90), cuda:1 a T4 (sm_75), cuda:2 an A100 (sm_80); 0 is current."""
    gpus = {0: ("NVIDIA H100", (9, 0)), 1: ("Tesla T4", (7, 5)), 2: ("NVIDIA A100", (8, 0))}
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=None: gpus[i][1])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: gpus[i][0])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    # What misled the old check: counting emulation, about the current device, it says yes.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.version, "hip", None)
    return gpus


def test_bf16_is_refused_on_a_device_without_native_bf16(two_archs):
    with pytest.raises(UsageError, match=r"Tesla T4 \(cuda:1, sm_75\) has no native bfloat16"):
        check_device_dtypes("cuda:1", ["bf16"])
    check_device_dtypes("cuda:0", ["bf16"])
    check_device_dtypes("cuda:2", ["bf16", "fp16"])
    check_device_dtypes("cuda:1", ["fp16", "fp32"])


def test_quack_on_an_sm80_is_unavailable_not_an_error(two_archs, monkeypatch):
    monkeypatch.setitem(sys.modules, "quack", types.ModuleType("quack"))
    quack = QuackBackend()
    on = lambda dev: Case("rmsnorm", "quack", "bf16", Shape(1, 4, 64), "fwd", device=dev)  # noqa: E731
    assert quack.supports(on("cuda:2")) == (
        "quack unavailable: needs sm_90 or newer (NVIDIA A100 is sm_80)"
    )
    assert quack.supports(on("cuda:0")) is None
    assert quack.supports(on("cuda")) is None  # the current device, cuda:0


def test_flashinfer_is_a_forward_only_peer(monkeypatch):
    monkeypatch.setitem(sys.modules, "flashinfer", None)  # not installed
    fi = FlashInferBackend()
    assert fi.available().startswith("flashinfer is not importable")
    monkeypatch.setitem(sys.modules, "flashinfer", types.ModuleType("flashinfer"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    case = Case("rmsnorm", "flashinfer", "bf16", Shape(1, 4, 64), "bwd", device="cuda:0")
    assert fi.supports(case) == "flashinfer has no bwd (it implements fwd)"


# --- ab: a compiling side's reset never lands in the other side's timed block ------------------


def test_ab_recompiles_happen_in_warm_up_not_in_a_timed_block(monkeypatch, tmp_path):
    from pathlib import Path

    import normbench.suites.ab as ab
    from normbench.config_args import SelectionArgs, TimingArgs
    from normbench.suites.ab_sides import build_ab_config

    # Side A: a plugin's own torch.compile'd function; side B: `compile`, whose build calls
    # torch._dynamo.reset() and so drops A's compiled code after A was warmed up.
    compiled = torch.compile(lambda x, weight, eps: FUNCTIONS["rmsnorm"](x, weight, eps),
                             dynamic=False)  # fmt: skip
    register_backend(backend_from_functions("t_compiled", {"rmsnorm": compiled}), origin="test")
    graphs = graphs_in_first_block(monkeypatch)
    args = SelectionArgs(variant=["rmsnorm"], dim=["64"], batch=["1"], seq=["8"], mode=["fwd"],
                         dtype=["fp32"], device="cpu")  # fmt: skip
    timing = TimingArgs(quick=True, time_budget=0.02)
    try:
        config = build_ab_config("t_compiled", "compile", args, timing, Path(tmp_path), ())
        result = ab.run_ab(config)
    finally:
        unregister_backend("t_compiled")
    assert [r.status.value for r in result.a.results + result.b.results] == ["ok", "ok"]
    assert graphs == [0, 0]  # nothing compiled inside a timed block
