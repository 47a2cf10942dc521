"""env on CUDA with NVML: the fingerprint names the GPU torch uses (found by UUID), and the
clock event reasons and SM clock are read while timed work runs."""

from __future__ import annotations

import pytest
import torch

from normbench.env import fingerprint
from normbench.machine_cuda import NvmlWatch, nvml_handle
from normbench.timing import TimingConfig, measure

pytestmark = pytest.mark.gpu
pynvml = pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed")


def test_fingerprint_is_the_gpu_torch_uses():
    env = fingerprint("cuda")
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    # A VM may refuse power or temperature ("partial (...)"): the facts below must still be read.
    assert env["nvml"] == "ok" or env["nvml"].startswith("partial ("), env["nvml"]
    assert env["device_name"] == props.name
    assert env["compute_capability"] == f"{props.major}.{props.minor}"
    assert env["sm_count"] == props.multi_processor_count
    assert env["driver"] not in ("", "unknown")
    assert env["gpu_memory_gib"] == pytest.approx(props.total_memory / 2**30, abs=1.0)
    pynvml.nvmlInit()
    try:
        handle, why = nvml_handle("cuda")
        assert handle is not None, why
        uuid = pynvml.nvmlDeviceGetUUID(handle)
        uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
        assert str(props.uuid).lower() in uuid.lower()
    finally:
        pynvml.nvmlShutdown()


def test_clocks_are_read_while_timed_work_runs():
    src = torch.ones(64 << 20, device="cuda")
    dst = torch.empty_like(src)
    with NvmlWatch("cuda", min_interval_s=0.0) as watch:
        measure(lambda: dst.copy_(src), "cuda", TimingConfig(budget_s=0.5))
        seen = watch.result()
    assert watch.reads > 0, watch.note
    # A busy GPU's SM clock: above idle, at most its maximum.
    assert seen["max_clock_mhz"] and 300 < seen["clock_mhz"] <= seen["max_clock_mhz"]
