"""Gemma-style RMSNorm: the weight is stored near zero and applied as (1 + w) in fp32.

These backends carry the `gemma` cast semantics (docs/numerics.md section 1), so the stability suite
compares them with the (1 + w) reference, and the `gemma-weight` input (w ~ 2^-8) checks that
1 + w is not rounded in low precision first (docs/numerics.md trap 13, Liger PR #1462). The eager
and composite backends are Llama-style and never run that input.

No `from __future__ import annotations` here, so the functions stay TorchScript-compatible.
"""

import torch

from normbench.backends.base import Backend
from normbench.backends.triton import TritonBackend
from normbench.variants.base import Semantics

GEMMA = Semantics(eps="inside", cast="gemma", residual="rounded")
GEMMA_FUSED = Semantics(eps="inside", cast="gemma", residual="rounded")


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # As in Hugging Face's GemmaRMSNorm: normalize in fp32, multiply by (1 + w.float()), cast once.
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return (h * (1.0 + weight.float())).to(x.dtype)


def add_rmsnorm(
    x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    s = x + residual
    return rmsnorm(s, weight, eps), s


FUNCTIONS = {"rmsnorm": rmsnorm, "add_rmsnorm": add_rmsnorm}


class GemmaBackend(Backend):
    name = "gemma"
    description = "Gemma's RMSNorm as its model code writes it: fp32 normalize, x (1 + w) in fp32"
    variants = tuple(FUNCTIONS)
    default_semantics = GEMMA

    def build(self, variant, case):
        return FUNCTIONS[variant.name]


class TritonGemmaBackend(TritonBackend):
    name = "triton-gemma"
    description = "normbench's fused Triton RMSNorm with offset=1: (1 + w) formed in fp32"
    variants = ("rmsnorm", "add_rmsnorm")
    default_semantics = GEMMA_FUSED
    offset = 1.0
