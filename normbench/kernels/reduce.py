"""Second backward stage: sum the per-program fp32 partials of dW (and dB) in a fixed order.

No atomics: each output column is owned by one program, which walks the partial rows in the same
order every run, so dW and dB are bitwise reproducible (docs/numerics.md trap 10). Each
sum is rounded once, from fp32 straight to its own parameter's dtype (a bf16 weight beside an
fp32 bias must not drag dB through bf16).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from normbench.kernels import _common as C
from normbench.kernels._jit import sum_axis
from normbench.kernels.launch import GRID_SIZED, reduce_config, vector_align


@triton.jit(do_not_specialize=GRID_SIZED["reduce"])
def reduce_partials_kernel(
    PART,  # (2, H, P, stride_p) fp32 partial sums of dW and dB
    OUT0,  # (H, N) in the first reduced parameter's dtype
    OUT1,  # (H, N) in the second one's (unused with one output)
    P,
    N,
    stride_p,
    first,  # the partials of OUT0: 0 (dW), or 1 (dB of a layer without weight)
    BLOCK_N: tl.constexpr,
    BLOCK_P: tl.constexpr,
    ACC: tl.constexpr,
    ALIGN: tl.constexpr,
):
    N = N // ALIGN * ALIGN  # ALIGN divides N: lets the dW store be a full vector
    pid = tl.program_id(0)
    head = tl.program_id(1).to(tl.int64)
    which = tl.program_id(2)  # 0: OUT0, 1: OUT1
    cols = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    # Partial rows are padded to stride_p (a multiple of 16) with exact zeros: load them whole.
    load_mask = cols < stride_p
    heads = tl.num_programs(1)
    base = PART + ((first + which) * heads + head) * P * stride_p
    acc = tl.full([BLOCK_P, BLOCK_N], 0.0, ACC)
    for p0 in range(0, P, BLOCK_P):
        prow = p0 + tl.arange(0, BLOCK_P)
        mask = (prow < P)[:, None] & load_mask[None, :]
        offs = prow.to(tl.int64)[:, None] * stride_p + cols[None, :]
        acc += tl.load(base + offs, mask=mask, other=0.0).to(ACC)
    total = sum_axis(acc, 0)
    if which == 0:
        tl.store(OUT0 + head * N + cols, total.to(OUT0.dtype.element_ty), mask=cols < N)
    else:
        tl.store(OUT1 + head * N + cols, total.to(OUT1.dtype.element_ty), mask=cols < N)


def reduce_partials(
    partials: torch.Tensor,
    n: int,
    w_dtype: torch.dtype | None,
    b_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(2, H, P, stride) partials (dW, dB) -> ((H, N) dW in `w_dtype`, (H, N) dB in `b_dtype`);
    a None dtype means that parameter does not exist and its sum is not formed."""
    _, heads, programs, stride_p = partials.shape
    wanted = [(i, dt) for i, dt in enumerate((w_dtype, b_dtype)) if dt is not None]
    if not wanted:
        return None, None
    outs = [
        torch.empty(heads, n, dtype=C.kernel_dtype(dt), device=partials.device) for _, dt in wanted
    ]
    elem = min(o.element_size() for o in outs)
    cfg = reduce_config(n, elem)
    grid = (triton.cdiv(n, cfg.block_n), heads, len(wanted))
    reduce_partials_kernel[grid](
        partials,
        outs[0],
        outs[-1],
        programs,
        n,
        stride_p,
        wanted[0][0],
        BLOCK_N=cfg.block_n,
        BLOCK_P=cfg.block_p,
        ACC=tl.float64 if partials.dtype == torch.float64 else tl.float32,
        ALIGN=vector_align(n, elem),
        num_warps=cfg.num_warps,
        enable_fp_fusion=True,
    )
    done = {i: C.finish(o, dt) for (i, dt), o in zip(wanted, outs)}
    return done.get(0), done.get(1)
