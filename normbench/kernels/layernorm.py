"""Fused LayerNorm, plain and with the residual add, forward and backward.

y = (s - mean) * rstd * w + b, s = x, or with a residual the residual output x + r rounded once
to its dtype (the tensor backward recomputes from: docs/numerics.md section 9);
mean, variance and rstd in fp32, cast once. The variance is two-pass over the row: E[x^2] - E[x]^2
goes negative for x = 1e4 + N(0, 1) in fp32 (docs/numerics.md section 1, trap 4).

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


@triton.jit(do_not_specialize=GRID_SIZED["fwd"])
def ln_fwd_kernel(
    X,
    R,
    Y,
    RES_OUT,
    W,
    B,
    MEAN,  # (M * H,) fp32
    RSTD,  # (M * H,) fp32
    stride_x,
    stride_xh,
    stride_r,
    stride_rh,
    stride_y,
    stride_yh,
    stride_ro,
    stride_roh,
    stride_wh,
    M,
    N,
    eps,
    BLOCK: tl.constexpr,  # LOOPED: the column chunk
    ROWS: tl.constexpr,  # LOOPED: always 1, one row per program
    HAS_RES: tl.constexpr,
    STORE_RES: tl.constexpr,
    HAS_W: tl.constexpr,
    HAS_B: tl.constexpr,
    RES_ROUND: tl.constexpr,
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
        mean = J.sum_axis(s, 1) / N
        # Padded lanes would contribute mean^2 each to the variance: zero them (triton #9838).
        d = tl.where(mask, s - mean[:, None], 0.0)
        # Corrected two-pass (Chan, Golub & LeVeque): the fp32 mean is off by up to half an ulp of
        # |x| (5e-4 at x = 1e4, docs/numerics.md trap 4), a common shift of every d. sum(d) / N
        # measures it; both sums read the same registers, so they reduce side by side. A constant
        # row then gives d = 0 exactly.
        shift = J.sum_axis(d, 1) / N
        var = J.sum_axis(d * d, 1) / N - shift * shift
        var = tl.where(var < 0.0, 0.0, var)  # rounding can dip below 0; a NaN stays NaN
        rstd = tl.math.rsqrt(var + eps)  # eps inside the root, in fp32 (DeepSpeed #581)
        y = (d - shift[:, None]) * rstd[:, None]
        if HAS_W:
            y = y * J.load_param(W, head, stride_wh, cols, col_mask, ACC)[None, :]
        if HAS_B:
            y += J.load_param(B, head, stride_wh, cols, col_mask, ACC)[None, :]
        J.store_as(Y + J.tile_offs(head, r64, stride_y, stride_yh, cols, ALIGN), y, mask)
        tl.store(MEAN + rows * heads + head, mean + shift, mask=row_mask)
        tl.store(RSTD + rows * heads + head, rstd, mask=row_mask)
    else:
        # Three passes over one row, the last two cache-hot: the mean; the centred sums (the same
        # corrected two-pass variance as the tile); the output.
        row = tl.program_id(0).to(tl.int64)
        head = tl.program_id(1).to(tl.int64)
        heads = tl.num_programs(1)
        xrow = J.row_ptr(X, head, row, stride_x, stride_xh, ALIGN)
        rrow = J.row_ptr(R, head, row, stride_r, stride_rh, ALIGN)
        orow = J.row_ptr(RES_OUT, head, row, stride_ro, stride_roh, ALIGN)
        yrow = J.row_ptr(Y, head, row, stride_y, stride_yh, ALIGN)
        srow = orow if STORE_RES else xrow
        total = J.input_sum(xrow, rrow, orow, N, BLOCK, HAS_RES, STORE_RES, RES_ROUND, False, ACC)
        mean = total / N
        if STORE_RES:
            tl.debug_barrier()  # the residual output written above is what passes 2 and 3 read
        acc_d = tl.full([BLOCK], 0.0, ACC)
        acc_dd = tl.full([BLOCK], 0.0, ACC)
        for c0 in range(0, N, BLOCK):
            cols = c0 + tl.arange(0, BLOCK)
            mask = cols < N
            d = tl.where(mask, J.load_acc(srow + cols, mask, ACC) - mean, 0.0)
            acc_d += d
            acc_dd += d * d
        shift = J.sum_axis(acc_d, 0) / N
        var = J.sum_axis(acc_dd, 0) / N - shift * shift
        var = tl.where(var < 0.0, 0.0, var)
        rstd = tl.math.rsqrt(var + eps)
        mean = mean + shift
        for c0 in range(0, N, BLOCK):
            cols = c0 + tl.arange(0, BLOCK)
            mask = cols < N
            y = (J.load_acc(srow + cols, mask, ACC) - mean) * rstd
            if HAS_W:
                y = y * J.load_param(W, head, stride_wh, cols, mask, ACC)
            if HAS_B:
                y += J.load_param(B, head, stride_wh, cols, mask, ACC)
            J.store_as(yrow + cols, y, mask)
        tl.store(MEAN + row * heads + head, mean)
        tl.store(RSTD + row * heads + head, rstd)


@triton.jit(do_not_specialize=GRID_SIZED["bwd"])
def ln_bwd_kernel(
    DY,
    S,  # the saved input: x, or the residual output
    W,
    MEAN,
    RSTD,
    DX,
    DRES,  # the residual's gradient when its dtype differs from x's (unused unless STORE_DRES)
    DRES_OUT,
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
    BLOCK: tl.constexpr,  # LOOPED: the column chunk
    ROWS: tl.constexpr,  # LOOPED: always 1
    HAS_DRES: tl.constexpr,
    STORE_DRES: tl.constexpr,
    HAS_W: tl.constexpr,
    HAS_B: tl.constexpr,
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
            w = J.load_param(W, head, stride_wh, cols, col_mask, ACC)
        dw = tl.full([ROWS, BLOCK], 0.0, ACC)
        db = tl.full([ROWS, BLOCK], 0.0, ACC)
        row_start, row_end = J.program_rows(pid, rows_per_program, M)
        for r0 in range(row_start, row_end, ROWS):
            rows, row_mask, mask, r64 = J.tile_rows(r0, row_end, col_mask, ROWS)
            s_offs = J.tile_offs(head, r64, stride_s, stride_sh, cols, ALIGN)
            dy_offs = J.tile_offs(head, r64, stride_dy, stride_dyh, cols, ALIGN)
            s = J.load_acc(S + s_offs, mask, ACC)
            dy = J.load_acc(DY + dy_offs, mask, ACC)
            stat = rows * heads + head
            mean = J.load_acc(MEAN + stat, row_mask, ACC)[:, None]
            rstd = J.load_acc(RSTD + stat, row_mask, ACC)[:, None]
            # Recompute xhat from s with the forward's shift correction (the saved fp32 mean is
            # itself rounded); mean(xhat * g) is expanded so that the three row sums are
            # independent.
            d = tl.where(mask, s - mean, 0.0)
            g = dy * w[None, :]
            shift = J.sum_axis(d, 1)[:, None] / N
            c2 = J.sum_axis(g, 1)[:, None] / N
            c1 = rstd * (J.sum_axis(d * g, 1)[:, None] / N - shift * c2)  # mean(xhat * g)
            xhat = tl.where(mask, (d - shift) * rstd, 0.0)
            dx = (g - (xhat * c1 + c2)) * rstd
            J.store_dx(dx, DX, DRES, DRES_OUT, head, r64, cols, mask, stride_dx, stride_dxh,
                       stride_dr, stride_drh, stride_dro, stride_droh, HAS_DRES, STORE_DRES, ACC,
                       ALIGN, True)  # fmt: skip
            dw, db = J.accumulate(dw, db, dy, xhat, J.NO_ROUND, HAS_W, HAS_B)
        # The padding up to stride_p is written as exact zeros so partial accesses are full vectors.
        J.store_partials(DW_PART, DB_PART, head, pid, stride_p, cols, dw, db, HAS_W, HAS_B)
    else:
        # Per row: pass 1 forms the three row sums chunk by chunk; pass 2 re-reads the row
        # (cache-hot), writes dx and adds into this program's own partial rows.
        prow = (head * tl.num_programs(0) + pid) * stride_p
        row_start, row_end = J.program_rows(pid, rows_per_program, M)
        for i in range(0, row_end - row_start):
            row = row_start + i  # a tensor in both modes (a range's own index is a Python int when
            r64 = row.to(tl.int64)  # interpreted)
            srow = J.row_ptr(S, head, r64, stride_s, stride_sh, ALIGN)
            dyrow = J.row_ptr(DY, head, r64, stride_dy, stride_dyh, ALIGN)
            mean = tl.load(MEAN + row * heads + head).to(ACC)
            rstd = tl.load(RSTD + row * heads + head).to(ACC)
            acc_d = tl.full([BLOCK], 0.0, ACC)
            acc_g = tl.full([BLOCK], 0.0, ACC)
            acc_dg = tl.full([BLOCK], 0.0, ACC)
            for c0 in range(0, N, BLOCK):
                cols = c0 + tl.arange(0, BLOCK)
                mask = cols < N
                d = tl.where(mask, J.load_acc(srow + cols, mask, ACC) - mean, 0.0)
                g = J.load_acc(dyrow + cols, mask, ACC)
                if HAS_W:
                    g = g * J.load_param(W, head, stride_wh, cols, mask, ACC)
                acc_d += d
                acc_g += g
                acc_dg += d * g
            shift = J.sum_axis(acc_d, 0) / N
            c2 = J.sum_axis(acc_g, 0) / N
            c1 = rstd * (J.sum_axis(acc_dg, 0) / N - shift * c2)
            for c0 in range(0, N, BLOCK):
                cols = c0 + tl.arange(0, BLOCK)
                mask = cols < N
                s = J.load_acc(srow + cols, mask, ACC)
                xhat = tl.where(mask, (s - mean - shift) * rstd, 0.0)
                dy = J.load_acc(dyrow + cols, mask, ACC)
                g = dy
                if HAS_W:
                    g = dy * J.load_param(W, head, stride_wh, cols, mask, ACC)
                dx = (g - (xhat * c1 + c2)) * rstd
                J.store_dx(dx, DX, DRES, DRES_OUT, head, r64, cols, mask, stride_dx, stride_dxh,
                           stride_dr, stride_drh, stride_dro, stride_droh, HAS_DRES, STORE_DRES,
                           ACC, ALIGN, False)  # fmt: skip
                J.add_partials(
                    DW_PART, DB_PART, prow, cols, dy, xhat, mask, J.NO_ROUND, HAS_W, HAS_B
                )


class LayerNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, residual, eps, residual_dtype, heads):
        # Saved: the tensor the forward normalized (x, or the residual output as stored) and fp32
        # mean and rstd per row; the bias is not needed by backward, only its dtype.
        return H.forward(
            ctx, ln_fwd_kernel, x, weight, bias, residual, residual_dtype, heads,
            n_stats=2, scalars=(float(eps),),
        )  # fmt: skip

    @staticmethod
    def backward(ctx, dy, dres_out=None):
        return H.backward(ctx, ln_bwd_kernel, dy, dres_out)


def layer_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float = 1e-5,
    residual: torch.Tensor | None = None,
    *,
    residual_dtype: torch.dtype | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """LayerNorm over the last dim.

    weight, bias: (N,), (H, N) per head with x of shape (..., H, N), or None; any of
    fp32/fp16/bf16 whatever x's dtype. With `residual` (or `residual_dtype`), returns
    (y, residual_out) where residual_out = x (+ residual) rounded once to `residual_dtype`
    (default: the residual's dtype) and y normalizes exactly that residual_out.
    """
    heads, res_dtype, weight, bias = C.check_args(x, weight, bias, residual, residual_dtype)
    return LayerNormFunction.apply(x, weight, bias, residual, eps, res_dtype, heads)
