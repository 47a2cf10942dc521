"""The formulas as model code writes them (upcast, reduce, rsqrt, cast, weight).

No `from __future__ import annotations` here: torch.jit.script reads these annotations.
The same functions are scripted by the torchscript backend and compiled by the compile backend.
"""

import torch

from normbench.backends.base import Backend
from normbench.variants.base import Semantics

# Llama-style: the normalized value is rounded to the input dtype before the weight multiply.
LLAMA = Semantics(eps="inside", cast="llama", residual="rounded")


def layernorm(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> torch.Tensor:
    h = x.float()
    mean = h.mean(-1, keepdim=True)
    d = h - mean
    var = d.pow(2).mean(-1, keepdim=True)
    return (d * torch.rsqrt(var + eps)).to(x.dtype) * weight + bias


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # As in Llama's modeling code: upcast first, so fp16 squares cannot overflow.
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def batchnorm(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> torch.Tensor:
    h = x.float().reshape(-1, x.shape[-1])
    d = h - h.mean(0)
    var = d.pow(2).mean(0)
    return ((d * torch.rsqrt(var + eps)).to(x.dtype) * weight + bias).reshape(x.shape)


def groupnorm(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> torch.Tensor:
    n = x.shape[-1]
    groups = 32  # gcd(n, 32), written so TorchScript can compile it
    while n % groups != 0:
        groups = groups // 2
    h = x.float().reshape(-1, groups, n // groups)
    d = h - h.mean(-1, keepdim=True)
    var = d.pow(2).mean(-1, keepdim=True)
    return (d * torch.rsqrt(var + eps)).to(x.dtype).reshape(x.shape) * weight + bias


def instancenorm(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> torch.Tensor:
    h = x.float()
    d = h - h.mean(1, keepdim=True)
    var = d.pow(2).mean(1, keepdim=True)
    return (d * torch.rsqrt(var + eps)).to(x.dtype) * weight + bias


def dyt(
    x: torch.Tensor, alpha: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    # As in the DyT paper's reference module.
    return torch.tanh(alpha * x) * weight + bias


def add_layernorm(
    x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    s = x + residual
    return layernorm(s, weight, bias, eps), s


def add_rmsnorm(
    x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    s = x + residual
    return rmsnorm(s, weight, eps), s


FUNCTIONS = {
    "layernorm": layernorm,
    "rmsnorm": rmsnorm,
    "batchnorm": batchnorm,
    "groupnorm": groupnorm,
    "instancenorm": instancenorm,
    "dyt": dyt,
    "add_layernorm": add_layernorm,
    "add_rmsnorm": add_rmsnorm,
}


class CompositeBackend(Backend):
    name = "composite"
    description = (
        "the formula as model code writes it (Llama-style RMSNorm: upcast, rsqrt, cast, weight)"
    )
    variants = tuple(FUNCTIONS)
    default_semantics = LLAMA

    def build(self, variant, case):
        return FUNCTIONS[variant.name]
