"""Reading a kernel compiled ahead of time (normbench.kernels.aot): which global loads and stores
each pointer argument gets and how wide (from the PTX), and its registers, stack, shared and
local memory (from the cubin, by the wheel's cuobjdump)."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

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
