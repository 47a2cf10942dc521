"""The ahead-of-time audit: compiled for sm_90 without a GPU, numbers read from cubin and PTX;
its results saved and read back (schema version 2, and version 1)."""

from __future__ import annotations

import json

import pytest

from normbench.kernels.launch import GRID_SIZED
from normbench.report.audit_view import view
from normbench.results import Finding, Run, Status, dumps, load_run
from normbench.results.audit import AuditRow, kernel_parts, spilled, summary
from normbench.suites.audit import occupancy, run_audit
from tests.kernel_reference import needs_compiler

try:
    import triton

    from normbench.kernels import aot, triton_problem_here
except ImportError:  # the results' tests below need no compiler
    triton = aot = None

needs_triton = pytest.mark.skipif(
    aot is None or triton_problem_here() is not None,
    reason=(aot and triton_problem_here()) or "triton is not installed: nothing to compile",
)
needs_tools = needs_compiler


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
        assert set(r.to_rows()[0]) >= {"kernel", "registers", "spill_bytes", "vector16", "note"}
    by = {(r.kernel, r.dim): r for r in rows}
    for name in ("rmsnorm_fwd", "add_layernorm_fwd", "layernorm_bwd", "add_rmsnorm_bwd"):
        # Aligned N: the JIT's divisibility-16 specialization gives 16-byte vector accesses.
        aligned = by[(name, 4096)]
        assert aligned.vector16 and aligned.load_width_bytes == 16, aligned
        assert aligned.spill_bytes == 0, aligned
        # Odd N: rows start at odd element offsets, so only 2-byte fp16 accesses are legal.
        assert by[(name, 1001)].load_width_bytes == 2
        assert not by[(name, 1001)].vector16


@needs_triton
@pytest.mark.parametrize("kernel", ["add_layernorm_bwd", "rmsnorm_fwd", "rmsnorm_bwd_reduce"])
@pytest.mark.parametrize("rows", [1, 1000, 32768])
def test_specialization_mirrors_the_jit(kernel, rows):
    # The audit must compile what the runtime JIT would: same signature types, same
    # tt.divisibility attributes, same constants, derived here by Triton's own binder. The
    # grid-sized integers (M, rows per program, P) take the batch's values here: the JIT does not
    # specialize them, so one audit configuration is what runs at every M.
    torch = pytest.importorskip("torch")
    from triton.backends.compiler import GPUTarget
    from triton.compiler.compiler import make_backend
    from triton.runtime.jit import JITFunction, create_function_from_signature

    spec = aot.KERNELS_BY_NAME[kernel]
    module = __import__(f"normbench.kernels.{spec.module}", fromlist=[spec.fn])
    fn = getattr(module, spec.fn)
    fixed = GRID_SIZED[spec.stage]
    jit = fn if isinstance(fn, JITFunction) else JITFunction(fn.fn, do_not_specialize=fixed)
    values, const, _ = aot.launch_for(spec, "bf16", 1000, "sm_90")
    grid_sized = {"M": rows, "rows_per_program": rows, "P": rows}
    runtime = {k: grid_sized.get(k, v) for k, v in values.items()}
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
            args.append(runtime[name])
    backend = make_backend(GPUTarget("cuda", 90, 32))
    binder = create_function_from_signature(jit.signature, jit.params, backend)
    bound, specialization, options = binder(*args)
    try:
        _, sig, consts, attrs = jit._pack_args(
            backend, {"enable_fp_fusion": True}, bound, specialization, options
        )
    except AttributeError:
        pytest.skip("this triton has no JITFunction._pack_args to compare with")
    ours_sig, ours_consts, ours_attrs = aot.specialize(jit.arg_names, values, const, "bf16", fixed)
    assert ours_sig == sig
    assert ours_consts == consts
    assert {k: v for k, v in attrs.items() if v} == ours_attrs


@needs_triton
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
    from normbench.kernels.compiled import pointer_accesses

    acc = pointer_accesses(ptx, ["X", "Y", None])
    assert acc == {"X": {"ld": {16}, "st": set()}, "Y": {"ld": set(), "st": {2}}}


def test_occupancy_limits():
    assert occupancy("sm_90", 32, 0, 4) == 64  # warp slots bind
    assert occupancy("sm_90", 128, 0, 16) == 16  # registers: 128 x 512 threads = all 64K
    assert occupancy("sm_80", 255, 0, 8) == 8


@needs_triton
def test_bad_arguments_and_missing_tools(monkeypatch):
    with pytest.raises(ValueError, match="sm_70"):
        run_audit(archs=["sm_70"])
    with pytest.raises(ValueError, match="N=262145"):
        run_audit(dims=[262145])
    monkeypatch.setattr(aot, "tools_missing", lambda: "ptxas is missing from the triton wheel")
    rows = run_audit(archs=["sm_80"], dtypes=["bf16"], dims=[1024])
    assert rows and all(r.status is Status.ERROR and "ptxas" in r.note for r in rows)


# ---- results: the view, the summary, the file -------------------------------------------

OK = AuditRow.of(
    "rmsnorm_fwd", "sm_90", "bf16", 4096, block=4096, num_warps=8, registers=40, spill_bytes=0,
    shared_bytes=64, load_width_bytes=16, store_width_bytes=16, vector16=True,
    occupancy_warps=64, occupancy_pct=100.0, note="widths 16-16B",
)  # fmt: skip
SPILLS = AuditRow.of(
    "layernorm_bwd", "sm_80", "fp32", 1001, block=1024, num_warps=4, registers=255,
    spill_bytes=24, shared_bytes=0, load_width_bytes=4, store_width_bytes=4, vector16=False,
    occupancy_warps=8, occupancy_pct=12.5, note="widths 4-4B; SPILLS 24 B/thread",
)  # fmt: skip
FAILED = AuditRow.of("rmsnorm_bwd", "sm_90", "fp16", 128, status="error", note="ptxas died")


def test_case_id_view_and_summary():
    assert OK.case_id == "rmsnorm_fwd/sm_90/bf16/N=4096" and OK.status is Status.OK
    results = [OK, SPILLS, FAILED]
    assert spilled(results) == [SPILLS]
    assert summary(results) == Finding(
        "3 configurations: 1 spill, 1 not 16-byte wide, 1 failed to compile."
    )
    ((_, cols, lines),) = view(Run("audit", {}, {}, results))
    assert lines[0][cols.index("16-byte")] == "yes" and lines[0][cols.index("occupancy")] == "100%"
    assert lines[1][cols.index("spill B")] == "24" and lines[1][cols.index("N")] == "1001"
    # A failed compile shows its reason and no numbers.
    assert lines[2][cols.index("regs")] == "-" and lines[2][-2:] == ["error", "ptxas died"]


def test_audit_results_round_trip(tmp_path):
    run = Run("audit", {"device_name": "cpu"}, {"archs": ["sm_90"]}, [OK, SPILLS, FAILED],
              [summary([OK, SPILLS, FAILED])])  # fmt: skip
    path = tmp_path / "audit.json"
    path.write_text(dumps(run))
    back = load_run(path)
    assert back.results == run.results and back.findings == run.findings
    rows = json.loads(path.read_text())["rows"]
    assert json.loads(path.read_text())["schema_version"] == 2
    # One tidy row per configuration and metric, the configuration as the case.
    assert len(rows) == 3 * 6 and rows[0]["dim"] == 4096 and rows[0]["kind"] == "audit"
    assert (rows[0]["metric"], rows[0]["unit"], rows[0]["shape"]) == ("registers", "regs/thread",
                                                                      "N=4096")  # fmt: skip
    assert [r["value"] for r in rows[12:]] == [None] * 6  # a failed compile has no numbers


def _v1_rows(a: AuditRow) -> list[dict]:
    """What normbench wrote for one configuration in schema version 1: a row per metric, the
    record (with N as `n`) in the `registers` row's extra."""
    family, _, mode = a.kernel.partition("_")
    names = ("kernel", "arch", "dtype", "block", "num_warps", "registers", "spill_bytes",
             "shared_bytes", "load_width_bytes", "store_width_bytes", "vector16",
             "occupancy_warps", "occupancy_pct", "note")  # fmt: skip
    record = {f: getattr(a, f) for f in names} | {"n": a.dim, "status": a.status.value}
    units = {"registers": "regs/thread", "spill_bytes": "B/thread", "shared_bytes": "B/block",
             "load_width_bytes": "B", "store_width_bytes": "B", "occupancy_pct": "%"}  # fmt: skip
    return [
        {"case_id": a.case_id, "suite": "audit", "variant": family, "backend": "triton",
         "dtype": a.dtype, "shape": f"N={a.dim}", "mode": mode, "metric": metric,
         "value": float(getattr(a, metric)) if a.ok else None, "unit": unit,
         "status": a.status.value, "note": a.note, "p20": None, "p80": None, "ci_low": None,
         "ci_high": None, "n": None, "samples": [],
         "extra": record if metric == "registers" else {}}
        for metric, unit in units.items()
    ]  # fmt: skip


def test_a_version_1_audit_file_still_loads(tmp_path):
    data = {"tool": "normbench", "schema_version": 1, "suite": "audit", "env": {},
            "config": {}, "summary": ["3 configurations: 1 spill"],
            "rows": [r for a in (OK, SPILLS, FAILED) for r in _v1_rows(a)]}  # fmt: skip
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(data))
    run = load_run(path)
    assert run.of(AuditRow) == [OK, SPILLS, FAILED]
    assert run.summary == ["3 configurations: 1 spill"]


@pytest.mark.parametrize(
    ("kernel", "parts"),
    [("rmsnorm_fwd", ("rmsnorm", "fwd", "")),
     ("add_rmsnorm_bwd_res32", ("add_rmsnorm", "bwd", "res32")),
     ("add_layernorm_fwd", ("add_layernorm", "fwd", "")),
     ("layernorm_bwd_reduce_w16b32", ("layernorm", "bwd_reduce", "w16b32")),
     ("rmsnorm_bwd_reduce", ("rmsnorm", "bwd_reduce", "")),
     ("rmsnorm_fwd_res32_first", ("rmsnorm", "fwd", "res32_first"))],
)  # fmt: skip
def test_a_kernels_rows_name_its_variant_mode_and_options(kernel, parts):
    # The rows once split the name at its first '_': variant 'add', mode 'rmsnorm_fwd', so
    # df[df.variant == "add_rmsnorm"] found nothing (docs/formats.md: tidy columns).
    assert kernel_parts(kernel) == parts
    row = AuditRow.of(kernel, "sm_90", "bf16", 1024, status=Status.OK, registers=32)
    assert {(r["variant"], r["mode"], r["options"]) for r in row.to_rows()} == {parts}
