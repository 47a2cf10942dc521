"""The ahead-of-time audit: compiled for sm_90 without a GPU, numbers read from cubin and PTX."""

from __future__ import annotations

import pytest

triton = pytest.importorskip("triton", reason="triton is not installed: nothing to compile")

from normbench.kernels import aot  # noqa: E402
from normbench.suites.audit import AuditRow, occupancy, run_audit  # noqa: E402

_MISSING = aot.tools_missing()
needs_tools = pytest.mark.skipif(
    _MISSING is not None, reason=f"cannot compile for a GPU here: {_MISSING}"
)


@needs_tools
def test_small_audit_reads_real_numbers():
    rows = run_audit(archs=["sm_90"], dtypes=["fp16"], dims=[1001, 4096])
    assert len(rows) == 2 * len(aot.KERNELS)
    for r in rows:
        assert isinstance(r, AuditRow)
        assert r.status == "ok", r.note
        assert r.registers > 0 and r.spill_bytes >= 0 and r.shared_bytes >= 0
        assert r.load_width_bytes in {2, 4, 8, 16} and r.store_width_bytes in {2, 4, 8, 16}
        assert 0 < r.occupancy_warps <= 64 and 0 < r.occupancy_pct <= 100
        assert set(r.to_dict()) >= {"kernel", "registers", "spill_bytes", "vector16", "note"}
    by = {(r.kernel, r.n): r for r in rows}
    for name in ("rmsnorm_fwd", "add_layernorm_fwd", "layernorm_bwd", "add_rmsnorm_bwd"):
        # Aligned N: the JIT's divisibility-16 specialization gives 16-byte vector accesses.
        aligned = by[(name, 4096)]
        assert aligned.vector16 and aligned.load_width_bytes == 16, aligned
        assert aligned.spill_bytes == 0, aligned
        # Odd N: rows start at odd element offsets, so only 2-byte fp16 accesses are legal.
        assert by[(name, 1001)].load_width_bytes == 2
        assert not by[(name, 1001)].vector16


def test_specialization_mirrors_the_jit():
    # The audit must compile what the runtime JIT would: same signature types, same
    # tt.divisibility attributes, same constants, derived here by Triton's own binder.
    torch = pytest.importorskip("torch")
    from triton.backends.compiler import GPUTarget
    from triton.compiler.compiler import make_backend
    from triton.runtime.jit import JITFunction, create_function_from_signature

    spec = aot.KERNELS_BY_NAME["add_layernorm_bwd"]
    kernel = __import__(f"normbench.kernels.{spec.module}", fromlist=[spec.fn])
    fn = getattr(kernel, spec.fn)
    jit = fn if isinstance(fn, JITFunction) else JITFunction(fn.fn)
    values, const, _ = aot.launch_for(spec, "bf16", 1000, "sm_90")
    const = {k: (triton.language.float32 if k == "ACC" else v) for k, v in const.items()}
    args = []
    for name in jit.arg_names:
        if name in const:
            args.append(const[name])
        elif name in aot.FP32_PTRS:
            args.append(torch.empty(64, dtype=torch.float32))
        elif name in aot.ACTIVATION_PTRS or name in aot.PARAM_PTRS:
            args.append(torch.empty(64, dtype=torch.bfloat16))
        else:
            args.append(values[name])
    backend = make_backend(GPUTarget("cuda", 90, 32))
    binder = create_function_from_signature(jit.signature, jit.params, backend)
    bound, specialization, options = binder(*args)
    try:
        _, sig, consts, attrs = jit._pack_args(
            backend, {"enable_fp_fusion": True}, bound, specialization, options
        )
    except AttributeError:
        pytest.skip("this triton has no JITFunction._pack_args to compare with")
    ours_sig, ours_consts, ours_attrs = aot.specialize(jit.arg_names, values, const, "bf16")
    assert ours_sig == sig
    assert ours_consts == consts
    assert {k: v for k, v in attrs.items() if v} == ours_attrs


def test_ptx_access_tracing():
    ptx = """
    ld.param.b64 %rd1, [k_param_0];
    ld.param.b64 %rd2, [k_param_1];
    ld.param.b32 %r9, [k_param_2];
    mul.wide.u32 %rd3, %r9, 2;
    add.s64 %rd4, %rd1, %rd3;
    @%p1 ld.global.v4.b32 { %r1, %r2, %r3, %r4 }, [ %rd4 + 0 ];
    add.s64 %rd5, %rd2, %rd3;
    @%p1 st.global.b16 [ %rd5 + 0 ], { %rs1 };
    """
    acc = aot.pointer_accesses(ptx, ["X", "Y", None])
    assert acc == {"X": {"ld": {16}, "st": set()}, "Y": {"ld": set(), "st": {2}}}


def test_occupancy_limits():
    assert occupancy("sm_90", 32, 0, 4) == 64  # warp slots bind
    assert occupancy("sm_90", 128, 0, 16) == 16  # registers: 128 x 512 threads = all 64K
    assert occupancy("sm_80", 255, 0, 8) == 8


def test_bad_arguments_and_missing_tools(monkeypatch):
    with pytest.raises(ValueError, match="sm_70"):
        run_audit(archs=["sm_70"])
    with pytest.raises(ValueError, match="N=262145"):
        run_audit(dims=[262145])
    monkeypatch.setattr(aot, "tools_missing", lambda: "ptxas is missing from the triton wheel")
    rows = run_audit(archs=["sm_80"], dtypes=["bf16"], dims=[1024])
    assert rows and all(r.status == "error" and "ptxas" in r.note for r in rows)
