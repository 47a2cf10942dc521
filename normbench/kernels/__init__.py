"""normbench's fused Triton normalization kernels: RMSNorm and LayerNorm, plain and residual-add.

    from normbench.kernels import rms_norm, layer_norm, available
    y = rms_norm(x, weight, eps=1e-6)                       # Gemma: offset=1.0
    y, residual_out = layer_norm(x, weight, bias, residual=r)
    y, residual_out = rms_norm(x, w, residual=r, residual_dtype=torch.float32)  # fp32 stream
    q = rms_norm(q, w_heads)                                 # q (..., H, D), per-head w (H, D)
    y = rms_norm(x, None, cast="llama", bias=b)              # no weight, a bias, Llama rounding

Without a CUDA device the kernels run in Triton's interpreter on CPU tensors: the numbers are
real, the speed is not (never time them). Importing this package never fails: when triton cannot
be imported, `available()` says why and the entry points raise RuntimeError with that reason.
Rows up to 8192 wide are normalized in registers in one pass, wider rows (up to 262,144) by
looped kernels over column chunks; wider still is refused with a ValueError. The backward is not
differentiable again: double backward (create_graph=True) raises a RuntimeError that says so.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["available", "interpreted", "layer_norm", "rms_norm"]


def _use_interpreter_without_gpu() -> None:
    # Triton decides interpreter vs compiler when each @triton.jit decorator runs, so this must
    # happen before the kernel modules below are imported. An explicit TRITON_INTERPRET=0 is
    # respected: the audit's compile worker needs the real compiler on a machine without a GPU.
    try:
        import torch
    except ImportError:
        return
    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")


_use_interpreter_without_gpu()


def interpreted() -> bool:
    """True when the kernels run in Triton's CPU interpreter (numerics only)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


_UNAVAILABLE: str | None = None
try:
    from normbench.kernels.layernorm import layer_norm
    from normbench.kernels.rmsnorm import rms_norm
except ImportError as exc:  # no triton wheel for this platform, or a broken install
    _UNAVAILABLE = f"triton cannot be imported ({exc})"

    def rms_norm(  # type: ignore[misc]
        x: torch.Tensor,
        weight: torch.Tensor | None,
        eps: float = 1e-6,
        residual: torch.Tensor | None = None,
        offset: float = 0.0,
        **options: object,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        raise RuntimeError(f"normbench Triton kernels unavailable: {_UNAVAILABLE}")

    def layer_norm(  # type: ignore[misc]
        x: torch.Tensor,
        weight: torch.Tensor | None,
        bias: torch.Tensor | None,
        eps: float = 1e-5,
        residual: torch.Tensor | None = None,
        **options: object,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        raise RuntimeError(f"normbench Triton kernels unavailable: {_UNAVAILABLE}")


def available() -> tuple[bool, str]:
    """(usable, how): compiled on a named GPU, interpreted on CPU, or why not at all."""
    if _UNAVAILABLE is not None:
        return False, _UNAVAILABLE
    if interpreted():
        return True, "Triton interpreter (CPU): numerics only, never timed"
    import torch

    if not torch.cuda.is_available():
        return (
            False,
            "no CUDA device and TRITON_INTERPRET=0 is set: unset it to use the interpreter",
        )
    return True, f"compiled on {torch.cuda.get_device_name()}"
