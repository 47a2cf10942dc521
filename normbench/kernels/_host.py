"""The host side both norm families share: the autograd forward and backward, with their buffers,
grids, kernel launches and what forward saves for backward.

RMSNorm and LayerNorm kernels take their arguments in one order (LayerNorm adds MEAN before RSTD
and RMSNorm the Gemma offset after the scalars), so one launcher serves both: `n_stats` per-row
statistic buffers are spliced in before the strides, `scalars` are the family's own runtime
scalars, `flags` its own constexprs. Each family's torch.autograd.Function is a thin call here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton

from normbench.kernels import _common as C
from normbench.kernels.launch import (
    bwd_config,
    bwd_grid,
    fwd_config,
    looped,
    partial_stride,
    vector_align,
)
from normbench.kernels.reduce import reduce_partials


def _head_stride(param: torch.Tensor | None) -> int:
    """Head stride of a per-head (H, N) parameter; 0 for (N,) (every head reads the same row)."""
    return param.stride(0) if param is not None and param.dim() == 2 else 0


def forward(
    ctx,
    kernel: triton.runtime.JITFunction,
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    residual: torch.Tensor | None,
    res_dtype: torch.dtype | None,
    heads: int,
    n_stats: int,
    scalars: Sequence[float],
    **flags: object,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The autograd forward of either norm: launch the forward kernel on (M, H, N) views of x and
    the residual, save for backward what it needs (with the `n_stats` fp32 statistics of M * H
    rows), and return y, or (y, the residual output), in x's shape. Launched on x's device."""
    with C.on_device(x.device):
        return _forward(ctx, kernel, x, weight, bias, residual, res_dtype, heads, n_stats,
                        scalars, **flags)  # fmt: skip


def _forward(ctx, kernel, x, weight, bias, residual, res_dtype, heads, n_stats, scalars, **flags):
    n = x.shape[-1]
    x3 = C.as_heads(x, heads, n)
    r3 = None if residual is None else C.as_heads(residual, heads, n)
    m = x3.shape[0]
    acc = C.acc_torch(x3.dtype)
    y = torch.empty(m, heads, n, dtype=C.kernel_dtype(x3.dtype), device=x3.device)
    stats = [torch.empty(m * heads, dtype=acc, device=x3.device) for _ in range(n_stats)]
    res_out = None
    if res_dtype is not None:
        res_out = torch.empty(m, heads, n, dtype=C.kernel_dtype(res_dtype), device=x3.device)
    if m > 0:
        r_arg = x3 if r3 is None else r3
        ro_arg = y if res_out is None else res_out
        strides = (*C.strides(x3), *C.strides(r_arg), *C.strides(y), *C.strides(ro_arg))
        # One vector width for every tensor: the narrowest dtype's 16 bytes (fp32 x beside a
        # bf16 residual needs 8-element alignment for the residual's 16-byte accesses).
        elem = min(t.element_size() for t in (x3, r_arg, y, ro_arg))
        align = vector_align(n, elem, *strides)
        cfg = fwd_config(n, x3.element_size(), align)
        param = weight if weight is not None else bias
        p_arg = x3 if param is None else param  # a never-read stand-in for a missing parameter
        kernel[(triton.cdiv(m, cfg.rows), heads)](
            x3,
            r_arg,
            y,
            ro_arg,
            p_arg if weight is None else weight,
            p_arg if bias is None else bias,
            *stats,
            *strides,
            _head_stride(param),
            m,
            n,
            *scalars,
            BLOCK=cfg.block,
            ROWS=cfg.rows,
            HAS_RES=r3 is not None,
            STORE_RES=res_out is not None,
            HAS_W=weight is not None,
            HAS_B=bias is not None,
            RES_ROUND=C.round_mode(res_dtype or acc, acc),
            ACC=C.acc_type(x3.dtype),
            ALIGN=align,
            LOOPED=looped(n),
            num_warps=cfg.num_warps,
            enable_fp_fusion=True,
            **flags,
        )
    y = C.finish(y, x3.dtype).view(x.shape)
    if res_out is None:
        _save(ctx, x, weight, bias, residual, x3, *stats)
        return y
    res_out = C.finish(res_out, res_dtype)
    _save(ctx, x, weight, bias, residual, res_out, *stats)
    return y, res_out.view(x.shape)


def backward(
    ctx,
    kernel: triton.runtime.JITFunction,
    dy: torch.Tensor | None,
    dres_out: torch.Tensor | None,
    scalars: Sequence[float] = (),
    **flags: object,
) -> tuple:
    """The matching autograd backward: the fused backward kernel and the partial-sum reduction
    on (M, H, N) views (a missing dy is zeros). dx comes back in x's dtype, the residual's
    gradient in its own, dW and dB each in its parameter's dtype. Launched on x's device."""
    C.no_double_backward(ctx)
    saved = ctx.saved_tensors
    with C.on_device(saved[0].device):
        return _backward(ctx, saved, kernel, dy, dres_out, scalars, **flags)


def _backward(ctx, saved_tensors, kernel, dy, dres_out, scalars, **flags) -> tuple:
    s3, weight, *stats = saved_tensors
    saved: C.Saved = ctx.saved
    m, heads, n = s3.shape
    dy3 = C.grad_heads(dy, s3, heads, n)
    dres3 = None if dres_out is None else C.as_heads(dres_out, heads, n)
    acc = C.acc_torch(saved.x_dtype)  # as in forward, whatever the stored residual's dtype
    dx = torch.empty(m, heads, n, dtype=C.kernel_dtype(saved.x_dtype), device=s3.device)
    # dx and the residual's gradient are one tensor unless their dtypes differ.
    split = saved.residual_dtype is not None and saved.residual_dtype != saved.x_dtype
    dres = None
    if split:
        res_kdtype = C.kernel_dtype(saved.residual_dtype)
        dres = torch.empty(m, heads, n, dtype=res_kdtype, device=dx.device)
    has_w, has_b = saved.weight_dtype is not None, saved.bias_dtype is not None
    sms = C.sm_count(s3.device)
    programs, rows_per_program = bwd_grid(m, n, s3.element_size(), sms, heads, split)
    if programs == 0:
        dw = (
            torch.zeros(saved.weight_shape, dtype=saved.weight_dtype, device=dx.device)
            if has_w
            else None
        )
        db = (
            torch.zeros(saved.bias_shape, dtype=saved.bias_dtype, device=dx.device)
            if has_b
            else None
        )
    else:
        cfg = bwd_config(n, s3.element_size(), split)
        stride_p = partial_stride(n)
        alloc = torch.zeros if looped(n) else torch.empty  # looped rows add into their partials
        part = alloc(2, heads, programs, stride_p, dtype=acc, device=s3.device)
        dres_arg = dy3 if dres3 is None else dres3
        dr_arg = dx if dres is None else dres
        strides = (
            *C.strides(dy3), *C.strides(s3), *C.strides(dx), *C.strides(dr_arg),
            *C.strides(dres_arg),
        )  # fmt: skip
        kernel[(programs, heads)](
            dy3,
            s3,
            weight if has_w else s3,
            *stats,
            dx,
            dr_arg,
            dres_arg,
            part[0],
            part[1],
            *strides,
            _head_stride(weight),
            stride_p,
            m,
            n,
            rows_per_program,
            *scalars,
            BLOCK=cfg.block,
            ROWS=cfg.rows,
            HAS_DRES=dres3 is not None,
            STORE_DRES=split,
            HAS_W=has_w,
            HAS_B=has_b,
            ACC=C.acc_type(saved.x_dtype),
            ALIGN=vector_align(n, min(t.element_size() for t in (dy3, s3, dx, dr_arg)), *strides),
            LOOPED=looped(n),
            num_warps=cfg.num_warps,
            enable_fp_fusion=True,
            **flags,
        )
        # One reduction launch for dW and dB, each rounded once from fp32 to its own dtype.
        dw, db = reduce_partials(part, n, saved.weight_dtype, saved.bias_dtype)
        dw = None if dw is None else dw.reshape(saved.weight_shape)
        db = None if db is None else db.reshape(saved.bias_shape)
    dx = C.finish(dx, saved.x_dtype)
    if saved.residual_dtype is not None:
        dres = dx if dres is None else C.finish(dres, saved.residual_dtype)
    return _grads_out(ctx, dx, dres, dw, db)


def _grads_out(ctx, dx, dres, dw, db) -> tuple:
    """autograd's return tuple: (dx, dW, dB, d residual, None for each further argument), with
    dx and the residual's gradient the same tensor object when their dtypes agree, so autograd
    sees it used twice and never lets x.grad and residual.grad share storage."""
    saved: C.Saved = ctx.saved
    dx_v = dx.view(saved.x_shape)
    dres_v = None if dres is None else (dx_v if dres is dx else dres.view(saved.x_shape))
    dw = dw if ctx.needs_input_grad[1] else None
    db = db if ctx.needs_input_grad[2] else None
    return (dx_v, dw, db, dres_v, *([None] * (len(ctx.needs_input_grad) - 4)))


def _save(ctx, x, weight, bias, residual, s3, *stats) -> None:
    """Save what backward needs: the tensor the forward normalized (`s3`: x, or the residual
    output as stored), the weight and the statistics, plus the dtypes of every gradient."""
    ctx.save_for_backward(s3, weight, *stats)
    ctx.saved = C.Saved(
        x.shape,
        x.dtype,
        None if residual is None else residual.dtype,
        None if weight is None else weight.dtype,
        None if bias is None else bias.dtype,
        None if weight is None else tuple(weight.shape),
        None if bias is None else tuple(bias.shape),
    )
    ctx.set_materialize_grads(False)
