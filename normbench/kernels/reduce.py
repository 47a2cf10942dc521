"""Second backward stage: sum the per-program fp32 partials of dW (and dB) in a fixed order.

No atomics: each output column is owned by one program, which walks the partial rows in the same
order every run, so dW and dB are bitwise reproducible (NUMERICS.md section 2, trap 10).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from normbench.kernels import _common as C
from normbench.kernels._jit import sum_axis
from normbench.kernels.launch import reduce_config, vector_align


@triton.jit
def reduce_partials_kernel(
    PART,  # (NUM_OUT, P, stride_p) fp32 partial sums
    OUT,  # (NUM_OUT, N) in the parameter dtype
    P,
    N,
    stride_p,
    BLOCK_N: tl.constexpr,
    BLOCK_P: tl.constexpr,
    ACC: tl.constexpr,
    ALIGN: tl.constexpr,
):
    N = N // ALIGN * ALIGN  # ALIGN divides N: lets the dW store be a full vector
    pid = tl.program_id(0)
    which = tl.program_id(1).to(tl.int64)  # 0: dW, 1: dB
    cols = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    # Partial rows are padded to stride_p (a multiple of 16) with exact zeros: load them whole.
    load_mask = cols < stride_p
    base = PART + which * P * stride_p
    acc = tl.full([BLOCK_P, BLOCK_N], 0.0, ACC)
    for p0 in range(0, P, BLOCK_P):
        prow = p0 + tl.arange(0, BLOCK_P)
        mask = (prow < P)[:, None] & load_mask[None, :]
        offs = prow.to(tl.int64)[:, None] * stride_p + cols[None, :]
        acc += tl.load(base + offs, mask=mask, other=0.0).to(ACC)
    total = sum_axis(acc, 0)
    tl.store(OUT + which * N + cols, total.to(OUT.dtype.element_ty), mask=cols < N)


def reduce_partials(partials: torch.Tensor, n: int, out_dtype: torch.dtype) -> torch.Tensor:
    """(NUM_OUT, P, stride) partials -> (NUM_OUT, N) sums in `out_dtype`."""
    num_out, programs, stride_p = partials.shape
    out = torch.empty(num_out, n, dtype=C.kernel_dtype(out_dtype), device=partials.device)
    cfg = reduce_config(n, out.element_size())
    grid = (triton.cdiv(n, cfg.block_n), num_out)
    reduce_partials_kernel[grid](
        partials,
        out,
        programs,
        n,
        stride_p,
        BLOCK_N=cfg.block_n,
        BLOCK_P=cfg.block_p,
        ACC=tl.float64 if partials.dtype == torch.float64 else tl.float32,
        ALIGN=vector_align(n, out.element_size()),
        num_warps=cfg.num_warps,
        enable_fp_fusion=True,
    )
    return C.finish(out, out_dtype)
