"""Fused LayerNorm, plain and with the residual add, forward and backward.

y = (s - mean) * rstd * w + b, s = x, or with a residual the residual output x + r rounded once
to its dtype (the tensor backward recomputes from: docs/numerics.md, "The kernels' contract");
mean, variance and rstd in fp32, cast once. The variance is two-pass over the row: E[x^2] - E[x]^2
goes negative for x = 1e4 + N(0, 1) in fp32 (docs/numerics.md section 1, trap 4).

Rows up to 8192 wide live in registers (one pass); wider rows take the looped kernels.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from normbench.kernels import _common as C
from normbench.kernels import _host as H
from normbench.kernels._jit import _al, _row, round_to, store_partials, sum_axis


@triton.jit
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
    BLOCK: tl.constexpr,
    ROWS: tl.constexpr,
    HAS_RES: tl.constexpr,
    STORE_RES: tl.constexpr,
    HAS_W: tl.constexpr,
    HAS_B: tl.constexpr,
    RES_ROUND: tl.constexpr,
    ACC: tl.constexpr,
    ALIGN: tl.constexpr,
):
    N = _al(N, ALIGN)
    head = tl.program_id(1).to(tl.int64)
    heads = tl.num_programs(1)
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, BLOCK)
    row_mask = rows < M
    col_mask = cols < N
    mask = row_mask[:, None] & col_mask[None, :]
    r64 = rows.to(tl.int64)[:, None]  # int64 offsets (Liger PR #804)
    x_offs = head * _al(stride_xh, ALIGN) + r64 * _al(stride_x, ALIGN) + cols[None, :]
    s = tl.load(X + x_offs, mask=mask, other=0.0).to(ACC)
    if HAS_RES:
        r_offs = head * _al(stride_rh, ALIGN) + r64 * _al(stride_r, ALIGN) + cols[None, :]
        s += tl.load(R + r_offs, mask=mask, other=0.0).to(ACC)
    if STORE_RES:
        s = round_to(s, RES_ROUND)  # normalize what is stored, so backward sees the same s
        ro_offs = head * _al(stride_roh, ALIGN) + r64 * _al(stride_ro, ALIGN) + cols[None, :]
        tl.store(RES_OUT + ro_offs, s.to(RES_OUT.dtype.element_ty), mask=mask)
    mean = sum_axis(s, 1) / N
    # Padded lanes would contribute mean^2 each to the variance: zero them (triton #9838).
    d = tl.where(mask, s - mean[:, None], 0.0)
    # Corrected two-pass (Chan, Golub & LeVeque): the fp32 mean is off by up to half an ulp of |x|
    # (5e-4 at x = 1e4, trap 4), a common shift of every d. sum(d) / N measures it; both sums read
    # the same registers, so they reduce side by side. A constant row then gives d = 0 exactly.
    shift = sum_axis(d, 1) / N
    var = sum_axis(d * d, 1) / N - shift * shift
    var = tl.where(var < 0.0, 0.0, var)  # rounding can dip below 0; a NaN stays NaN
    rstd = tl.math.rsqrt(var + eps)  # eps inside the root, in fp32 (DeepSpeed #581)
    y = (d - shift[:, None]) * rstd[:, None]
    if HAS_W:
        y = y * tl.load(W + head * stride_wh + cols, mask=col_mask, other=0.0).to(ACC)[None, :]
    if HAS_B:
        y += tl.load(B + head * stride_wh + cols, mask=col_mask, other=0.0).to(ACC)[None, :]
    y_offs = head * _al(stride_yh, ALIGN) + r64 * _al(stride_y, ALIGN) + cols[None, :]
    tl.store(Y + y_offs, y.to(Y.dtype.element_ty), mask=mask)
    tl.store(MEAN + rows * heads + head, mean + shift, mask=row_mask)
    tl.store(RSTD + rows * heads + head, rstd, mask=row_mask)


@triton.jit
def ln_fwd_looped_kernel(
    X,
    R,
    Y,
    RES_OUT,
    W,
    B,
    MEAN,
    RSTD,
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
    BLOCK: tl.constexpr,  # the column chunk
    ROWS: tl.constexpr,  # always 1: one row per program
    HAS_RES: tl.constexpr,
    STORE_RES: tl.constexpr,
    HAS_W: tl.constexpr,
    HAS_B: tl.constexpr,
    RES_ROUND: tl.constexpr,
    ACC: tl.constexpr,
    ALIGN: tl.constexpr,
):
    # Three passes over one row, the last two cache-hot: the mean; the centred sums (the same
    # corrected two-pass variance as the tile kernel); the output.
    N = _al(N, ALIGN)
    row = tl.program_id(0).to(tl.int64)
    head = tl.program_id(1).to(tl.int64)
    heads = tl.num_programs(1)
    xrow = _row(X, head, row, stride_x, stride_xh, ALIGN)
    rrow = _row(R, head, row, stride_r, stride_rh, ALIGN)
    orow = _row(RES_OUT, head, row, stride_ro, stride_roh, ALIGN)
    yrow = _row(Y, head, row, stride_y, stride_yh, ALIGN)
    srow = orow if STORE_RES else xrow
    acc = tl.full([BLOCK], 0.0, ACC)
    for c0 in range(0, N, BLOCK):
        cols = c0 + tl.arange(0, BLOCK)
        mask = cols < N
        s = tl.load(xrow + cols, mask=mask, other=0.0).to(ACC)
        if HAS_RES:
            s += tl.load(rrow + cols, mask=mask, other=0.0).to(ACC)
        if STORE_RES:
            s = round_to(s, RES_ROUND)
            tl.store(orow + cols, s.to(RES_OUT.dtype.element_ty), mask=mask)
        acc += s
    mean = sum_axis(acc, 0) / N
    if STORE_RES:
        tl.debug_barrier()  # the residual output written above is what passes 2 and 3 read
    acc_d = tl.full([BLOCK], 0.0, ACC)
    acc_dd = tl.full([BLOCK], 0.0, ACC)
    for c0 in range(0, N, BLOCK):
        cols = c0 + tl.arange(0, BLOCK)
        mask = cols < N
        d = tl.where(mask, tl.load(srow + cols, mask=mask, other=0.0).to(ACC) - mean, 0.0)
        acc_d += d
        acc_dd += d * d
    shift = sum_axis(acc_d, 0) / N
    var = sum_axis(acc_dd, 0) / N - shift * shift
    var = tl.where(var < 0.0, 0.0, var)
    rstd = tl.math.rsqrt(var + eps)
    mean = mean + shift
    for c0 in range(0, N, BLOCK):
        cols = c0 + tl.arange(0, BLOCK)
        mask = cols < N
        y = (tl.load(srow + cols, mask=mask, other=0.0).to(ACC) - mean) * rstd
        if HAS_W:
            y = y * tl.load(W + head * stride_wh + cols, mask=mask, other=0.0).to(ACC)
        if HAS_B:
            y += tl.load(B + head * stride_wh + cols, mask=mask, other=0.0).to(ACC)
        tl.store(yrow + cols, y.to(Y.dtype.element_ty), mask=mask)
    tl.store(MEAN + row * heads + head, mean)
    tl.store(RSTD + row * heads + head, rstd)


@triton.jit
def ln_bwd_kernel(
    DY,
    S,  # the saved input: x, or the residual output
    W,
    MEAN,
    RSTD,
    DX,
    DRES,  # the residual's gradient when its dtype differs from x's (unused unless STORE_DRES)
    DRES_OUT,
    DW_PART,  # (H, P, stride_p) fp32 partial dW, one row per program
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
    BLOCK: tl.constexpr,
    ROWS: tl.constexpr,
    HAS_DRES: tl.constexpr,
    STORE_DRES: tl.constexpr,
    HAS_W: tl.constexpr,
    HAS_B: tl.constexpr,
    ACC: tl.constexpr,
    ALIGN: tl.constexpr,
):
    N = _al(N, ALIGN)
    pid = tl.program_id(0)
    head = tl.program_id(1).to(tl.int64)
    heads = tl.num_programs(1)
    cols = tl.arange(0, BLOCK)
    col_mask = cols < N
    w = tl.full([BLOCK], 1.0, ACC)
    if HAS_W:
        w = tl.load(W + head * stride_wh + cols, mask=col_mask, other=0.0).to(ACC)
    dw = tl.full([ROWS, BLOCK], 0.0, ACC)
    db = tl.full([ROWS, BLOCK], 0.0, ACC)
    row_start = pid * rows_per_program
    row_end = tl.minimum(row_start + rows_per_program, M)
    for r0 in range(row_start, row_end, ROWS):
        rows = r0 + tl.arange(0, ROWS)
        row_mask = rows < row_end
        mask = row_mask[:, None] & col_mask[None, :]
        r64 = rows.to(tl.int64)[:, None]
        s_offs = head * _al(stride_sh, ALIGN) + r64 * _al(stride_s, ALIGN) + cols[None, :]
        dy_offs = head * _al(stride_dyh, ALIGN) + r64 * _al(stride_dy, ALIGN) + cols[None, :]
        s = tl.load(S + s_offs, mask=mask, other=0.0).to(ACC)
        dy = tl.load(DY + dy_offs, mask=mask, other=0.0).to(ACC)
        stat = rows * heads + head
        mean = tl.load(MEAN + stat, mask=row_mask, other=0.0)[:, None].to(ACC)
        rstd = tl.load(RSTD + stat, mask=row_mask, other=0.0)[:, None].to(ACC)
        # Recompute xhat from s with the forward's shift correction (the saved fp32 mean is itself
        # rounded); mean(xhat * g) is expanded so that the three row sums are independent.
        d = tl.where(mask, s - mean, 0.0)
        g = dy * w[None, :]
        shift = sum_axis(d, 1)[:, None] / N
        c2 = sum_axis(g, 1)[:, None] / N
        c1 = rstd * (sum_axis(d * g, 1)[:, None] / N - shift * c2)  # mean(xhat * g)
        xhat = tl.where(mask, (d - shift) * rstd, 0.0)
        dx = (g - (xhat * c1 + c2)) * rstd
        if HAS_DRES:
            dro = head * _al(stride_droh, ALIGN) + r64 * _al(stride_dro, ALIGN) + cols[None, :]
            dx += tl.load(DRES_OUT + dro, mask=mask, other=0.0).to(ACC)
        # Own buffer for dx: dy is never written (Liger #370).
        dx_offs = head * _al(stride_dxh, ALIGN) + r64 * _al(stride_dx, ALIGN) + cols[None, :]
        tl.store(DX + dx_offs, dx.to(DX.dtype.element_ty), mask=mask)
        if STORE_DRES:
            dr_offs = head * _al(stride_drh, ALIGN) + r64 * _al(stride_dr, ALIGN) + cols[None, :]
            tl.store(DRES + dr_offs, dx.to(DRES.dtype.element_ty), mask=mask)
        if HAS_W:
            dw += dy * xhat
        if HAS_B:
            db += dy
    # fp32 partials, reduced in a fixed order by the second kernel (deterministic, Liger PR #950);
    # the padding up to stride_p is written as exact zeros so partial accesses are full vectors.
    store_partials(DW_PART, DB_PART, head, pid, stride_p, cols, dw, db, HAS_W, HAS_B)


@triton.jit
def ln_bwd_looped_kernel(
    DY,
    S,
    W,
    MEAN,
    RSTD,
    DX,
    DRES,
    DRES_OUT,
    DW_PART,  # zero-initialized: each row adds its chunk in place
    DB_PART,
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
    BLOCK: tl.constexpr,
    ROWS: tl.constexpr,
    HAS_DRES: tl.constexpr,
    STORE_DRES: tl.constexpr,
    HAS_W: tl.constexpr,
    HAS_B: tl.constexpr,
    ACC: tl.constexpr,
    ALIGN: tl.constexpr,
):
    # Per row: pass 1 forms the three row sums chunk by chunk; pass 2 re-reads the row
    # (cache-hot), writes dx and adds into this program's own partial rows (see rmsnorm).
    N = _al(N, ALIGN)
    pid = tl.program_id(0)
    head = tl.program_id(1).to(tl.int64)
    heads = tl.num_programs(1)
    prow = (head * tl.num_programs(0) + pid) * stride_p
    row_start = pid * rows_per_program
    row_end = tl.minimum(row_start + rows_per_program, M)
    for i in range(0, row_end - row_start):
        row = row_start + i  # a tensor in both modes (a range's own index is a Python int when
        r64 = row.to(tl.int64)  # interpreted)
        srow = _row(S, head, r64, stride_s, stride_sh, ALIGN)
        dyrow = _row(DY, head, r64, stride_dy, stride_dyh, ALIGN)
        mean = tl.load(MEAN + row * heads + head).to(ACC)
        rstd = tl.load(RSTD + row * heads + head).to(ACC)
        acc_d = tl.full([BLOCK], 0.0, ACC)
        acc_g = tl.full([BLOCK], 0.0, ACC)
        acc_dg = tl.full([BLOCK], 0.0, ACC)
        for c0 in range(0, N, BLOCK):
            cols = c0 + tl.arange(0, BLOCK)
            mask = cols < N
            d = tl.where(mask, tl.load(srow + cols, mask=mask, other=0.0).to(ACC) - mean, 0.0)
            g = tl.load(dyrow + cols, mask=mask, other=0.0).to(ACC)
            if HAS_W:
                g = g * tl.load(W + head * stride_wh + cols, mask=mask, other=0.0).to(ACC)
            acc_d += d
            acc_g += g
            acc_dg += d * g
        shift = sum_axis(acc_d, 0) / N
        c2 = sum_axis(acc_g, 0) / N
        c1 = rstd * (sum_axis(acc_dg, 0) / N - shift * c2)
        for c0 in range(0, N, BLOCK):
            cols = c0 + tl.arange(0, BLOCK)
            mask = cols < N
            s = tl.load(srow + cols, mask=mask, other=0.0).to(ACC)
            xhat = tl.where(mask, (s - mean - shift) * rstd, 0.0)
            dy = tl.load(dyrow + cols, mask=mask, other=0.0).to(ACC)
            g = dy
            if HAS_W:
                g = dy * tl.load(W + head * stride_wh + cols, mask=mask, other=0.0).to(ACC)
            dx = (g - (xhat * c1 + c2)) * rstd
            if HAS_DRES:
                dro = _row(DRES_OUT, head, r64, stride_dro, stride_droh, ALIGN)
                dx += tl.load(dro + cols, mask=mask, other=0.0).to(ACC)
            dxrow = _row(DX, head, r64, stride_dx, stride_dxh, ALIGN)
            tl.store(dxrow + cols, dx.to(DX.dtype.element_ty), mask=mask)
            if STORE_DRES:
                drrow = _row(DRES, head, r64, stride_dr, stride_drh, ALIGN)
                tl.store(drrow + cols, dx.to(DRES.dtype.element_ty), mask=mask)
            if HAS_W:
                part = tl.load(DW_PART + prow + cols, mask=mask, other=0.0) + dy * xhat
                tl.store(DW_PART + prow + cols, part, mask=mask)
            if HAS_B:
                part = tl.load(DB_PART + prow + cols, mask=mask, other=0.0) + dy
                tl.store(DB_PART + prow + cols, part, mask=mask)


_FWD = (ln_fwd_kernel, ln_fwd_looped_kernel)
_BWD = (ln_bwd_kernel, ln_bwd_looped_kernel)


class LayerNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, residual, eps, residual_dtype, heads):
        x3, r3 = H.as_rows(x, residual, heads)
        y, res_out, (mean, rstd) = H.forward(
            _FWD, x3, weight, bias, r3, residual_dtype, 2, (float(eps),)
        )
        # Saved: the tensor the forward normalized (x, or the residual output as stored) and fp32
        # mean and rstd per row; the bias is not needed by backward, only its dtype.
        H.save(ctx, x, weight, bias, residual, x3 if res_out is None else res_out, mean, rstd)
        return H.outputs(x, y, res_out)

    @staticmethod
    def backward(ctx, dy, dres_out=None):
        (s3, weight, mean, rstd), dy3, dres3 = H.grads_in(ctx, dy, dres_out)
        grads = H.backward(_BWD, dy3, s3, weight, (mean, rstd), dres3, ctx.saved)
        return H.grads_out(ctx, *grads, n_extra=3)


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
