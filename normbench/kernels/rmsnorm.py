"""Fused RMSNorm, plain and with the residual add, forward and backward.

y = s * rsqrt(mean(s^2) + eps) * (offset + w), s = x (+ residual), in fp32, cast once at the end.
offset=1 gives Gemma's (1 + w), computed in fp32 so a bf16 w = 2^-8 is not rounded away (trap 13).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from normbench.kernels import _common as C
from normbench.kernels._jit import sum_axis
from normbench.kernels.launch import (
    bwd_config,
    bwd_grid,
    fwd_config,
    partial_stride,
    vector_align,
)
from normbench.kernels.reduce import reduce_partials


@triton.jit
def rms_fwd_kernel(
    X,
    R,  # residual in (unused unless HAS_RES)
    Y,
    RES_OUT,  # s rounded to the residual dtype (unused unless HAS_RES)
    W,
    RSTD,  # (M,) fp32, the only statistic backward needs
    stride_x,
    stride_r,
    stride_y,
    stride_ro,
    M,
    N,
    eps,
    offset,
    BLOCK: tl.constexpr,
    ROWS: tl.constexpr,
    HAS_RES: tl.constexpr,
    ACC: tl.constexpr,
    ALIGN: tl.constexpr,
):
    # ALIGN divides N and every stride (checked by the wrapper); restating them as multiples of it
    # lets the compiler prove 16-byte alignment when the JIT's divisible-by-16 test cannot (N=1000).
    N = N // ALIGN * ALIGN
    stride_x = stride_x // ALIGN * ALIGN
    stride_r = stride_r // ALIGN * ALIGN
    stride_y = stride_y // ALIGN * ALIGN
    stride_ro = stride_ro // ALIGN * ALIGN
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, BLOCK)
    row_mask = rows < M
    col_mask = cols < N
    mask = row_mask[:, None] & col_mask[None, :]
    # int64 row offsets: M * stride can pass 2^31 elements (Liger PR #804).
    r64 = rows.to(tl.int64)[:, None]
    # Upcast on load, before any product: squaring in fp16 overflows at |x| >= 256 (pytorch #133085)
    # and underflows near 1e-4. Padded lanes load 0 and so add exactly 0 to the sum (triton #9838).
    s = tl.load(X + r64 * stride_x + cols[None, :], mask=mask, other=0.0).to(ACC)
    if HAS_RES:
        s += tl.load(R + r64 * stride_r + cols[None, :], mask=mask, other=0.0).to(ACC)
        tl.store(
            RES_OUT + r64 * stride_ro + cols[None, :], s.to(RES_OUT.dtype.element_ty), mask=mask
        )
    # eps is an fp32 argument and stays inside the square root (DeepSpeed #581: fp16 eps vanishes).
    mean_sq = sum_axis(s * s, 1) / N
    rstd = tl.math.rsqrt(mean_sq + eps)
    w = tl.load(W + cols, mask=col_mask, other=0.0).to(ACC) + offset
    y = s * rstd[:, None] * w[None, :]
    tl.store(Y + r64 * stride_y + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)
    tl.store(RSTD + rows, rstd, mask=row_mask)


@triton.jit
def rms_bwd_kernel(
    DY,
    S,  # the saved input: x, or the residual output for the add variant
    W,
    RSTD,
    DX,
    DRES_OUT,  # gradient arriving at the residual output (unused unless HAS_DRES)
    DW_PART,  # (P, stride_p) fp32 partial dW, one row per program
    stride_dy,
    stride_s,
    stride_dx,
    stride_dro,
    stride_p,
    M,
    N,
    rows_per_program,
    offset,
    BLOCK: tl.constexpr,
    ROWS: tl.constexpr,
    HAS_DRES: tl.constexpr,
    ACC: tl.constexpr,
    ALIGN: tl.constexpr,
):
    N = N // ALIGN * ALIGN  # see rms_fwd_kernel
    stride_dy = stride_dy // ALIGN * ALIGN
    stride_s = stride_s // ALIGN * ALIGN
    stride_dx = stride_dx // ALIGN * ALIGN
    stride_dro = stride_dro // ALIGN * ALIGN
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    col_mask = cols < N
    w = tl.load(W + cols, mask=col_mask, other=0.0).to(ACC) + offset
    dw = tl.full([ROWS, BLOCK], 0.0, ACC)
    row_start = pid * rows_per_program
    row_end = tl.minimum(row_start + rows_per_program, M)
    for r0 in range(row_start, row_end, ROWS):
        rows = r0 + tl.arange(0, ROWS)
        row_mask = rows < row_end
        mask = row_mask[:, None] & col_mask[None, :]
        r64 = rows.to(tl.int64)[:, None]
        s = tl.load(S + r64 * stride_s + cols[None, :], mask=mask, other=0.0).to(ACC)
        dy = tl.load(DY + r64 * stride_dy + cols[None, :], mask=mask, other=0.0).to(ACC)
        rstd = tl.load(RSTD + rows, mask=row_mask, other=0.0)[:, None].to(ACC)
        xhat = s * rstd
        g = dy * w[None, :]
        c = sum_axis(xhat * g, 1)[:, None] / N
        dx = (g - xhat * c) * rstd
        if HAS_DRES:
            dx += tl.load(DRES_OUT + r64 * stride_dro + cols[None, :], mask=mask, other=0.0).to(ACC)
        # dx goes to its own buffer, never into dy: dy may feed another consumer (Liger #370).
        tl.store(DX + r64 * stride_dx + cols[None, :], dx.to(DX.dtype.element_ty), mask=mask)
        dw += dy * xhat
    # fp32 partial per program, summed later in a fixed order (no atomics, Liger PR #950). The
    # padded columns up to stride_p hold exact zeros, so every partial access is a full vector.
    prow = DW_PART + pid.to(tl.int64) * stride_p + cols
    tl.store(prow, sum_axis(dw, 0), mask=cols < stride_p)


def _forward(x2, weight, residual2, eps, offset, res_dtype):
    m, n = x2.shape
    y = torch.empty(m, n, dtype=C.kernel_dtype(x2.dtype), device=x2.device)
    rstd = torch.empty(m, dtype=C.acc_torch(x2.dtype), device=x2.device)
    res_out = None
    if residual2 is not None:
        res_out = torch.empty(m, n, dtype=C.kernel_dtype(res_dtype), device=x2.device)
    if m > 0:
        r_arg = x2 if residual2 is None else residual2
        ro_arg = y if res_out is None else res_out
        strides = (x2.stride(0), r_arg.stride(0), y.stride(0), ro_arg.stride(0))
        align = vector_align(n, x2.element_size(), *strides)
        cfg = fwd_config(n, x2.element_size(), align)
        rms_fwd_kernel[(triton.cdiv(m, cfg.rows),)](
            x2,
            r_arg,
            y,
            ro_arg,
            weight,
            rstd,
            *strides,
            m,
            n,
            eps,
            offset,
            BLOCK=cfg.block,
            ROWS=cfg.rows,
            HAS_RES=residual2 is not None,
            ACC=C.acc_type(x2.dtype),
            ALIGN=align,
            num_warps=cfg.num_warps,
            enable_fp_fusion=True,
        )
    res_out = None if res_out is None else C.finish(res_out, res_dtype)
    return C.finish(y, x2.dtype), res_out, rstd


def _backward(dy2, s2, weight, rstd, dres2, offset, dx_dtype):
    m, n = s2.shape
    dx = torch.empty(m, n, dtype=C.kernel_dtype(dx_dtype), device=s2.device)
    acc = C.acc_torch(s2.dtype)
    programs, rows_per_program = bwd_grid(m, n, s2.element_size(), C.sm_count(s2.device))
    if programs == 0:
        return C.finish(dx, dx_dtype), torch.zeros(n, dtype=weight.dtype, device=weight.device)
    cfg = bwd_config(n, s2.element_size())
    stride_p = partial_stride(n)
    part = torch.empty(1, programs, stride_p, dtype=acc, device=s2.device)
    dres_arg = dy2 if dres2 is None else dres2
    rms_bwd_kernel[(programs,)](
        dy2,
        s2,
        weight,
        rstd,
        dx,
        dres_arg,
        part,
        dy2.stride(0),
        s2.stride(0),
        dx.stride(0),
        dres_arg.stride(0),
        stride_p,
        m,
        n,
        rows_per_program,
        offset,
        BLOCK=cfg.block,
        ROWS=cfg.rows,
        HAS_DRES=dres2 is not None,
        ACC=C.acc_type(s2.dtype),
        ALIGN=vector_align(
            n, s2.element_size(), dy2.stride(0), s2.stride(0), dx.stride(0), dres_arg.stride(0)
        ),
        num_warps=cfg.num_warps,
        enable_fp_fusion=True,
    )
    return C.finish(dx, dx_dtype), reduce_partials(part, n, weight.dtype)[0]


class RMSNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, residual, eps, offset):
        n = x.shape[-1]
        x2 = C.as_rows(x, n)
        r2 = None if residual is None else C.as_rows(residual, n)
        res_dtype = None if residual is None else residual.dtype
        y, res_out, rstd = _forward(x2, weight, r2, float(eps), float(offset), res_dtype)
        # Saved: the normalized input (x, or the residual output that backward recomputes from)
        # and the fp32 rstd per row; nothing else (memory suite: ideal + 4 bytes per row).
        ctx.save_for_backward(x2 if res_out is None else res_out, weight, rstd)
        ctx.offset = float(offset)
        ctx.x_shape = x.shape
        ctx.x_dtype = x.dtype
        ctx.res_dtype = res_dtype
        ctx.set_materialize_grads(False)
        if res_out is None:
            return y.view(x.shape)
        return y.view(x.shape), res_out.view(x.shape)

    @staticmethod
    def backward(ctx, dy, dres_out=None):
        s2, weight, rstd = ctx.saved_tensors
        n = s2.shape[1]
        dy2 = C.grad_rows(dy, s2, n)
        dres2 = None if dres_out is None else C.as_rows(dres_out, n)
        # With the residual in a wider dtype, the shared gradient is produced in that dtype.
        dx_dtype = ctx.x_dtype if ctx.res_dtype is None else ctx.res_dtype
        dx, dw = _backward(dy2, s2, weight, rstd, dres2, ctx.offset, dx_dtype)
        dx = dx.view(ctx.x_shape)
        dres = None
        if ctx.res_dtype is not None:
            # d(x + r) = dx for both; one tensor serves both inputs, as in flash-attention.
            dres = dx
            dx = dx if ctx.x_dtype == dx.dtype else dx.to(ctx.x_dtype)
        dw = dw if ctx.needs_input_grad[1] else None
        return dx, dw, dres, None, None


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    eps: float = 1e-6,
    residual: torch.Tensor | None = None,
    offset: float = 0.0,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """RMSNorm over the last dim; with `residual`, returns (y, residual_out = x + residual)."""
    n = C.check_activation(x)
    C.check_param(weight, x, n, "weight")
    C.check_residual(residual, x)
    return RMSNormFunction.apply(x, weight.contiguous(), residual, eps, offset)
