"""Argument checks and tensor plumbing shared by the RMSNorm and LayerNorm wrappers."""

from __future__ import annotations

import torch
import triton.language as tl

from normbench.kernels import interpreted  # defined before __init__ imports this module
from normbench.kernels.launch import check_n

_ACTIVATION_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
# CPU stand-in for the SM count: the interpreter runs programs one after another, so a few are
# enough to exercise the partial-sum reduction without slowing tests down.
_INTERPRETER_PROGRAMS = 4


def kernel_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a kernel writes for an output of `dtype`.

    Triton's interpreter casts fp32 to bf16 by truncation where the GPU rounds to nearest even,
    which would bias every bf16 result by half an ulp on CPU. Under the interpreter bf16 outputs
    are written in fp32 and rounded by torch (`finish`); compiled kernels write bf16 directly.
    """
    return torch.float32 if dtype == torch.bfloat16 and interpreted() else dtype


def finish(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t if t.dtype == dtype else t.to(dtype)


def acc_type(dtype: torch.dtype) -> tl.dtype:
    """Statistics and accumulators are fp32, except fp64 inputs (gradcheck) which stay fp64."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def acc_torch(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def as_rows(t: torch.Tensor, n: int) -> torch.Tensor:
    """(..., N) -> (M, N) view with unit column stride; the row stride may exceed N."""
    if t.stride(-1) != 1:
        t = t.contiguous()
    # reshape keeps a view (and the caller's row stride) whenever the leading dims collapse, and
    # copies otherwise; either way the column stride stays 1.
    return t.reshape(-1, n)


def check_activation(x: torch.Tensor, name: str = "x") -> int:
    if x.dtype not in _ACTIVATION_DTYPES:
        raise ValueError(f"{name} dtype {x.dtype} is not supported: use fp32, fp16 or bf16")
    if x.dim() < 1:
        raise ValueError(f"{name} must have a hidden (last) dimension")
    n = x.shape[-1]
    check_n(n)
    if not interpreted() and x.device.type != "cuda":
        raise ValueError(f"{name} is on {x.device}: the compiled kernels need CUDA tensors")
    return n


def check_param(p: torch.Tensor | None, x: torch.Tensor, n: int, name: str) -> None:
    if p is None:
        return
    if p.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {tuple(p.shape)}")
    if p.dtype not in (x.dtype, torch.float32):
        raise ValueError(f"{name} dtype {p.dtype} must match x ({x.dtype}) or be fp32")
    if p.device != x.device:
        raise ValueError(f"{name} is on {p.device} but x is on {x.device}")


def check_residual(r: torch.Tensor | None, x: torch.Tensor) -> None:
    if r is None:
        return
    if r.shape != x.shape:
        raise ValueError(f"residual shape {tuple(r.shape)} differs from x {tuple(x.shape)}")
    if r.dtype not in _ACTIVATION_DTYPES:
        raise ValueError(f"residual dtype {r.dtype} is not supported: use fp32, fp16 or bf16")
    if r.device != x.device:
        raise ValueError(f"residual is on {r.device} but x is on {x.device}")


def sm_count(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return _INTERPRETER_PROGRAMS


def grad_rows(dy: torch.Tensor | None, like: torch.Tensor, n: int) -> torch.Tensor:
    """Upstream gradient as (M, N) rows; a missing one (output unused) is zeros."""
    if dy is None:
        return torch.zeros(like.shape[0], n, dtype=like.dtype, device=like.device)
    return as_rows(dy, n)
