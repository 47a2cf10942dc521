"""Fused RMSNorm, plain and with the residual add, forward and backward.

y = s * rsqrt(mean(s^2) + eps) * (offset + w) (+ b), in fp32, cast once at the end, where s is
x, or with a residual the residual output x + r rounded once to its dtype: the norm sees exactly
the residual stream the next layer gets, and backward recomputes from that same stored tensor
(docs/numerics.md section 9). offset=1 gives Gemma's (1 + w), computed in fp32
so a bf16 w = 2^-8 is not rounded away (docs/numerics.md trap 13). cast="llama" rounds x_hat to x's
dtype before the weight, as Hugging Face's LlamaRMSNorm and Liger's casting_mode="llama" do.

Rows up to 8192 wide live in registers, [ROWS, BLOCK] tiles in one pass; wider rows take each
kernel's LOOPED branch: one row per program, walked in column chunks.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from normbench.kernels import _common as C
from normbench.kernels import _host as H
from normbench.kernels import _jit as J
from normbench.kernels.launch import GRID_SIZED


@triton.jit
def _gain(W, head, stride_wh, cols, mask, offset, ACC: tl.constexpr):
    # (offset + w) in fp32: Gemma's 1 + w keeps a bf16 w = 2^-8 (docs/numerics.md trap 13).
    return J.load_param(W, head, stride_wh, cols, mask, ACC) + offset


@triton.jit(do_not_specialize=GRID_SIZED["fwd"])
def rms_fwd_kernel(
    X,
    R,  # residual in (unused unless HAS_RES)
    Y,
    RES_OUT,  # the residual output, x (+ r) rounded to its dtype (unused unless STORE_RES)
    W,
    B,
    RSTD,  # (M * H,) fp32, the only statistic backward needs
    stride_x,
    stride_xh,
    stride_r,
    stride_rh,
    stride_y,
    stride_yh,
    stride_ro,
    stride_roh,
    stride_wh,  # head stride of a per-head (H, N) weight and bias; 0 for (N,)
    M,
    N,
    eps,
    offset,
    BLOCK: tl.constexpr,  # LOOPED: the column chunk
    ROWS: tl.constexpr,  # LOOPED: always 1, one row per program
    HAS_RES: tl.constexpr,
    STORE_RES: tl.constexpr,
    HAS_W: tl.constexpr,
    HAS_B: tl.constexpr,
    RES_ROUND: tl.constexpr,
    XHAT_ROUND: tl.constexpr,  # 0, or cast="llama": round x_hat to x's dtype before the weight
    ACC: tl.constexpr,
    ALIGN: tl.constexpr,
    LOOPED: tl.constexpr,  # N > TILE_MAX_N: one row per program, walked in chunks
):
    N = J.aligned(N, ALIGN)
    if not LOOPED:
        head = tl.program_id(1).to(tl.int64)
        heads = tl.num_programs(1)
        rows, cols, row_mask, col_mask, mask, r64 = J.fwd_tile(M, N, BLOCK, ROWS)
        s = J.tile_input(X, R, RES_OUT, head, r64, cols, mask, stride_x, stride_xh, stride_r,
                         stride_rh, stride_ro, stride_roh, HAS_RES, STORE_RES, RES_ROUND, ACC,
                         ALIGN)  # fmt: skip
        # eps is an fp32 argument, inside the square root (DeepSpeed #581: an fp16 eps vanishes).
        rstd = tl.math.rsqrt(J.sum_axis(s * s, 1) / N + eps)
        y = J.round_to(s * rstd[:, None], XHAT_ROUND)
        if HAS_W:
            y = y * _gain(W, head, stride_wh, cols, col_mask, offset, ACC)[None, :]
        if HAS_B:
            y += J.load_param(B, head, stride_wh, cols, col_mask, ACC)[None, :]
        J.store_as(Y + J.tile_offs(head, r64, stride_y, stride_yh, cols, ALIGN), y, mask)
        tl.store(RSTD + rows * heads + head, rstd, mask=row_mask)
    else:
        # Rows wider than registers hold: pass 1 sums squares chunk by chunk (and writes the
        # residual output), pass 2 re-reads the row this program just touched (L1/L2-resident)
        # and writes y.
        row = tl.program_id(0).to(tl.int64)
        head = tl.program_id(1).to(tl.int64)
        heads = tl.num_programs(1)
        xrow = J.row_ptr(X, head, row, stride_x, stride_xh, ALIGN)
        rrow = J.row_ptr(R, head, row, stride_r, stride_rh, ALIGN)
        orow = J.row_ptr(RES_OUT, head, row, stride_ro, stride_roh, ALIGN)
        yrow = J.row_ptr(Y, head, row, stride_y, stride_yh, ALIGN)
        srow = orow if STORE_RES else xrow
        ssq = J.input_sum(xrow, rrow, orow, N, BLOCK, HAS_RES, STORE_RES, RES_ROUND, True, ACC)
        rstd = tl.math.rsqrt(ssq / N + eps)
        if STORE_RES:
            tl.debug_barrier()  # the residual output written above is what pass 2 reads
        for c0 in range(0, N, BLOCK):
            cols = c0 + tl.arange(0, BLOCK)
            mask = cols < N
            y = J.round_to(J.load_acc(srow + cols, mask, ACC) * rstd, XHAT_ROUND)
            if HAS_W:
                y = y * _gain(W, head, stride_wh, cols, mask, offset, ACC)
            if HAS_B:
                y += J.load_param(B, head, stride_wh, cols, mask, ACC)
            J.store_as(yrow + cols, y, mask)
        tl.store(RSTD + row * heads + head, rstd)


@triton.jit(do_not_specialize=GRID_SIZED["bwd"])
def rms_bwd_kernel(
    DY,
    S,  # the saved input: x, or the residual output
    W,
    RSTD,
    DX,
    DRES,  # the residual's gradient when its dtype differs from x's (unused unless STORE_DRES)
    DRES_OUT,  # gradient arriving at the residual output (unused unless HAS_DRES)
    DW_PART,  # (H, P, stride_p) fp32 partial dW, one row per program (LOOPED: zeroed, added to)
    DB_PART,  # (H, P, stride_p) fp32 partial dB (unused unless HAS_B)
    stride_dy,
    stride_dyh,
    stride_s,
    stride_sh,
    stride_dx,
    stride_dxh,
    stride_dr,
    stride_drh,
    stride_dro,
    stride_droh,
    stride_wh,
    stride_p,
    M,
    N,
    rows_per_program,
    offset,
    BLOCK: tl.constexpr,  # LOOPED: the column chunk
    ROWS: tl.constexpr,  # LOOPED: always 1
    HAS_DRES: tl.constexpr,
    STORE_DRES: tl.constexpr,
    HAS_W: tl.constexpr,
    HAS_B: tl.constexpr,
    XHAT_ROUND: tl.constexpr,
    ACC: tl.constexpr,
    ALIGN: tl.constexpr,
    LOOPED: tl.constexpr,  # N > TILE_MAX_N: one row per program, walked in chunks
):
    N = J.aligned(N, ALIGN)
    pid = tl.program_id(0)
    head = tl.program_id(1).to(tl.int64)
    heads = tl.num_programs(1)
    if not LOOPED:
        cols = tl.arange(0, BLOCK)
        col_mask = cols < N
        w = tl.full([BLOCK], 1.0, ACC)
        if HAS_W:
            w = _gain(W, head, stride_wh, cols, col_mask, offset, ACC)
        dw = tl.full([ROWS, BLOCK], 0.0, ACC)
        db = tl.full([ROWS, BLOCK], 0.0, ACC)
        row_start, row_end = J.program_rows(pid, rows_per_program, M)
        for r0 in range(row_start, row_end, ROWS):
            rows, row_mask, mask, r64 = J.tile_rows(r0, row_end, col_mask, ROWS)
            s_offs = J.tile_offs(head, r64, stride_s, stride_sh, cols, ALIGN)
            dy_offs = J.tile_offs(head, r64, stride_dy, stride_dyh, cols, ALIGN)
            s = J.load_acc(S + s_offs, mask, ACC)
            dy = J.load_acc(DY + dy_offs, mask, ACC)
            rstd = J.load_acc(RSTD + rows * heads + head, row_mask, ACC)[:, None]
            xhat = s * rstd
            g = dy * w[None, :]
            c = J.sum_axis(xhat * g, 1)[:, None] / N
            dx = (g - xhat * c) * rstd
            J.store_dx(dx, DX, DRES, DRES_OUT, head, r64, cols, mask, stride_dx, stride_dxh,
                       stride_dr, stride_drh, stride_dro, stride_droh, HAS_DRES, STORE_DRES, ACC,
                       ALIGN, True)  # fmt: skip
            dw, db = J.accumulate(dw, db, dy, xhat, XHAT_ROUND, HAS_W, HAS_B)
        # The padded columns up to stride_p hold exact zeros: every partial access is a full vector.
        J.store_partials(DW_PART, DB_PART, head, pid, stride_p, cols, dw, db, HAS_W, HAS_B)
    else:
        # Per row: pass 1 forms mean(x_hat * g) chunk by chunk; pass 2 re-reads the row
        # (cache-hot), writes dx and adds into this program's own partial dW row.
        prow = (head * tl.num_programs(0) + pid) * stride_p
        row_start, row_end = J.program_rows(pid, rows_per_program, M)
        for i in range(0, row_end - row_start):
            row = row_start + i  # a tensor in both modes (a range's own index is a Python int when
            r64 = row.to(tl.int64)  # interpreted)
            srow = J.row_ptr(S, head, r64, stride_s, stride_sh, ALIGN)
            dyrow = J.row_ptr(DY, head, r64, stride_dy, stride_dyh, ALIGN)
            rstd = tl.load(RSTD + row * heads + head).to(ACC)
            acc = tl.full([BLOCK], 0.0, ACC)
            for c0 in range(0, N, BLOCK):
                cols = c0 + tl.arange(0, BLOCK)
                mask = cols < N
                xhat = J.load_acc(srow + cols, mask, ACC) * rstd
                g = J.load_acc(dyrow + cols, mask, ACC)
                if HAS_W:
                    g = g * _gain(W, head, stride_wh, cols, mask, offset, ACC)
                acc += xhat * g
            c = J.sum_axis(acc, 0) / N
            for c0 in range(0, N, BLOCK):
                cols = c0 + tl.arange(0, BLOCK)
                mask = cols < N
                xhat = J.load_acc(srow + cols, mask, ACC) * rstd
                dy = J.load_acc(dyrow + cols, mask, ACC)
                g = dy
                if HAS_W:
                    g = dy * _gain(W, head, stride_wh, cols, mask, offset, ACC)
                dx = (g - xhat * c) * rstd
                J.store_dx(dx, DX, DRES, DRES_OUT, head, r64, cols, mask, stride_dx, stride_dxh,
                           stride_dr, stride_drh, stride_dro, stride_droh, HAS_DRES, STORE_DRES,
                           ACC, ALIGN, False)  # fmt: skip
                J.add_partials(DW_PART, DB_PART, prow, cols, dy, xhat, mask, XHAT_ROUND, HAS_W,
                               HAS_B)  # fmt: skip


def _xhat_round(x_dtype: torch.dtype, cast: str) -> int:
    return C.round_mode(x_dtype, C.acc_torch(x_dtype)) if cast == "llama" else 0


class RMSNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, residual, eps, offset, residual_dtype, cast, heads):
        ctx.offset, ctx.xhat_round = float(offset), _xhat_round(x.dtype, cast)
        # Saved: the tensor the forward normalized (x, or the residual output as stored) and the
        # fp32 rstd per row; nothing else (memory suite: ideal + 4 bytes per row).
        return H.forward(
            ctx, rms_fwd_kernel, x, weight, bias, residual, residual_dtype, heads,
            n_stats=1, scalars=(float(eps), ctx.offset), XHAT_ROUND=ctx.xhat_round,
        )  # fmt: skip

    @staticmethod
    def backward(ctx, dy, dres_out=None):
        return H.backward(
            ctx, rms_bwd_kernel, dy, dres_out, scalars=(ctx.offset,), XHAT_ROUND=ctx.xhat_round
        )


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    eps: float = 1e-6,
    residual: torch.Tensor | None = None,
    offset: float = 0.0,
    *,
    bias: torch.Tensor | None = None,
    residual_dtype: torch.dtype | None = None,
    cast: str = "fp32",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """RMSNorm over the last dim.

    weight, bias: (N,), (H, N) per head with x of shape (..., H, N) (QK-norm), or None; any of
    fp32/fp16/bf16 whatever x's dtype. With `residual` (or `residual_dtype`), returns
    (y, residual_out) where residual_out = x (+ residual) rounded once to `residual_dtype`
    (default: the residual's dtype) and y normalizes exactly that residual_out.
    cast: "fp32" (one rounding, at the end) or "llama" (x_hat rounded to x's dtype first).
    """
    heads, res_dtype, weight, bias = C.check_args(x, weight, bias, residual, residual_dtype)
    C.check_cast(cast)
    return RMSNormFunction.apply(x, weight, bias, residual, eps, offset, res_dtype, cast, heads)
