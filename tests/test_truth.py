"""The audit's truth check on CPU (its GPU half: tests/gpu/test_audit_truth_gpu.py): the key
that names a compilation, built from the launch table as the audit builds it, equals the key
read back from a compiled kernel, and the launch recorder leaves the kernels as they were."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from normbench.kernels import aot, rms_norm
from normbench.kernels.truth import LAUNCHED, audit_key, make_key, record_launches
from tests.kernel_reference import needs_compiler, needs_interpreter


def test_key_drops_empty_attributes_and_reads_flags_alike():
    a = make_key(
        "k", {"X": "*bf16", "N": "i32"}, {(2,): True}, {(0,): [["tt.divisibility", 16]]}, 4
    )
    # The JIT lists an attribute entry for every argument, empty where nothing is specialized.
    b = make_key("k", {"X": "*bf16", "N": "i32"}, {(2,): 1},
                 {(0,): [["tt.divisibility", 16]], (1,): []}, 4)  # fmt: skip
    assert a == b
    assert a != make_key("k", {"X": "*bf16", "N": "i32"}, {(2,): 1}, {}, 4)


def test_audit_keys_follow_the_launch_table():
    key = lambda n: audit_key("rmsnorm_fwd", "bf16", n, "sm_90")  # noqa: E731
    # One compilation for 5120 and 8192 (BLOCK 8192, N a multiple of 16), as the audit dedups.
    assert key(5120) == key(8192)
    assert key(1024) != key(2048) != key(8192)
    # The backward grid follows the SM count: 132 (H100 SXM) and 114 (H100 PCIe) differ in the
    # rows per program and the partial rows, which the kernels do not specialize: one key.
    sxm = audit_key("rmsnorm_bwd", "bf16", 4096, "sm_90")
    assert sxm == audit_key("rmsnorm_bwd", "bf16", 4096, "sm_90", aot.SM_COUNT["sm_90"])
    for kernel in ("rmsnorm_bwd", "rmsnorm_bwd_reduce", "layernorm_bwd"):
        keys = {audit_key(kernel, "bf16", 4096, "sm_90", sms) for sms in (1, 16, 114, 120, 132)}
        assert len(keys) == 1, kernel


@needs_compiler
def test_a_compiled_kernel_reads_back_the_audits_key():
    # Compiled ahead of time for sm_90 (the audit's own compile, in a process with the real
    # compiler): the kernel's source, constants and warps give back the key audit_key built.
    code = (
        "import triton, triton.language as tl\n"
        "from triton.backends.compiler import GPUTarget\n"
        "from triton.compiler import ASTSource\n"
        "from normbench.kernels import aot, rmsnorm\n"
        "from normbench.kernels.truth import audit_key, jit_key\n"
        "spec = aot.KERNELS_BY_NAME['rmsnorm_fwd']\n"
        "values, const, warps = aot.launch_for(spec, 'bf16', 4096, 'sm_90')\n"
        "const = {k: (tl.float32 if k == 'ACC' else v) for k, v in const.items()}\n"
        "fn = rmsnorm.rms_fwd_kernel\n"
        "sig, cx, at = aot.specialize(list(fn.arg_names), values, const,\n"
        "                             aot.ptr_dtypes(spec, 'bf16'), aot.GRID_SIZED['fwd'])\n"
        "k = triton.compile(ASTSource(fn, sig, cx, at), target=GPUTarget('cuda', 90, 32),\n"
        "                   options={'num_warps': warps, 'enable_fp_fusion': True})\n"
        "assert jit_key(k) == audit_key('rmsnorm_fwd', 'bf16', 4096, 'sm_90'), jit_key(k)\n"
        "assert jit_key(k) != audit_key('rmsnorm_fwd', 'bf16', 2048, 'sm_90')\n"
        "import importlib\n"
        "for s in aot.KERNELS:\n"  # compiled, each kernel declares what the audit assumes
        "    f = getattr(importlib.import_module('normbench.kernels.' + s.module), s.fn)\n"
        "    assert tuple(f.do_not_specialize) == aot.GRID_SIZED[s.stage], s.name\n"
    )
    env = dict(os.environ, TRITON_INTERPRET="0")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]


@needs_interpreter
def test_recording_leaves_the_kernels_as_they_were():
    import importlib

    x, w = torch.randn(4, 64), torch.ones(64)
    with record_launches():
        inside = rms_norm(x, w)
    fns = [getattr(importlib.import_module(f"normbench.kernels.{m}"), n)
           for m, names in LAUNCHED.items() for n in names]  # fmt: skip
    assert all("run" not in vars(fn) for fn in fns)
    assert torch.equal(rms_norm(x, w), inside)
