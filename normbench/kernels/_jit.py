"""Device helpers shared by the kernels: everything but each norm's own statistics and gradient.

The RMSNorm and LayerNorm kernels (rmsnorm.py, layernorm.py) have one shape: address a tile of
rows (LOOPED: walk one row in column chunks), load s = x (+ r) and store the residual output,
apply the family's math, store y and the statistics; backward loads s and dy, applies the math,
stores dx (and the residual's gradient) and sums dW and dB into per-program partials. The shared
steps live here, the math in each family's file. @triton.jit calls are inlined, so the compiled
kernels are the instructions one body would give.

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
def sum_axis(x, AXIS: tl.constexpr):
    # tl.standard._sum_combine, not a combine function of our own: the interpreter recognises
    # that one and sums with numpy; any other goes through its per-element Python reduce, about
    # 30x slower (`normbench stability --fp16` took 13 min instead of 50 s). It is never called,
    # so its mode does not matter; compiled, this is exactly what tl.sum emits.
    return tl.reduce(x, AXIS, tl.standard._sum_combine)


@triton.jit
def aligned(v, ALIGN: tl.constexpr):
    # ALIGN divides v (checked by the wrapper); restating it as a multiple lets the compiler prove
    # 16-byte alignment when the JIT's divisible-by-16 test cannot (N = 1000).
    return v // ALIGN * ALIGN


@triton.jit
def row_ptr(P, head, row, stride, stride_h, ALIGN: tl.constexpr):
    # The start of one row of an (M, H, N) tensor (int64 offsets: Liger PR #804).
    return P + head * aligned(stride_h, ALIGN) + row * aligned(stride, ALIGN)


# Rounding modes for `round_to` (constexpr ints; `_common.round_mode` picks one from a dtype).
ROUND_NONE = 0
ROUND_FP16 = 1
ROUND_BF16 = 2  # compiled: the hardware's round-to-nearest-even conversion
ROUND_BF16_BITS = 3  # interpreter: its fp32 -> bf16 cast truncates, so round by integer ops
ROUND_FP32 = 4  # fp64 accumulators (gradcheck) rounding an fp32 tensor
# ROUND_NONE for jit code, which may read only constexpr globals.
NO_ROUND = tl.constexpr(ROUND_NONE)


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


# The helpers below keep the order of the code they replaced, down to when each address is
# formed: the PTX follows source order and ptxas's register allocation follows the PTX, so each
# kernel compiles to the instructions its one-body form gave and the audit's registers and zero
# spills (docs/numerics.md section 5, "Kernel design") hold. Reordering any of it is a change to
# re-audit.


@triton.jit
def tile_offs(head, r64, stride, stride_h, cols, ALIGN: tl.constexpr):
    # Offsets of a [ROWS, BLOCK] tile of an (M, H, N) tensor; r64 holds the rows as int64.
    return head * aligned(stride_h, ALIGN) + r64 * aligned(stride, ALIGN) + cols[None, :]


@triton.jit
def _at(P, head, r64, stride, stride_h, cols, ALIGN: tl.constexpr, TILE: tl.constexpr):
    # Pointers to a [ROWS, BLOCK] tile (TILE), or to one chunk of one row (a looped kernel).
    if TILE:
        ptrs = P + tile_offs(head, r64, stride, stride_h, cols, ALIGN)
    else:
        ptrs = row_ptr(P, head, r64, stride, stride_h, ALIGN) + cols
    return ptrs


@triton.jit
def fwd_tile(M, N, BLOCK: tl.constexpr, ROWS: tl.constexpr):
    # A forward program's [ROWS, BLOCK] tile: (rows, cols, row mask, column mask, tile mask,
    # rows as an int64 column: M * stride can pass 2^31 elements, Liger PR #804).
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, BLOCK)
    row_mask = rows < M
    col_mask = cols < N
    mask = row_mask[:, None] & col_mask[None, :]
    return rows, cols, row_mask, col_mask, mask, rows.to(tl.int64)[:, None]


@triton.jit
def tile_rows(r0, limit, col_mask, ROWS: tl.constexpr):
    # A backward step's ROWS rows from r0, those below `limit` live: (rows, row mask, tile mask,
    # rows as an int64 column).
    rows = r0 + tl.arange(0, ROWS)
    row_mask = rows < limit
    mask = row_mask[:, None] & col_mask[None, :]
    return rows, row_mask, mask, rows.to(tl.int64)[:, None]


@triton.jit
def program_rows(pid, rows_per_program, M):
    # The contiguous row range [start, end) one backward program owns.
    row_start = pid * rows_per_program
    return row_start, tl.minimum(row_start + rows_per_program, M)


@triton.jit
def load_acc(P, mask, ACC: tl.constexpr):
    # Upcast on load, before any product: squaring in fp16 overflows at |x| >= 256 (pytorch
    # #133085). Masked lanes read 0, so they add exactly 0 to every sum (triton #9838).
    return tl.load(P, mask=mask, other=0.0).to(ACC)


@triton.jit
def load_param(P, head, stride_wh, cols, mask, ACC: tl.constexpr):
    # A weight's or bias's columns: of (N,) (stride_wh = 0), or of this head's row of (H, N).
    return load_acc(P + head * stride_wh + cols, mask, ACC)


@triton.jit
def store_as(P, v, mask):
    # Rounded once, from the accumulator straight to the destination's dtype.
    tl.store(P, v.to(P.dtype.element_ty), mask=mask)


# The forward's input s = x, or x + r; with a residual output, s is rounded to its dtype and
# stored first, so the norm and the backward see exactly the tensor the next layer gets. One
# helper per addressing (a tile's offsets; a looped kernel's row starts, formed before its loop):
# one helper for both would move the looped kernels' address arithmetic, and their PTX with it.


@triton.jit
def tile_input(X, R, RES_OUT, head, r64, cols, mask, stride_x, stride_xh, stride_r, stride_rh,
               stride_ro, stride_roh, HAS_RES: tl.constexpr, STORE_RES: tl.constexpr,
               RES_ROUND: tl.constexpr, ACC: tl.constexpr, ALIGN: tl.constexpr):  # fmt: skip
    s = load_acc(X + tile_offs(head, r64, stride_x, stride_xh, cols, ALIGN), mask, ACC)
    if HAS_RES:
        s += load_acc(R + tile_offs(head, r64, stride_r, stride_rh, cols, ALIGN), mask, ACC)
    if STORE_RES:
        s = round_to(s, RES_ROUND)
        store_as(RES_OUT + tile_offs(head, r64, stride_ro, stride_roh, cols, ALIGN), s, mask)
    return s


@triton.jit
def row_input(xrow, rrow, orow, cols, mask, HAS_RES: tl.constexpr, STORE_RES: tl.constexpr,
              RES_ROUND: tl.constexpr, ACC: tl.constexpr):  # fmt: skip
    s = load_acc(xrow + cols, mask, ACC)
    if HAS_RES:
        s += load_acc(rrow + cols, mask, ACC)
    if STORE_RES:
        s = round_to(s, RES_ROUND)
        store_as(orow + cols, s, mask)
    return s


@triton.jit
def input_sum(xrow, rrow, orow, N, BLOCK: tl.constexpr, HAS_RES: tl.constexpr,
              STORE_RES: tl.constexpr, RES_ROUND: tl.constexpr, SQUARE: tl.constexpr,
              ACC: tl.constexpr):  # fmt: skip
    # A looped forward's first pass over its row, chunk by chunk: sum(s), or sum(s^2) with
    # SQUARE, writing the residual output on the way.
    acc = tl.full([BLOCK], 0.0, ACC)
    for c0 in range(0, N, BLOCK):
        cols = c0 + tl.arange(0, BLOCK)
        mask = cols < N
        s = row_input(xrow, rrow, orow, cols, mask, HAS_RES, STORE_RES, RES_ROUND, ACC)
        if SQUARE:
            s = s * s
        acc += s
    return sum_axis(acc, 0)


@triton.jit
def store_dx(dx, DX, DRES, DRES_OUT, head, r64, cols, mask, stride_dx, stride_dxh, stride_dr,
             stride_drh, stride_dro, stride_droh, HAS_DRES: tl.constexpr,
             STORE_DRES: tl.constexpr, ACC: tl.constexpr, ALIGN: tl.constexpr,
             TILE: tl.constexpr):  # fmt: skip
    # dx plus the gradient arriving at the residual output, stored again as the residual's
    # gradient when its dtype differs from x's. dx has its own buffer, never dy's: dy may feed
    # another consumer (Liger #370).
    if HAS_DRES:
        dro = _at(DRES_OUT, head, r64, stride_dro, stride_droh, cols, ALIGN, TILE)
        dx += load_acc(dro, mask, ACC)
    store_as(_at(DX, head, r64, stride_dx, stride_dxh, cols, ALIGN, TILE), dx, mask)
    if STORE_DRES:
        store_as(_at(DRES, head, r64, stride_dr, stride_drh, cols, ALIGN, TILE), dx, mask)


# dW = sum(dy * x_hat) with x_hat as the weight multiplied it in the forward (XHAT_ROUND: Llama's
# rounding), dB = sum(dy); each program sums its own rows into an fp32 partial row, reduced later
# in a fixed order (no atomics: deterministic, Liger PR #950).


@triton.jit
def accumulate(dw, db, dy, xhat, XHAT_ROUND: tl.constexpr, HAS_W: tl.constexpr,
               HAS_B: tl.constexpr):  # fmt: skip
    # A tile's terms, kept in registers across the program's rows.
    if HAS_W:
        dw += dy * round_to(xhat, XHAT_ROUND)
    if HAS_B:
        db += dy
    return dw, db


@triton.jit
def add_partials(DW_PART, DB_PART, prow, cols, dy, xhat, mask, XHAT_ROUND: tl.constexpr,
                 HAS_W: tl.constexpr, HAS_B: tl.constexpr):  # fmt: skip
    # A looped row's chunk, added in place to this program's own partial rows (L2-resident; no
    # other program touches them, so no atomics and a fixed order).
    if HAS_W:
        part = tl.load(DW_PART + prow + cols, mask=mask, other=0.0)
        part += dy * round_to(xhat, XHAT_ROUND)
        tl.store(DW_PART + prow + cols, part, mask=mask)
    if HAS_B:
        part = tl.load(DB_PART + prow + cols, mask=mask, other=0.0) + dy
        tl.store(DB_PART + prow + cols, part, mask=mask)


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
