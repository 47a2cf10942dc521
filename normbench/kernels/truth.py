"""What the JIT compiled on the device, in the audit's terms: the kernels a block of code
launched (each with its registers and spills as the driver loaded it), and the key that says
which audit configuration each one is (tests/gpu/test_audit_truth_gpu.py checks that the audit
predicted every one of them: docs/numerics.md section 5).

A compiled kernel is its function, signature, constexprs, specialization attributes and warps;
two compilations with equal keys are the same code. The audit builds the same key from the
launch table (normbench.kernels.aot.launch_for and specialize), so a launch whose key matches
no audit configuration is one the audit never compiled.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from normbench.kernels import aot

# The kernels the wrappers launch, by module, as the audit's configurations name them (the
# @triton.jit helpers in _jit are inlined).
LAUNCHED: dict[str, tuple[str, ...]] = {
    module: tuple(dict.fromkeys(k.fn for k in aot.KERNELS if k.module == module))
    for module in dict.fromkeys(k.module for k in aot.KERNELS)
}


def _norm(v: Any) -> Any:
    # Constexpr values as both sides hold them: a flag may be a bool or an int, ACC a tl.dtype.
    if isinstance(v, bool):
        return int(v)
    return v if isinstance(v, (int, float, str)) else str(v)


def make_key(fn_name: str, signature: dict, constexprs: dict, attrs: dict, warps: int) -> tuple:
    """The identity of one compilation. Empty attribute lists (the JIT lists one per argument,
    specialized or not) are dropped: they change nothing in the code."""
    consts = tuple(sorted((tuple(k), _norm(v)) for k, v in constexprs.items()))
    specs = tuple(sorted((tuple(k), tuple(tuple(a) for a in v)) for k, v in attrs.items() if v))
    return (fn_name, tuple(signature.items()), consts, specs, int(warps))


def jit_key(kernel: Any) -> tuple:
    """The key of a kernel the JIT compiled (a triton CompiledKernel: its ASTSource and
    metadata)."""
    src = kernel.src
    return make_key(src.fn.__name__, src.signature, src.constants, src.attrs,
                    kernel.metadata.num_warps)  # fmt: skip


def audit_key(kernel: str, dtype: str, n: int, arch: str, sm_count: int | None = None) -> tuple:
    """The key of the audit's configuration (kernel name as in aot.KERNELS, x's dtype, N)."""
    spec, _, _, warps, signature, constexprs, attrs = aot.specialized(
        kernel, dtype, n, arch, sm_count
    )
    return make_key(spec.fn, signature, constexprs, attrs, warps)


@contextlib.contextmanager
def record_launches() -> Iterator[list[Any]]:
    """Every compiled kernel the wrappers launch inside the block, in launch order (repeats
    included). Triton's JITFunction.run compiles or finds the kernel, launches it and returns
    it; each launched kernel's `run` is wrapped to keep what it returns."""
    import importlib

    seen: list[Any] = []
    wrapped = []
    for module, names in LAUNCHED.items():
        mod = importlib.import_module(f"normbench.kernels.{module}")
        for name in names:
            fn = getattr(mod, name)
            real = fn.run

            def run(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
                kernel = _real(*args, **kwargs)
                if kernel is not None:
                    seen.append(kernel)
                return kernel

            fn.run = run  # an instance attribute: fn[grid](...) calls self.run
            wrapped.append(fn)
    try:
        yield seen
    finally:
        for fn in wrapped:
            del fn.run
