"""What the selected GPU can do, and the kernels on a GPU box: native bf16 by compute capability,
QuACK by arch, `--device cpu` beside compiled kernels, Triton's interpreter never timed on a GPU,
and the kernels launched on their tensors' device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import pytest
import torch
from typer.testing import CliRunner

from normbench.backends.external import QuackBackend
from normbench.cases import Case
from normbench.cli import app
from normbench.config import check_device_dtypes
from normbench.errors import UsageError
from normbench.kernels import rms_norm
from normbench.variants import Shape

pytestmark = pytest.mark.gpu
TINY = ["--variant", "rmsnorm", "--dim", "256", "--batch", "1", "--seq", "64", "--mode", "fwd",
        "--quick", "--time-budget", "0.05", "--format", "json"]  # fmt: skip


def test_bf16_is_allowed_exactly_on_sm80_and_newer():
    if torch.cuda.get_device_capability() >= (8, 0):
        check_device_dtypes("cuda", ["bf16"])
    else:
        with pytest.raises(UsageError, match="no native bfloat16"):
            check_device_dtypes("cuda", ["bf16"])


def test_quack_needs_sm90(monkeypatch):
    monkeypatch.setitem(sys.modules, "quack", types.ModuleType("quack"))
    reason = QuackBackend().supports(Case("rmsnorm", "quack", "bf16", Shape(1, 4, 64), "fwd",
                                          device="cuda"))  # fmt: skip
    if torch.cuda.get_device_capability() >= (9, 0):
        assert reason is None
    else:
        assert reason.startswith("quack unavailable: needs sm_90 or newer")


def test_device_cpu_on_a_gpu_box(tmp_path):
    # The kernels are compiled in this process: triton is skipped on CPU with the reason, eager
    # runs, and the run ends well.
    r = CliRunner().invoke(app, ["speed", "--device", "cpu", "--backend", "eager,triton",
                                 "--dtype", "fp32", *TINY, "--out", str(tmp_path)])  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = json.loads(next(tmp_path.glob("speed-*.json")).read_text())["rows"]
    status = {(row["backend"], row["status"]) for row in rows if row.get("metric") == "time"}
    assert ("eager", "ok") in status and ("triton", "skipped") in status
    note = next(row["note"] for row in rows if row["backend"] == "triton")
    assert "compiled for CUDA" in note


def test_the_interpreter_is_never_timed_on_a_gpu(tmp_path):
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run(
        [sys.executable, "-m", "normbench", "speed", "--device", "cuda", "--backend", "triton",
         "--dtype", "bf16", *TINY, "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(next(tmp_path.glob("speed-*.json")).read_text())["rows"]
    (row,) = [row for row in rows if row.get("metric") == "time"]
    assert row["status"] == "skipped" and "TRITON_INTERPRET is set" in row["note"]


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_kernels_launch_on_their_tensors_device():
    last = torch.cuda.device_count() - 1
    x = torch.randn(64, 1024, device=f"cuda:{last}", dtype=torch.bfloat16, requires_grad=True)
    w = torch.ones(1024, device=f"cuda:{last}", dtype=torch.bfloat16, requires_grad=True)
    assert torch.cuda.current_device() == 0
    y = rms_norm(x, w)
    y.sum().backward()
    ref = torch.nn.functional.rms_norm(x.float(), (1024,), w.float(), 1e-6)
    assert y.device == x.device and torch.allclose(y.float(), ref, atol=2e-2)
    assert torch.isfinite(x.grad).all() and x.grad.device == x.device


def test_a_cuda_cases_inputs_are_made_on_its_device_seeded():
    """Made by the device's own generator (the CPU's took seconds per case in fp64): on the
    case's GPU, the same on every call, and each distribution's structure intact there."""
    import torch

    from normbench.cases import Case
    from normbench.gate import prepare
    from normbench.variants import Shape, get_variant

    variant = get_variant("rmsnorm")
    for dist in ("normal", "zero", "inf", "massive", "constant"):
        case = Case("rmsnorm", "eager", "bf16", Shape(2, 64, 1024), "fwd+bwd", dist=dist,
                    device="cuda")  # fmt: skip
        a, b = prepare(variant, case, 0), prepare(variant, case, 0)
        x = a.inputs["x"]
        assert x.is_cuda and a.dys[0].is_cuda and x.dtype == torch.bfloat16
        assert torch.equal(x, b.inputs["x"]) and torch.equal(a.dys[0], b.dys[0])
        rows = x.reshape(-1, 1024).float()
        if dist == "zero":
            assert (rows[0::2] == 0).all() and (rows[1::2] != 0).any()
        if dist == "inf":
            assert torch.isinf(rows[0::2]).sum(-1).eq(1).all() and torch.isfinite(rows[1::2]).all()
        if dist == "massive":
            assert (rows == 2600).sum() == rows.shape[0]  # one channel, every row
        if dist == "constant":
            assert (rows == rows[:, :1]).all()


def test_rows_past_2_to_31_elements_are_addressed_in_int64():
    """docs/numerics.md trap 12: M x N > 2^31 elements. An int32 row offset wraps past 2^31, so
    the last rows read and write another place (Liger PR #804); here the last rows of y and dx
    must equal their own reference, computed apart."""
    n = 4096
    m = 2**31 // n + 8  # 8 rows past 2^31 elements
    need = 5 * m * n * 2  # x, y, dy, dx in bf16, and a margin
    free, _ = torch.cuda.mem_get_info()
    if free < need:
        pytest.skip(f"needs about {need / 2**30:.0f} GiB free, {free / 2**30:.0f} GiB here")
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(m, n, device="cuda", dtype=torch.bfloat16, generator=g).requires_grad_(True)
    w = torch.ones(n, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    y = rms_norm(x, w)
    dy = torch.randn(m, n, device="cuda", dtype=torch.bfloat16, generator=g)
    y.backward(dy)
    for rows in (slice(0, 8), slice(m - 8, m)):
        xs = x.detach()[rows].double()
        rstd = torch.rsqrt(xs.pow(2).mean(-1, keepdim=True) + 1e-6)
        ref_y = xs * rstd
        g_ = dy[rows].double()
        ref_dx = rstd * (g_ - ref_y * (g_ * ref_y).mean(-1, keepdim=True))
        assert torch.allclose(y.detach()[rows].double(), ref_y, rtol=2**-7, atol=2**-7), rows
        assert torch.allclose(x.grad[rows].double(), ref_dx, rtol=2**-6, atol=2**-6), rows
