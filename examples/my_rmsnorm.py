"""A user kernel as a normbench plugin: RMSNorm and fused residual-add + RMSNorm, written with
torch.linalg.vector_norm instead of the usual pow/mean.

    normbench list --plugin examples/my_rmsnorm.py
    normbench speed --plugin examples/my_rmsnorm.py --backend eager,my_rmsnorm --dim 4096 \\
        --variant rmsnorm
    normbench stability --fp16 --plugin examples/my_rmsnorm.py

normbench looks in this file for `BACKENDS`, then `BACKEND`, then functions named after variants
(`rmsnorm`, `add_rmsnorm`, ...). Each function takes the variant's arguments by name
(`normbench list` shows them) and returns the variant's outputs. Declaring the semantics lets the
stability suite compare against the matching fp64 reference.
"""

import torch

from normbench.backends.base import backend_from_functions
from normbench.variants.base import Semantics


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # ||x||_2 with dtype=float32 upcasts before squaring, so fp16 squares cannot overflow
    # (the pytorch #133085 trap); mean(x^2) = ||x||^2 / N; eps inside the square root.
    n = x.shape[-1]
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=torch.float32)
    rstd = torch.rsqrt(norm.square() / n + eps)
    # Normalize and weight in fp32, cast once at the end.
    return (x.float() * rstd * weight.float()).to(x.dtype)


def add_rmsnorm(
    x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    # Normalize the fp32 sum; return the residual stream rounded to the input dtype.
    s = x.float() + residual.float()
    return rmsnorm(s, weight, eps).to(x.dtype), s.to(residual.dtype)


BACKEND = backend_from_functions(
    "my_rmsnorm",
    {"rmsnorm": rmsnorm, "add_rmsnorm": add_rmsnorm},
    description="example plugin: RMSNorm through torch.linalg.vector_norm",
    semantics=Semantics(eps="inside", cast="fp32", residual="fp32"),
)
