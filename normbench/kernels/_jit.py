"""Device helpers shared by the kernels.

Sums go through `sum_axis` instead of `tl.sum` (and zeros come from the builtin `tl.full`, not
`tl.zeros`): those are @triton.jit functions created when triton is first imported, so a process
that imported triton before TRITON_INTERPRET was set holds compiled-mode versions the interpreter
refuses to call. Ours are created with the kernels and always match their mode; compiled, they
are the same reduction `tl.sum` emits.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _add(a, b):
    return a + b


@triton.jit
def sum_axis(x, AXIS: tl.constexpr):
    # tl.standard._sum_combine, not _add: the interpreter recognises that combine function and
    # sums with numpy; any other one goes through its per-element Python reduce, about 30x slower
    # (`normbench stability --fp16` took 13 min instead of 50 s). It is never called, so its mode
    # does not matter; compiled, this is exactly what tl.sum emits.
    return tl.reduce(x, AXIS, tl.standard._sum_combine)
