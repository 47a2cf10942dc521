"""Ahead-of-time compilation of the kernels for a GPU this machine may not have.

The audit compiles exactly what the runtime would launch: the tile and warps come from the launch
table, and the arguments get the JIT's specializations (pointers 16-byte aligned and integers
divisible by 16 get `tt.divisibility 16`, integers equal to 1 become constants; not the
batch-sized ones, which the kernels declare do_not_specialize: launch.GRID_SIZED). Without those
hints an fp16 load compiles to 2-byte `ld.global.b16` instead of 16-byte `ld.global.v4.b32`
(docs/numerics.md section 8).

Compilation needs Triton's compiler, not its interpreter, so it runs in a worker process started
with TRITON_INTERPRET=0: `python -m normbench.kernels.aot` reads jobs as JSON lines on stdin and
writes one JSON result line per job on stdout.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from normbench.kernels.compiled import pointer_accesses, resource_usage
from normbench.kernels.compiled import tools_missing as tools_missing  # the audit's check
from normbench.kernels.launch import (
    GRID_SIZED,
    bwd_config,
    bwd_grid,
    fwd_config,
    looped,
    partial_stride,
    reduce_config,
    vector_align,
)
from normbench.pipe import serve

# Rows used to size the backward grid in the audit (QuACK's benchmark M). Only the grid-sized
# integers depend on it, and the kernels do not specialize those (launch.GRID_SIZED): the audit's
# code is what runs at any M.
AUDIT_ROWS = 32768
AUDIT_HEADS = 8  # per-head configurations: QK-norm with 8 heads
SM_COUNT = {"sm_80": 108, "sm_90": 132}  # A100, H100 SXM
ELEM_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
# The compiled bf16 / fp16 rounding modes of `_jit.round_to` (the interpreter's bit trick is
# never compiled).
_ROUND = {"fp16": 1, "bf16": 2, "fp32": 0}

# Argument roles, by name: the kernels name their arguments consistently, so one table covers all.
ACTIVATION_PTRS = ("X", "R", "Y", "RES_OUT", "DY", "S", "DX", "DRES", "DRES_OUT")
RESIDUAL_PTRS = ("R", "RES_OUT", "S", "DRES", "DRES_OUT")  # in the residual's dtype
PARAM_PTRS = ("W", "B", "OUT0", "OUT1")  # parameters and their gradients
FP32_PTRS = ("RSTD", "MEAN", "DW_PART", "DB_PART", "PART")


@dataclass(frozen=True)
class KernelSpec:
    """One configuration of a kernel as the wrappers launch it. Beyond the constexpr flags: the
    weight's and the residual's dtype when they differ from x's, and a per-head weight."""

    name: str  # audit name, e.g. "add_layernorm_bwd", "add_rmsnorm_fwd_res32"
    module: str
    fn: str  # the kernel; rows wider than 8192 compile its LOOPED branch
    stage: str  # fwd, bwd or reduce
    flags: tuple[tuple[str, object], ...]  # constexpr switches that pick the variant
    main_ptrs: tuple[str, ...]  # the tensors whose access width matters (M x N or P x N)
    w_dtype: str | None = None  # None: x's dtype
    res_dtype: str | None = None  # None: x's dtype
    per_head: bool = False
    n_out: int = 1  # reduce: parameters reduced (dW; dW and dB)
    first: int = 0  # reduce: 1 when the only output is dB (a layer with a bias, no weight)

    def split(self, dtype: str) -> bool:
        """dx and the residual's gradient stored apart, as the wrappers decide at x = `dtype`."""
        return (self.res_dtype or dtype) != dtype


_FWD_MAIN = ("X", "R", "Y", "RES_OUT")
_BWD_MAIN = ("DY", "S", "DX", "DRES_OUT", "DRES")
_REDUCE_MAIN = ("PART", "OUT0")
# Flags of the plain layer; each configuration below overrides some.
_FWD = {"HAS_RES": False, "STORE_RES": False, "HAS_W": True, "HAS_B": False}
_BWD = {"HAS_DRES": False, "STORE_DRES": False, "HAS_W": True, "HAS_B": False}


def _spec(name, family, stage, over=None, **kw) -> KernelSpec:
    module = {"rms": "rmsnorm", "ln": "layernorm"}[family]
    base = {"fwd": _FWD, "bwd": _BWD, "reduce": {}}[stage]
    flags = dict(base)
    if family == "ln" and stage != "reduce":
        flags["HAS_B"] = True
    flags.update(over or {})
    fn = "reduce_partials_kernel" if stage == "reduce" else f"{family}_{stage}_kernel"
    main = {"fwd": _FWD_MAIN, "bwd": _BWD_MAIN, "reduce": _REDUCE_MAIN}[stage]
    return KernelSpec(
        name, "reduce" if stage == "reduce" else module, fn, stage, tuple(flags.items()), main,
        **kw,
    )  # fmt: skip


_ADD_FWD = {"HAS_RES": True, "STORE_RES": True}
_ADD_BWD = {"HAS_DRES": True}
KERNELS: tuple[KernelSpec, ...] = (
    _spec("rmsnorm_fwd", "rms", "fwd"),
    _spec("add_rmsnorm_fwd", "rms", "fwd", _ADD_FWD),
    _spec("rmsnorm_bwd", "rms", "bwd"),
    _spec("add_rmsnorm_bwd", "rms", "bwd", _ADD_BWD),
    _spec("rmsnorm_bwd_reduce", "rms", "reduce"),
    _spec("layernorm_fwd", "ln", "fwd"),
    _spec("add_layernorm_fwd", "ln", "fwd", _ADD_FWD),
    _spec("layernorm_bwd", "ln", "bwd"),
    _spec("add_layernorm_bwd", "ln", "bwd", _ADD_BWD),
    _spec("layernorm_bwd_reduce", "ln", "reduce", n_out=2),
    # The layer options (normbench.options), each as the wrappers launch it.
    _spec("rmsnorm_fwd_w32", "rms", "fwd", w_dtype="fp32"),
    _spec("rmsnorm_bwd_w32", "rms", "bwd", w_dtype="fp32"),
    _spec("rmsnorm_fwd_noweight", "rms", "fwd", {"HAS_W": False}),
    _spec("rmsnorm_bwd_noweight", "rms", "bwd", {"HAS_W": False}),
    _spec("rmsnorm_fwd_bias", "rms", "fwd", {"HAS_B": True}, w_dtype="fp32"),
    _spec("rmsnorm_bwd_bias", "rms", "bwd", {"HAS_B": True}, w_dtype="fp32"),
    _spec("rmsnorm_fwd_llama", "rms", "fwd", {"XHAT_ROUND": "x"}),
    _spec("rmsnorm_bwd_llama", "rms", "bwd", {"XHAT_ROUND": "x"}),
    _spec("rmsnorm_fwd_heads", "rms", "fwd", w_dtype="fp32", per_head=True),
    _spec("rmsnorm_bwd_heads", "rms", "bwd", w_dtype="fp32", per_head=True),
    _spec("add_rmsnorm_fwd_res32", "rms", "fwd", _ADD_FWD, res_dtype="fp32"),
    _spec("add_rmsnorm_bwd_res32", "rms", "bwd", _ADD_BWD, res_dtype="fp32"),
    _spec("layernorm_fwd_w32", "ln", "fwd", w_dtype="fp32"),
    _spec("layernorm_bwd_w32", "ln", "bwd", w_dtype="fp32"),
    _spec("layernorm_fwd_noweight", "ln", "fwd", {"HAS_W": False, "HAS_B": False}),
    _spec("layernorm_bwd_noweight", "ln", "bwd", {"HAS_W": False, "HAS_B": False}),
    _spec("add_layernorm_fwd_res32", "ln", "fwd", _ADD_FWD, res_dtype="fp32"),
    _spec("add_layernorm_bwd_res32", "ln", "bwd", _ADD_BWD, res_dtype="fp32"),
    _spec("layernorm_bwd_reduce_w16b32", "ln", "reduce", w_dtype="bf16", n_out=2),
    _spec("rmsnorm_bwd_reduce_w32", "rms", "reduce", w_dtype="fp32"),
    _spec("layernorm_bwd_reduce_bonly", "ln", "reduce", first=1),
    _spec("rmsnorm_fwd_res32_first", "rms", "fwd", {"STORE_RES": True}, res_dtype="fp32"),
    _spec("add_rmsnorm_fwd_res16", "rms", "fwd", _ADD_FWD, res_dtype="bf16"),
    _spec("add_rmsnorm_bwd_res16", "rms", "bwd", _ADD_BWD, res_dtype="bf16"),
    _spec("rmsnorm_fwd_biasonly", "rms", "fwd", {"HAS_W": False, "HAS_B": True}),
    _spec("rmsnorm_bwd_biasonly", "rms", "bwd", {"HAS_W": False, "HAS_B": True}),
    _spec("layernorm_fwd_nobias", "ln", "fwd", {"HAS_B": False}),
    _spec("layernorm_bwd_nobias", "ln", "bwd", {"HAS_B": False}),
)
KERNELS_BY_NAME = {k.name: k for k in KERNELS}


def ptr_dtypes(spec: KernelSpec, dtype: str) -> dict[str, str]:
    """Element type of every pointer argument of `spec` at activation dtype `dtype`."""
    res = spec.res_dtype or dtype
    w = spec.w_dtype or dtype
    out = {p: dtype for p in ACTIVATION_PTRS}
    if spec.stage == "fwd" and dict(spec.flags).get("STORE_RES"):
        out.update(R=res, RES_OUT=res)
    if spec.stage == "bwd" and dict(spec.flags).get("HAS_DRES"):
        out.update(S=res, DRES_OUT=res, DRES=res)
    out.update({p: w for p in ("W", "B", "OUT0")})
    # the second reduced output is the bias: fp32 beside a 16-bit weight (the db-rounding case)
    out["OUT1"] = "fp32" if spec.name.endswith("_w16b32") else w
    out.update({p: "fp32" for p in FP32_PTRS})
    return out


def launch_for(
    spec: KernelSpec, dtype: str, n: int, arch: str, sm_count: int | None = None
) -> tuple[dict, dict, int]:
    """(runtime argument values, constexprs, num_warps) the wrappers would use for an M x N input
    on a GPU of `arch` with `sm_count` SMs (default SM_COUNT[arch]; the backward grid's rows per
    program and the reduction's partial rows follow it).

    Pointer arguments are given as their element type name; the runtime allocates them with
    torch's caching allocator, so they are 16-byte aligned.
    """
    sms = SM_COUNT[arch] if sm_count is None else sm_count
    eb = ELEM_BYTES[dtype]
    heads = AUDIT_HEADS if spec.per_head else 1
    m = AUDIT_ROWS // heads
    values: dict[str, object] = {"M": m, "N": n, "eps": 1e-6, "offset": 0.0}
    if spec.stage == "bwd" and dict(spec.flags).get("HAS_DRES"):
        eb = ELEM_BYTES[spec.res_dtype or dtype]  # the backward is sized by the saved s
    if spec.stage == "fwd":
        cfg = fwd_config(n, eb)
        const = {"BLOCK": cfg.block, "ROWS": cfg.rows}
        warps = cfg.num_warps
    elif spec.stage == "bwd":
        cfg = bwd_config(n, eb, spec.split(dtype))
        programs, rows_per_program = bwd_grid(m, n, eb, sms, heads, spec.split(dtype))
        values.update(rows_per_program=rows_per_program, stride_p=partial_stride(n))
        const = {"BLOCK": cfg.block, "ROWS": cfg.rows}
        warps = cfg.num_warps
    else:
        programs, _ = bwd_grid(AUDIT_ROWS, n, eb, sms)
        pd = ptr_dtypes(spec, dtype)
        outs = ["OUT0", "OUT1"][: spec.n_out]
        eb = min(ELEM_BYTES[pd[o]] for o in outs)  # as reduce_partials: its outputs only
        rcfg = reduce_config(n, eb)
        values.update(P=programs, stride_p=partial_stride(n), first=spec.first)
        const = {"BLOCK_N": rcfg.block_n, "BLOCK_P": rcfg.block_p}
        warps = rcfg.num_warps
    flags = dict(spec.flags)
    if spec.stage == "bwd":
        flags["STORE_DRES"] = spec.split(dtype)
    if spec.stage == "fwd":
        res_store = flags.get("STORE_RES")
        flags["RES_ROUND"] = _ROUND[spec.res_dtype or dtype] if res_store else 0
    if spec.module == "rmsnorm":
        flags["XHAT_ROUND"] = _ROUND[dtype] if flags.get("XHAT_ROUND") == "x" else 0
    if spec.stage != "reduce":
        flags["LOOPED"] = looped(n)
    const.update(flags)
    const["ACC"] = "fp32"
    # every row stride is N (contiguous rows); the narrowest tensor sets the vector width
    narrow = min(eb, ELEM_BYTES[dtype], ELEM_BYTES[spec.res_dtype or dtype])
    const["ALIGN"] = vector_align(n, eb if spec.stage == "reduce" else narrow)
    # (M, H, N) rows: the row stride is H * N, the head stride N (H = 1: N and N).
    names = ("x", "r", "y", "ro", "dy", "s", "dx", "dr", "dro")
    for name in names:
        values[f"stride_{name}"] = heads * n
        values[f"stride_{name}h"] = n
    values["stride_wh"] = n if spec.per_head else 0
    return values, const, warps


def specialize(
    arg_names: list[str],
    values: dict,
    const: dict,
    dtypes: dict[str, str] | str,
    unspecialized: Collection[str] = (),
):
    """Signature, constexprs and attrs exactly as the JIT derives them from runtime arguments.
    `dtypes`: each pointer's element type (`ptr_dtypes`), or one name for all non-fp32 ones;
    `unspecialized`: the integer arguments the kernel declares do_not_specialize."""
    if isinstance(dtypes, str):
        dtypes = {p: dtypes for p in (*ACTIVATION_PTRS, *PARAM_PTRS)}
        dtypes.update({p: "fp32" for p in FP32_PTRS})
    signature: dict[str, str] = {}
    constexprs: dict[tuple[int, ...], object] = {}
    attrs: dict[tuple[int, ...], list] = {}
    for i, name in enumerate(arg_names):
        if name in const:
            signature[name] = "constexpr"
            constexprs[(i,)] = const[name]
        elif name in dtypes:
            signature[name] = f"*{dtypes[name]}"
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif isinstance(values[name], float):
            signature[name] = "fp32"  # floats are never specialized
        else:
            v = int(values[name])
            if name in unspecialized:  # typed by its range, nothing else
                signature[name] = "i32" if -(2**31) <= v < 2**31 else "i64"
                continue
            if v == 1:  # the JIT turns an integer 1 into a constant
                signature[name] = "constexpr"
                constexprs[(i,)] = 1
                continue
            signature[name] = "i32" if -(2**31) <= v < 2**31 else "i64"
            if v % 16 == 0:
                attrs[(i,)] = [["tt.divisibility", 16]]
    return signature, constexprs, attrs


def compile_job(job: dict) -> dict:
    """Compile one configuration and read what the audit reports. Never raises."""
    try:
        return _compile(job)
    except Exception as exc:  # compile errors become rows, not crashes
        lines = str(exc).strip().splitlines() or [""]
        return {"error": f"{type(exc).__name__}: {lines[-1][:300]}"}


def specialized(kernel: str, dtype: str, n: int, arch: str, sm_count: int | None = None):
    """The compilation the runtime would make of audit configuration `kernel` at x = `dtype`,
    N = `n` on `arch` (what the compile worker compiles, what truth.audit_key keys): (spec, its
    JITFunction, constexprs by name with ACC a tl.float32, warps, signature, constexprs, attrs)."""
    import importlib

    import triton.language as tl
    from triton.runtime.jit import JITFunction

    spec = KERNELS_BY_NAME[kernel]
    obj = getattr(importlib.import_module(f"normbench.kernels.{spec.module}"), spec.fn)
    fixed = GRID_SIZED[spec.stage]  # as the kernels declare them
    # the interpreter's kernels wrap the same function
    fn = obj if isinstance(obj, JITFunction) else JITFunction(obj.fn, do_not_specialize=fixed)
    values, const, warps = launch_for(spec, dtype, n, arch, sm_count)
    const = {k: (tl.float32 if k == "ACC" else v) for k, v in const.items()}
    args = specialize(list(fn.arg_names), values, const, ptr_dtypes(spec, dtype), fixed)
    return (spec, fn, const, warps, *args)


def _compile(job: dict) -> dict:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    spec, fn, const, warps, signature, constexprs, attrs = specialized(
        job["kernel"], job["dtype"], job["n"], job["arch"], job.get("sms")
    )
    names = list(fn.arg_names)
    cc = int(job["arch"].removeprefix("sm_"))
    compiled = triton.compile(
        ASTSource(fn, signature, constexprs, attrs),
        target=GPUTarget("cuda", cc, 32),
        options={"num_warps": warps, "enable_fp_fusion": True},
    )
    res = resource_usage(compiled.asm["cubin"])
    params = [
        n if signature[n].startswith("*") else None for n in names if signature[n] != "constexpr"
    ]
    access = pointer_accesses(compiled.asm["ptx"], params)
    return {
        **res,
        "shared_dynamic": int(compiled.metadata.shared),
        "num_warps": warps,
        "block": const.get("BLOCK", const.get("BLOCK_N")),
        "access": {k: {kk: sorted(vv) for kk, vv in v.items()} for k, v in access.items()},
        "main_ptrs": list(spec.main_ptrs),
    }


def main() -> None:
    """Worker loop: one JSON job per stdin line -> one JSON result per stdout line."""
    serve(lambda job: {**compile_job(job), "id": job["id"]})


if __name__ == "__main__":
    main()
