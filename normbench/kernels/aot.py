"""Ahead-of-time compilation of the kernels for a GPU this machine may not have.

The audit compiles exactly what the runtime would launch: the tile and warps come from the launch
table, and the arguments get the JIT's specializations (pointers 16-byte aligned and integers
divisible by 16 get `tt.divisibility 16`, integers equal to 1 become constants). Without those
hints an fp16 load compiles to 2-byte `ld.global.b16` instead of 16-byte `ld.global.v4.b32`
(NUMERICS.md section 8).

Compilation needs Triton's compiler, not its interpreter, so it runs in a worker process started
with TRITON_INTERPRET=0: `python -m normbench.kernels.aot` reads jobs as JSON lines on stdin and
writes one JSON result line per job on stdout.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from normbench.kernels.launch import (
    bwd_config,
    bwd_grid,
    fwd_config,
    partial_stride,
    reduce_config,
    vector_align,
)

# Rows used to size the backward grid in the audit (QuACK's benchmark M); only the backward grid
# (rows per program) depends on it.
AUDIT_ROWS = 32768
SM_COUNT = {"sm_80": 108, "sm_90": 132}  # A100, H100 SXM
ELEM_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}

# Argument roles, by name: the kernels name their arguments consistently, so one table covers all.
ACTIVATION_PTRS = ("X", "R", "Y", "RES_OUT", "DY", "S", "DX", "DRES_OUT")
PARAM_PTRS = ("W", "B", "OUT")  # parameters and their gradients: the activation dtype here
FP32_PTRS = ("RSTD", "MEAN", "DW_PART", "DB_PART", "PART")


@dataclass(frozen=True)
class KernelSpec:
    name: str  # audit name, e.g. "add_layernorm_bwd"
    module: str
    fn: str
    stage: str  # fwd, bwd or reduce
    flags: tuple[tuple[str, bool], ...]  # constexpr switches that pick the variant
    main_ptrs: tuple[str, ...]  # the tensors whose access width matters (M x N or P x N)


_RMS_FWD_MAIN = ("X", "R", "Y", "RES_OUT")
_BWD_MAIN = ("DY", "S", "DX", "DRES_OUT")
KERNELS: tuple[KernelSpec, ...] = (
    KernelSpec(
        "rmsnorm_fwd", "rmsnorm", "rms_fwd_kernel", "fwd", (("HAS_RES", False),), _RMS_FWD_MAIN
    ),
    KernelSpec(
        "add_rmsnorm_fwd", "rmsnorm", "rms_fwd_kernel", "fwd", (("HAS_RES", True),), _RMS_FWD_MAIN
    ),
    KernelSpec(
        "rmsnorm_bwd", "rmsnorm", "rms_bwd_kernel", "bwd", (("HAS_DRES", False),), _BWD_MAIN
    ),
    KernelSpec(
        "add_rmsnorm_bwd", "rmsnorm", "rms_bwd_kernel", "bwd", (("HAS_DRES", True),), _BWD_MAIN
    ),
    KernelSpec(
        "rmsnorm_bwd_reduce", "reduce", "reduce_partials_kernel", "reduce", (), ("PART", "OUT")
    ),
    KernelSpec(
        "layernorm_fwd",
        "layernorm",
        "ln_fwd_kernel",
        "fwd",
        (("HAS_RES", False), ("HAS_BIAS", True)),
        _RMS_FWD_MAIN,
    ),
    KernelSpec(
        "add_layernorm_fwd",
        "layernorm",
        "ln_fwd_kernel",
        "fwd",
        (("HAS_RES", True), ("HAS_BIAS", True)),
        _RMS_FWD_MAIN,
    ),
    KernelSpec(
        "layernorm_bwd",
        "layernorm",
        "ln_bwd_kernel",
        "bwd",
        (("HAS_DRES", False), ("HAS_BIAS", True)),
        _BWD_MAIN,
    ),
    KernelSpec(
        "add_layernorm_bwd",
        "layernorm",
        "ln_bwd_kernel",
        "bwd",
        (("HAS_DRES", True), ("HAS_BIAS", True)),
        _BWD_MAIN,
    ),
    KernelSpec(
        "layernorm_bwd_reduce", "reduce", "reduce_partials_kernel", "reduce", (), ("PART", "OUT")
    ),
)
KERNELS_BY_NAME = {k.name: k for k in KERNELS}


def launch_for(spec: KernelSpec, dtype: str, n: int, arch: str) -> tuple[dict, dict, int]:
    """(runtime argument values, constexprs, num_warps) the wrappers would use for an M x N input.

    Pointer arguments are given as their element type name; the runtime allocates them with
    torch's caching allocator, so they are 16-byte aligned.
    """
    eb = ELEM_BYTES[dtype]
    values: dict[str, object] = {"M": AUDIT_ROWS, "N": n, "eps": 1e-6, "offset": 0.0}
    if spec.stage == "fwd":
        cfg = fwd_config(n, eb)
        const = {"BLOCK": cfg.block, "ROWS": cfg.rows}
        warps = cfg.num_warps
    elif spec.stage == "bwd":
        cfg = bwd_config(n, eb)
        programs, rows_per_program = bwd_grid(AUDIT_ROWS, n, eb, SM_COUNT[arch])
        values.update(rows_per_program=rows_per_program, stride_p=partial_stride(n))
        const = {"BLOCK": cfg.block, "ROWS": cfg.rows}
        warps = cfg.num_warps
    else:
        programs, _ = bwd_grid(AUDIT_ROWS, n, eb, SM_COUNT[arch])
        rcfg = reduce_config(n, eb)
        values.update(P=programs, stride_p=partial_stride(n))
        const = {"BLOCK_N": rcfg.block_n, "BLOCK_P": rcfg.block_p}
        warps = rcfg.num_warps
    const.update(dict(spec.flags))
    const["ACC"] = "fp32"
    const["ALIGN"] = vector_align(n, eb)  # every row stride is N: contiguous rows
    for name in ("stride_x", "stride_r", "stride_y", "stride_ro", "stride_dy", "stride_s"):
        values[name] = n
    values.update(stride_dx=n, stride_dro=n)
    return values, const, warps


def specialize(arg_names: list[str], values: dict, const: dict, dtype: str):
    """Signature, constexprs and attrs exactly as the JIT derives them from runtime arguments."""
    signature: dict[str, str] = {}
    constexprs: dict[tuple[int, ...], object] = {}
    attrs: dict[tuple[int, ...], list] = {}
    for i, name in enumerate(arg_names):
        if name in const:
            signature[name] = "constexpr"
            constexprs[(i,)] = const[name]
        elif name in ACTIVATION_PTRS or name in PARAM_PTRS:
            signature[name] = f"*{dtype}"
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif name in FP32_PTRS:
            signature[name] = "*fp32"
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif isinstance(values[name], float):
            signature[name] = "fp32"  # floats are never specialized
        else:
            v = int(values[name])
            if v == 1:  # the JIT turns an integer 1 into a constant
                signature[name] = "constexpr"
                constexprs[(i,)] = 1
                continue
            signature[name] = "i32" if -(2**31) <= v < 2**31 else "i64"
            if v % 16 == 0:
                attrs[(i,)] = [["tt.divisibility", 16]]
    return signature, constexprs, attrs


# --- reading the compiled kernel -------------------------------------------------------------

_REG = re.compile(r"%[a-z]+\d+")
_PARAM = re.compile(r"\[(\w+)_param_(\d+)\]")
_MEM = re.compile(r"(?:@!?%p\d+\s+)?(ld|st)\.global([\w.:]*)\s+(.*);")
_VEC = re.compile(r"\.v(\d+)")
_BITS = re.compile(r"\.[bfsu](\d+)\b")


def pointer_accesses(ptx: str, param_names: list[str | None]) -> dict[str, dict[str, set[int]]]:
    """{pointer name: {"ld": widths in bytes, "st": widths}} for every global access in the PTX.

    Each address register is traced back (flow-insensitively) to the pointer parameters it was
    computed from; `param_names` lists the non-constexpr arguments in order, as the PTX numbers
    them, with None for the integer and float arguments (they offset addresses, they are not
    tensors).
    """
    origins: dict[str, set[int]] = {}
    insts: list[tuple[str, list[str]]] = []
    mem: list[tuple[str, int, str]] = []
    for raw in ptx.splitlines():
        line = raw.strip()
        if not line or line.startswith(("//", ".", "$", "{", "}")):
            continue
        m = _MEM.match(line)
        if m:
            kind, mods, ops = m.groups()
            vec = _VEC.search(mods)
            bits = _BITS.search(mods)
            width = (int(vec.group(1)) if vec else 1) * (int(bits.group(1)) if bits else 32) // 8
            addr = re.search(r"\[\s*(%\w+)", ops)
            if addr:
                mem.append((kind, width, addr.group(1)))
            continue
        parts = line.split(None, 1)
        regs = _REG.findall(parts[1]) if len(parts) > 1 and not parts[0].startswith("@") else []
        if parts[0].startswith("@") and len(parts) > 1:  # predicated: drop the guard
            inner = parts[1].split(None, 1)
            regs = _REG.findall(inner[1]) if len(inner) > 1 else []
        p = _PARAM.search(line)
        if p and regs:
            idx = int(p.group(2))
            if idx < len(param_names) and param_names[idx] is not None:
                origins.setdefault(regs[0], set()).add(idx)
        elif len(regs) >= 2:
            insts.append((regs[0], regs[1:]))
    changed = True
    while changed:  # propagate parameter origins to a fixed point (loops reuse registers)
        changed = False
        for dst, srcs in insts:
            acc = origins.get(dst, set())
            before = len(acc)
            for s in srcs:
                acc |= origins.get(s, set())
            if len(acc) != before:
                origins[dst] = acc
                changed = True
    out: dict[str, dict[str, set[int]]] = {}
    for kind, width, reg in mem:
        for idx in origins.get(reg, ()):
            if idx < len(param_names) and param_names[idx] is not None:
                out.setdefault(param_names[idx], {"ld": set(), "st": set()})[kind].add(width)
    return out


def _tool(name: str) -> Path:
    import triton

    return Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name


def tools_missing() -> str | None:
    """Why compilation for a GPU is impossible here, or None."""
    for name in ("ptxas", "cuobjdump"):
        if not _tool(name).exists():
            return f"{name} is missing from the triton wheel ({_tool(name)})"
    return None


_RES = re.compile(r"REG:(\d+)\s+STACK:(\d+)\s+SHARED:(\d+)\s+LOCAL:(\d+)")


def resource_usage(cubin: bytes) -> dict[str, int]:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run(
            [str(_tool("cuobjdump")), "-res-usage", f.name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    m = _RES.search(text)
    if not m:
        raise RuntimeError(f"cannot parse cuobjdump -res-usage output: {text.strip()[:200]}")
    reg, stack, shared, local = map(int, m.groups())
    return {"registers": reg, "stack": stack, "shared_static": shared, "local": local}


def compile_job(job: dict) -> dict:
    """Compile one configuration and read what the audit reports. Never raises."""
    try:
        return _compile(job)
    except Exception as exc:  # compile errors become rows, not crashes
        lines = str(exc).strip().splitlines() or [""]
        return {"error": f"{type(exc).__name__}: {lines[-1][:300]}"}


def _compile(job: dict) -> dict:
    import importlib

    import triton
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.jit import JITFunction

    spec = KERNELS_BY_NAME[job["kernel"]]
    kernel = getattr(importlib.import_module(f"normbench.kernels.{spec.module}"), spec.fn)
    fn = kernel if isinstance(kernel, JITFunction) else JITFunction(kernel.fn)
    names = list(fn.arg_names)
    values, const, warps = launch_for(spec, job["dtype"], job["n"], job["arch"])
    const = {k: (tl.float32 if k == "ACC" else v) for k, v in const.items()}
    signature, constexprs, attrs = specialize(names, values, const, job["dtype"])
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
    for line in sys.stdin:
        if line.strip():
            job = json.loads(line)
            result = compile_job(job)
            result["id"] = job["id"]
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
