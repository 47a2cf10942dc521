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

import functools
import os
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["available", "interpreted", "layer_norm", "rms_norm", "triton_problem"]


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


def _major_minor(version: str) -> tuple[int, int]:
    """'3.6.0' -> (3, 6); '2.4.0rc1', '3.7.0+git1a2b' -> (2, 4), (3, 7)."""
    found = re.match(r"(\d+)\.(\d+)", version)
    return (int(found[1]), int(found[2])) if found else (0, 0)


# The oldest Triton the kernels are checked on (docs/performance.md, "The oldest releases tried"):
# 3.0's interpreter refuses them and 3.2's compiler API cannot build them ahead of time.
OLDEST_TRITON = (3, 3)


def triton_problem(triton_version: str) -> str | None:
    """Why this Triton release cannot be trusted with the kernels, or None."""
    if _major_minor(triton_version) < OLDEST_TRITON:
        return (
            f"Triton {triton_version} is older than 3.3, the oldest release normbench's kernels "
            "are checked on: upgrade to torch>=2.7, whose Triton is 3.3 or newer"
        )
    return None


@functools.cache
def triton_problem_here() -> str | None:
    """`triton_problem` for the installed Triton (None when triton is absent: the import below
    says so)."""
    try:
        import triton
    except ImportError:
        return None
    return triton_problem(triton.__version__)


def interpreter_problem(triton_version: str, numpy_version: str) -> str | None:
    """Why Triton's interpreter cannot run the kernels beside this numpy, or None.

    Before Triton 3.7 the interpreter turns a one-element array into a Python int when a tensor
    bounds a `range` (every backward kernel does); numpy 2.4 refuses that conversion ("only
    0-dimensional arrays can be converted to Python scalars"), so every call would fail. Triton
    3.7 squeezes the array first. Seen with Triton 3.6.0, the version some CUDA images ship.
    """
    if _major_minor(triton_version) < (3, 7) and _major_minor(numpy_version) >= (2, 4):
        return (
            f"Triton {triton_version}'s interpreter cannot run beside numpy {numpy_version} "
            "(numpy 2.4 refuses the array-to-int conversion it makes; Triton 3.7 fixed it): "
            "install triton>=3.7 or numpy<2.4 to run the kernels on CPU"
        )
    return None


@functools.cache
def interpreter_problem_here() -> str | None:
    """`interpreter_problem` for the installed Triton and numpy (None when triton is absent:
    the import below says so)."""
    try:
        import numpy
        import triton
    except ImportError:
        return None
    return interpreter_problem(triton.__version__, numpy.__version__)


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
    if triton_problem_here():
        return False, triton_problem_here()
    if interpreted():
        problem = interpreter_problem_here()
        if problem:
            return False, problem
        return True, "Triton interpreter (CPU): numerics only, never timed"
    import torch

    if not torch.cuda.is_available():
        return (
            False,
            "no CUDA device and TRITON_INTERPRET=0 is set: unset it to use the interpreter",
        )
    return True, f"compiled on {torch.cuda.get_device_name()}"
