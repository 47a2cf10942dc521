"""Argument checks and tensor plumbing shared by the RMSNorm and LayerNorm wrappers.

The dtype contract (docs/numerics.md section 9): y is in x's dtype; the residual
output in `residual_dtype` (default: the residual's dtype, else x's); dx in x's dtype, the
residual's gradient in the residual's dtype, dW and dB each in its parameter's dtype, every one
rounded once from fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton.language as tl

from normbench.env import device_scope
from normbench.kernels import (  # defined before __init__ imports this module
    _jit,
    interpreted,
    interpreter_problem_here,
    triton_problem_here,
)
from normbench.kernels.launch import check_n

_ACTIVATION_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
_PARAM_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
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


def round_mode(dtype: torch.dtype, acc: torch.dtype) -> int:
    """The `_jit.round_to` mode that rounds an accumulator value to `dtype` (0: no rounding)."""
    if dtype == acc or dtype == torch.float64:
        return _jit.ROUND_NONE
    if dtype == torch.float16:
        return _jit.ROUND_FP16
    if dtype == torch.bfloat16:
        return _jit.ROUND_BF16_BITS if interpreted() else _jit.ROUND_BF16
    return _jit.ROUND_FP32  # fp32 under an fp64 accumulator


def as_heads(t: torch.Tensor, heads: int, n: int) -> torch.Tensor:
    """(..., H, N) -> (M, H, N) with unit column stride; H = 1 gives (M, 1, N)."""
    if t.stride(-1) != 1:
        t = t.contiguous()
    return t.reshape(-1, heads, n)


def strides(t: torch.Tensor) -> tuple[int, int]:
    """(row stride, head stride) of an (M, H, N) view."""
    return t.stride(0), t.stride(1)


def check_activation(x: torch.Tensor, name: str = "x") -> int:
    if x.dtype not in _ACTIVATION_DTYPES:
        raise ValueError(f"{name} dtype {x.dtype} is not supported: use fp32, fp16 or bf16")
    if x.dim() < 1:
        raise ValueError(f"{name} must have a hidden (last) dimension")
    n = x.shape[-1]
    check_n(n)
    if not interpreted() and x.device.type != "cuda":
        raise ValueError(f"{name} is on {x.device}: the compiled kernels need CUDA tensors")
    if triton_problem_here():
        raise RuntimeError(f"normbench Triton kernels unavailable: {triton_problem_here()}")
    if interpreted() and interpreter_problem_here():
        raise RuntimeError(f"normbench Triton kernels unavailable: {interpreter_problem_here()}")
    return n


def check_param(p: torch.Tensor | None, x: torch.Tensor, n: int, name: str) -> int:
    """Validate a weight or bias; returns its head count: 1 for (N,), H for a per-head (H, N)
    parameter (QK-norm), which needs x of shape (..., H, N)."""
    if p is None:
        return 1
    heads = 1
    if p.dim() == 2:
        heads = p.shape[0]
        if x.dim() < 2 or x.shape[-2] != heads or p.shape[1] != n:
            raise ValueError(
                f"a per-head {name} of shape {tuple(p.shape)} needs x of shape (..., {heads}, {n}),"
                f" got {tuple(x.shape)}"
            )
    elif p.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) or (heads, {n}), got {tuple(p.shape)}")
    allowed = (*_PARAM_DTYPES, torch.float64) if x.dtype == torch.float64 else _PARAM_DTYPES
    if p.dtype not in allowed:
        raise ValueError(f"{name} dtype {p.dtype} is not supported: use fp32, fp16 or bf16")
    if p.device != x.device:
        raise ValueError(f"{name} is on {p.device} but x is on {x.device}")
    return heads


def param_heads(x: torch.Tensor, n: int, weight, bias) -> int:
    hw = check_param(weight, x, n, "weight")
    hb = check_param(bias, x, n, "bias")
    if weight is not None and bias is not None and weight.shape != bias.shape:
        raise ValueError(
            f"weight {tuple(weight.shape)} and bias {tuple(bias.shape)} must have one shape"
        )
    return max(hw, hb)


def check_args(x, weight, bias, residual, residual_dtype):
    """Every check the public entry points share: (heads, the residual output's dtype or None,
    weight and bias made contiguous)."""
    n = check_activation(x)
    heads = param_heads(x, n, weight, bias)
    res_dtype = check_residual(residual, x, residual_dtype)
    weight = None if weight is None else weight.contiguous()
    bias = None if bias is None else bias.contiguous()
    return heads, res_dtype, weight, bias


def check_residual(
    r: torch.Tensor | None, x: torch.Tensor, residual_dtype: torch.dtype | None
) -> torch.dtype | None:
    """Validate the residual; returns the residual output's dtype, None when there is none."""
    if r is not None:
        if r.shape != x.shape:
            raise ValueError(f"residual shape {tuple(r.shape)} differs from x {tuple(x.shape)}")
        if r.dtype not in _ACTIVATION_DTYPES:
            raise ValueError(f"residual dtype {r.dtype} is not supported: use fp32, fp16 or bf16")
        if r.device != x.device:
            raise ValueError(f"residual is on {r.device} but x is on {x.device}")
    if residual_dtype is not None and residual_dtype not in _ACTIVATION_DTYPES:
        raise ValueError(f"residual_dtype {residual_dtype} is not supported: use fp32, fp16, bf16")
    out = residual_dtype if residual_dtype is not None else (None if r is None else r.dtype)
    if x.dtype == torch.float64 and torch.bfloat16 in (out, None if r is None else r.dtype):
        # fp64 is for gradcheck; its accumulators cannot round to bf16 exactly
        raise ValueError("with fp64 x the residual and residual_dtype must be fp64, fp32 or fp16")
    return out


def check_cast(cast: str) -> None:
    if cast not in ("fp32", "llama"):
        raise ValueError(f"cast={cast!r}: choose from fp32, llama")


def on_device(device: torch.device):
    """The context every launch runs in: `device` made current for a CUDA tensor. Triton
    launches on the current device and its current stream, whatever device the pointers are
    on, so cuda:1 tensors under a current cuda:0 would run on the wrong GPU (issue 21)."""
    return device_scope(str(device))


def sm_count(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return _INTERPRETER_PROGRAMS


def grad_heads(dy: torch.Tensor | None, like: torch.Tensor, heads: int, n: int) -> torch.Tensor:
    """Upstream gradient as (M, H, N); a missing one (output unused) is zeros."""
    if dy is None:
        return torch.zeros(like.shape, dtype=like.dtype, device=like.device)
    return as_heads(dy, heads, n)


@dataclass(frozen=True)
class Saved:
    """What forward leaves for backward beside the saved tensors, the one definition both
    passes share.

    The first saved tensor, s, is the one the forward normalized, exactly as stored: x, or the
    residual output (x + residual rounded once to its dtype). Backward rebuilds x_hat from s and
    the fp32 statistics, so its gradients are those of the function the forward computed; this
    records the dtype and shape each gradient goes back in.
    """

    x_shape: torch.Size
    x_dtype: torch.dtype
    residual_dtype: torch.dtype | None  # the residual input's dtype (its gradient's), or None
    weight_dtype: torch.dtype | None
    bias_dtype: torch.dtype | None
    weight_shape: tuple[int, ...] | None  # (N,) or (H, N): dW comes back in it
    bias_shape: tuple[int, ...] | None


def no_double_backward(ctx) -> None:
    """The kernels' backward is not itself differentiable: say so instead of returning
    gradients whose second-order terms are silently zero."""
    if torch.is_grad_enabled() and any(ctx.needs_input_grad):
        raise RuntimeError(
            "normbench's Triton kernels do not support double backward (create_graph=True): "
            "their backward is a fused kernel without a derivative; use another backend"
        )
