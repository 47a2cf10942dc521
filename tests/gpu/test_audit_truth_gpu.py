"""The audit tells the truth: every kernel configuration the JIT compiles on this device, as the
wrappers launch it, is one `normbench audit` compiles for the device's arch, with the registers
and spills the audit predicted (docs/numerics.md section 5)."""

from __future__ import annotations

import pytest
import torch

from normbench.kernels import aot, layer_norm, rms_norm
from normbench.kernels.truth import audit_key, jit_key, record_launches
from normbench.results import Status
from normbench.suites.audit import ARCHS, DTYPES, run_audit

pytestmark = pytest.mark.gpu
# The gpu-check's sizes and the looped kernels, at the audit's rows (its backward grids are
# sized for AUDIT_ROWS); the layer options at one size.
DIMS = (1024, 2048, 4096, 8192, 16384)
OPTION_DIM = 4096


def launch_all(dtype: torch.dtype) -> None:
    """Forward and backward of every variant at DIMS, and of the layer options at OPTION_DIM."""
    dev = "cuda"
    f32 = torch.float32

    def t(n, dt=dtype, rows=aot.AUDIT_ROWS, heads=None, grad=True):
        shape = (rows // heads, heads, n) if heads else (rows, n)
        return torch.randn(shape, device=dev, dtype=dt).requires_grad_(grad)

    def p(n, dt=dtype, heads=None):
        shape = (heads, n) if heads else (n,)
        return (1 + 0.1 * torch.randn(shape, device=dev, dtype=dt)).requires_grad_(True)

    def step(out):
        outs = out if isinstance(out, tuple) else (out,)
        torch.autograd.backward(outs, [torch.randn_like(o) for o in outs])

    for n in DIMS:
        step(rms_norm(t(n), p(n)))
        step(layer_norm(t(n), p(n), p(n)))
        step(rms_norm(t(n), p(n), residual=t(n)))
        step(layer_norm(t(n), p(n), p(n), residual=t(n)))
    n = OPTION_DIM
    # Batches the audit's rows are not (one row, M not a multiple of 16): the kernels do not
    # specialize M, the rows per program or the partial rows, so these compile the same code.
    step(rms_norm(t(n, rows=1), p(n)))
    step(layer_norm(t(n, rows=1000), p(n), p(n)))
    step(rms_norm(t(n), p(n, f32)))  # fp32 weight
    step(rms_norm(t(n), None))  # no weight
    step(rms_norm(t(n), p(n, f32), bias=p(n, f32)))  # RMSNorm bias
    step(rms_norm(t(n), p(n), cast="llama"))
    step(rms_norm(t(n, heads=aot.AUDIT_HEADS), p(n, f32, heads=aot.AUDIT_HEADS)))  # QK-norm
    step(rms_norm(t(n), p(n), residual=t(n, f32)))  # an fp32 residual stream
    step(layer_norm(t(n), p(n, f32), p(n, f32)))
    step(layer_norm(t(n), None, None))
    step(layer_norm(t(n), p(n), None))
    step(layer_norm(t(n), p(n), p(n), residual=t(n, f32)))
    torch.cuda.synchronize()


def test_every_compiled_configuration_is_the_audits(arch):
    if arch not in ARCHS:
        pytest.skip(f"normbench audit predicts {', '.join(ARCHS)}, not {arch}")
    if aot.tools_missing():
        pytest.skip(aot.tools_missing())
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    with record_launches() as launched:
        launch_all(torch.bfloat16)
    assert launched, "no kernel was launched"
    # The audit's configurations for this arch, sized for this device's SMs, by key.
    known = {audit_key(k.name, d, n, arch, sms): (k.name, d, n)
             for k in aot.KERNELS for d in DTYPES for n in DIMS}  # fmt: skip
    compiled = {jit_key(k): k for k in launched}
    missing = [key[:1] + key[-1:] for key in compiled if key not in known]
    assert not missing, f"launched configurations the audit never compiles: {missing}"
    wanted = {known[key] for key in compiled}
    rows = run_audit([arch], sorted({d for _, d, _ in wanted}), sorted({n for _, _, n in wanted}),
                     sm_count=sms)  # fmt: skip
    predicted = {(r.kernel, r.dtype, r.dim): r for r in rows}
    wrong = []
    for key, kernel in compiled.items():
        row = predicted[known[key]]
        assert row.status is Status.OK, (known[key], row.note)
        regs, spills = kernel.n_regs, kernel.n_spills  # the driver's, as it loaded the cubin
        if regs != row.registers or (spills > 0) != (row.spill_bytes > 0):
            wrong.append((known[key], (regs, spills), (row.registers, row.spill_bytes)))
    assert not wrong, f"(config, JIT registers/spills, audit registers/spill bytes): {wrong}"
