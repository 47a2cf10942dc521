"""Fused RMSNorm, plain and with the residual add, forward and backward.

y = s * rsqrt(mean(s^2) + eps) * (offset + w) (+ b), in fp32, cast once at the end, where s is
x, or with a residual the residual output x + r rounded once to its dtype: the norm sees exactly
the residual stream the next layer gets, and backward recomputes from that same stored tensor
(docs/numerics.md, "The kernels' contract"). offset=1 gives Gemma's (1 + w), computed in fp32
so a bf16 w = 2^-8 is not rounded away (trap 13). cast="llama" rounds x_hat to x's dtype before
the weight, as Hugging Face's LlamaRMSNorm and Liger's casting_mode="llama" do.

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
    BLOCK: tl.constexpr,
    ROWS: tl.constexpr,
    HAS_RES: tl.constexpr,
    STORE_RES: tl.constexpr,
    HAS_W: tl.constexpr,
    HAS_B: tl.constexpr,
    RES_ROUND: tl.constexpr,
    XHAT_ROUND: tl.constexpr,  # 0, or cast="llama": round x_hat to x's dtype before the weight
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
    # int64 offsets: M * stride can pass 2^31 elements (Liger PR #804).
    r64 = rows.to(tl.int64)[:, None]
    # Upcast on load, before any product: squaring in fp16 overflows at |x| >= 256 (pytorch #133085)
    # and underflows near 1e-4. Padded lanes load 0 and so add exactly 0 to the sum (triton #9838).
    x_offs = head * _al(stride_xh, ALIGN) + r64 * _al(stride_x, ALIGN) + cols[None, :]
    s = tl.load(X + x_offs, mask=mask, other=0.0).to(ACC)
    if HAS_RES:
        r_offs = head * _al(stride_rh, ALIGN) + r64 * _al(stride_r, ALIGN) + cols[None, :]
        s += tl.load(R + r_offs, mask=mask, other=0.0).to(ACC)
    if STORE_RES:
        s = round_to(s, RES_ROUND)  # normalize what is stored, so backward sees the same s
        ro_offs = head * _al(stride_roh, ALIGN) + r64 * _al(stride_ro, ALIGN) + cols[None, :]
        tl.store(RES_OUT + ro_offs, s.to(RES_OUT.dtype.element_ty), mask=mask)
    # eps is an fp32 argument and stays inside the square root (DeepSpeed #581: fp16 eps vanishes).
    rstd = tl.math.rsqrt(sum_axis(s * s, 1) / N + eps)
    y = round_to(s * rstd[:, None], XHAT_ROUND)
    if HAS_W:
        w = tl.load(W + head * stride_wh + cols, mask=col_mask, other=0.0).to(ACC) + offset
        y = y * w[None, :]
    if HAS_B:
        y += tl.load(B + head * stride_wh + cols, mask=col_mask, other=0.0).to(ACC)[None, :]
    y_offs = head * _al(stride_yh, ALIGN) + r64 * _al(stride_y, ALIGN) + cols[None, :]
    tl.store(Y + y_offs, y.to(Y.dtype.element_ty), mask=mask)
    tl.store(RSTD + rows * heads + head, rstd, mask=row_mask)


@triton.jit
def rms_fwd_looped_kernel(
    X,
    R,
    Y,
    RES_OUT,
    W,
    B,
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
    offset,
    BLOCK: tl.constexpr,  # the column chunk
    ROWS: tl.constexpr,  # always 1: one row per program
    HAS_RES: tl.constexpr,
    STORE_RES: tl.constexpr,
    HAS_W: tl.constexpr,
    HAS_B: tl.constexpr,
    RES_ROUND: tl.constexpr,
    XHAT_ROUND: tl.constexpr,
    ACC: tl.constexpr,
    ALIGN: tl.constexpr,
):
    # Rows wider than registers hold: pass 1 sums squares chunk by chunk (and writes the residual
    # output), pass 2 re-reads the row this program just touched (L1/L2-resident) and writes y.
    N = _al(N, ALIGN)
    row = tl.program_id(0).to(tl.int64)
    head = tl.program_id(1).to(tl.int64)
    heads = tl.num_programs(1)
    xrow = _row(X, head, row, stride_x, stride_xh, ALIGN)
    rrow = _row(R, head, row, stride_r, stride_rh, ALIGN)
    orow = _row(RES_OUT, head, row, stride_ro, stride_roh, ALIGN)
    yrow = _row(Y, head, row, stride_y, stride_yh, ALIGN)
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
        acc += s * s
    rstd = tl.math.rsqrt(sum_axis(acc, 0) / N + eps)
    if STORE_RES:
        tl.debug_barrier()  # the residual output written above is what pass 2 reads
    for c0 in range(0, N, BLOCK):
        cols = c0 + tl.arange(0, BLOCK)
        mask = cols < N
        if STORE_RES:
            s = tl.load(orow + cols, mask=mask, other=0.0).to(ACC)
        else:
            s = tl.load(xrow + cols, mask=mask, other=0.0).to(ACC)
        y = round_to(s * rstd, XHAT_ROUND)
        if HAS_W:
            y = y * (tl.load(W + head * stride_wh + cols, mask=mask, other=0.0).to(ACC) + offset)
        if HAS_B:
            y += tl.load(B + head * stride_wh + cols, mask=mask, other=0.0).to(ACC)
        tl.store(yrow + cols, y.to(Y.dtype.element_ty), mask=mask)
    tl.store(RSTD + row * heads + head, rstd)


@triton.jit
def rms_bwd_kernel(
    DY,
    S,  # the saved input: x, or the residual output
    W,
    RSTD,
    DX,
    DRES,  # the residual's gradient when its dtype differs from x's (unused unless STORE_DRES)
    DRES_OUT,  # gradient arriving at the residual output (unused unless HAS_DRES)
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
    offset,
    BLOCK: tl.constexpr,
    ROWS: tl.constexpr,
    HAS_DRES: tl.constexpr,
    STORE_DRES: tl.constexpr,
    HAS_W: tl.constexpr,
    HAS_B: tl.constexpr,
    XHAT_ROUND: tl.constexpr,
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
        w = tl.load(W + head * stride_wh + cols, mask=col_mask, other=0.0).to(ACC) + offset
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
        rstd = tl.load(RSTD + rows * heads + head, mask=row_mask, other=0.0)[:, None].to(ACC)
        xhat = s * rstd
        g = dy * w[None, :]
        c = sum_axis(xhat * g, 1)[:, None] / N
        dx = (g - xhat * c) * rstd
        if HAS_DRES:
            dro = head * _al(stride_droh, ALIGN) + r64 * _al(stride_dro, ALIGN) + cols[None, :]
            dx += tl.load(DRES_OUT + dro, mask=mask, other=0.0).to(ACC)
        # dx goes to its own buffer, never into dy: dy may feed another consumer (Liger #370).
        dx_offs = head * _al(stride_dxh, ALIGN) + r64 * _al(stride_dx, ALIGN) + cols[None, :]
        tl.store(DX + dx_offs, dx.to(DX.dtype.element_ty), mask=mask)
        if STORE_DRES:
            dr_offs = head * _al(stride_drh, ALIGN) + r64 * _al(stride_dr, ALIGN) + cols[None, :]
            tl.store(DRES + dr_offs, dx.to(DRES.dtype.element_ty), mask=mask)
        if HAS_W:
            dw += dy * round_to(xhat, XHAT_ROUND)
        if HAS_B:
            db += dy
    # fp32 partial per program, summed later in a fixed order (no atomics, Liger PR #950). The
    # padded columns up to stride_p hold exact zeros, so every partial access is a full vector.
    store_partials(DW_PART, DB_PART, head, pid, stride_p, cols, dw, db, HAS_W, HAS_B)


@triton.jit
def rms_bwd_looped_kernel(
    DY,
    S,
    W,
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
    offset,
    BLOCK: tl.constexpr,
    ROWS: tl.constexpr,
    HAS_DRES: tl.constexpr,
    STORE_DRES: tl.constexpr,
    HAS_W: tl.constexpr,
    HAS_B: tl.constexpr,
    XHAT_ROUND: tl.constexpr,
    ACC: tl.constexpr,
    ALIGN: tl.constexpr,
):
    # Per row: pass 1 forms mean(x_hat * g) chunk by chunk; pass 2 re-reads the row (cache-hot),
    # writes dx and adds into this program's own partial dW row (L2-resident; no other program
    # touches it, so no atomics and a fixed order).
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
        rstd = tl.load(RSTD + row * heads + head).to(ACC)
        acc = tl.full([BLOCK], 0.0, ACC)
        for c0 in range(0, N, BLOCK):
            cols = c0 + tl.arange(0, BLOCK)
            mask = cols < N
            xhat = tl.load(srow + cols, mask=mask, other=0.0).to(ACC) * rstd
            g = tl.load(dyrow + cols, mask=mask, other=0.0).to(ACC)
            if HAS_W:
                w = tl.load(W + head * stride_wh + cols, mask=mask, other=0.0).to(ACC)
                g = g * (w + offset)
            acc += xhat * g
        c = sum_axis(acc, 0) / N
        for c0 in range(0, N, BLOCK):
            cols = c0 + tl.arange(0, BLOCK)
            mask = cols < N
            xhat = tl.load(srow + cols, mask=mask, other=0.0).to(ACC) * rstd
            dy = tl.load(dyrow + cols, mask=mask, other=0.0).to(ACC)
            g = dy
            if HAS_W:
                w = tl.load(W + head * stride_wh + cols, mask=mask, other=0.0).to(ACC)
                g = dy * (w + offset)
            dx = (g - xhat * c) * rstd
            if HAS_DRES:
                dro = _row(DRES_OUT, head, r64, stride_dro, stride_droh, ALIGN)
                dx += tl.load(dro + cols, mask=mask, other=0.0).to(ACC)
            dxrow = _row(DX, head, r64, stride_dx, stride_dxh, ALIGN)
            tl.store(dxrow + cols, dx.to(DX.dtype.element_ty), mask=mask)
            if STORE_DRES:
                drrow = _row(DRES, head, r64, stride_dr, stride_drh, ALIGN)
                tl.store(drrow + cols, dx.to(DRES.dtype.element_ty), mask=mask)
            if HAS_W:
                part = tl.load(DW_PART + prow + cols, mask=mask, other=0.0)
                part += dy * round_to(xhat, XHAT_ROUND)
                tl.store(DW_PART + prow + cols, part, mask=mask)
            if HAS_B:
                part = tl.load(DB_PART + prow + cols, mask=mask, other=0.0) + dy
                tl.store(DB_PART + prow + cols, part, mask=mask)


_FWD = (rms_fwd_kernel, rms_fwd_looped_kernel)
_BWD = (rms_bwd_kernel, rms_bwd_looped_kernel)


def _xhat_round(x_dtype: torch.dtype, cast: str) -> int:
    return C.round_mode(x_dtype, C.acc_torch(x_dtype)) if cast == "llama" else 0


class RMSNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, residual, eps, offset, residual_dtype, cast, heads):
        x3, r3 = H.as_rows(x, residual, heads)
        xr = _xhat_round(x.dtype, cast)
        y, res_out, (rstd,) = H.forward(
            _FWD, x3, weight, bias, r3, residual_dtype, 1, (float(eps), float(offset)),
            XHAT_ROUND=xr,
        )  # fmt: skip
        # Saved: the tensor the forward normalized (x, or the residual output as stored) and the
        # fp32 rstd per row; nothing else (memory suite: ideal + 4 bytes per row).
        H.save(ctx, x, weight, bias, residual, x3 if res_out is None else res_out, rstd)
        ctx.offset, ctx.xhat_round = float(offset), xr
        return H.outputs(x, y, res_out)

    @staticmethod
    def backward(ctx, dy, dres_out=None):
        (s3, weight, rstd), dy3, dres3 = H.grads_in(ctx, dy, dres_out)
        grads = H.backward(
            _BWD, dy3, s3, weight, (rstd,), dres3, ctx.saved, (ctx.offset,),
            XHAT_ROUND=ctx.xhat_round,
        )  # fmt: skip
        return H.grads_out(ctx, *grads, n_extra=5)


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
