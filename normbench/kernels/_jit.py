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


@triton.jit
def _al(v, ALIGN: tl.constexpr):
    # ALIGN divides v (checked by the wrapper); restating it as a multiple lets the compiler prove
    # 16-byte alignment when the JIT's divisible-by-16 test cannot (N = 1000).
    return v // ALIGN * ALIGN


@triton.jit
def _row(P, head, row, stride, stride_h, ALIGN: tl.constexpr):
    # The start of one row of an (M, H, N) tensor (int64 offsets: Liger PR #804).
    return P + head * _al(stride_h, ALIGN) + row * _al(stride, ALIGN)


@triton.jit
def store_partials(DW_PART, DB_PART, head, pid, stride_p, cols, dw, db, HAS_W: tl.constexpr,
                   HAS_B: tl.constexpr):  # fmt: skip
    # One program's fp32 partial rows of dW and dB (head-major: (H, P, stride_p)), summed later
    # in a fixed order; the padding up to stride_p is stored as exact zeros.
    prow = (head * tl.num_programs(0) + pid) * stride_p + cols
    if HAS_W:
        tl.store(DW_PART + prow, sum_axis(dw, 0), mask=cols < stride_p)
    if HAS_B:
        tl.store(DB_PART + prow, sum_axis(db, 0), mask=cols < stride_p)


# Rounding modes for `round_to` (constexpr ints; `_common.round_mode` picks one from a dtype).
ROUND_NONE = 0
ROUND_FP16 = 1
ROUND_BF16 = 2  # compiled: the hardware's round-to-nearest-even conversion
ROUND_BF16_BITS = 3  # interpreter: its fp32 -> bf16 cast truncates, so round by integer ops
ROUND_FP32 = 4  # fp64 accumulators (gradcheck) rounding an fp32 tensor


@triton.jit
def round_to(v, MODE: tl.constexpr):
    """`v` rounded to nearest even in the dtype MODE names, returned in v's dtype.

    Used where a kernel must see exactly what it stores in a narrower dtype (the residual output
    it normalizes, Llama's rounded x_hat), so forward and backward agree on one value."""
    out = v
    if MODE == 1:
        out = v.to(tl.float16).to(v.dtype)
    elif MODE == 2:
        out = v.to(tl.bfloat16).to(v.dtype)
    elif MODE == 3:
        # bf16 is the top half of an fp32: add half an ulp (minus one when the kept last bit is
        # even, which breaks ties to even) and clear the low half. NaN stays NaN (its low bits
        # could otherwise carry it to inf); inf and overflow to inf come out as the GPU gives.
        bits = v.to(tl.uint32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        out = tl.where(v != v, v, bits.to(tl.float32, bitcast=True))
    elif MODE == 4:
        out = v.to(tl.float32).to(v.dtype)
    return out
