"""Norm layers of the toy model and the "placement-type" names that select them.

A variant name is "<placement>-<type>" (e.g. "post-layernorm", "pre-rmsnorm", "deepnorm-layernorm")
or "none" (no normalization anywhere). Parsing lives here so the runner can refuse a bad name with
one sentence before anything is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

PLACEMENTS = ("post", "pre", "deepnorm")
NORM_TYPES = ("layernorm", "rmsnorm", "batchnorm", "dyt")
EPS = 1e-5


@dataclass(frozen=True)
class NormPlacement:
    """Where the norm sits (post, pre, deepnorm, none) and which norm it is (None for 'none').

    Not a normbench.variants.Variant: that is one norm layer's formula, byte model and fp64
    oracle for the benchmarks, while this is a choice of toy-model architecture (a placement in
    the residual stream, and a norm type that includes none and BatchNorm over tokens)."""

    placement: str
    norm: str | None

    @property
    def name(self) -> str:
        return "none" if self.placement == "none" else f"{self.placement}-{self.norm}"


def functional_norm(x: torch.Tensor, norm: str, eps: float = EPS) -> torch.Tensor:
    """LayerNorm or RMSNorm over the last dim without parameters; any other name: x itself."""
    if norm == "layernorm":
        return F.layer_norm(x, (x.shape[-1],), eps=eps)
    if norm == "rmsnorm":
        return F.rms_norm(x, (x.shape[-1],), eps=eps)
    return x


def known_variants() -> list[str]:
    return [f"{p}-{t}" for p in PLACEMENTS for t in NORM_TYPES] + ["none"]


def parse_variant(name: str) -> NormPlacement:
    """'pre-rmsnorm' -> NormPlacement('pre', 'rmsnorm'); refuses unknown names listing the known
    ones."""
    key = name.strip().lower()
    if key == "none":
        return NormPlacement("none", None)
    placement, _, norm = key.partition("-")
    if placement not in PLACEMENTS or norm not in NORM_TYPES:
        raise ValueError(
            f"unknown norm variant {name!r}: choose from {', '.join(known_variants())} "
            "(<placement>-<type>, or none)"
        )
    return NormPlacement(placement, norm)


class DyT(nn.Module):
    """Dynamic Tanh, w * tanh(alpha * x) + b, alpha learnable from 0.5 (Zhu et al. 2025).

    A layer of its own because torch has none; normbench.variants.DYT is the same formula as a
    benchmark oracle over a dict of tensors, not a trainable module."""

    def __init__(self, d: int, alpha0: float = 0.5) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(alpha0))
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * torch.tanh(self.alpha * x) + self.bias


class TokenBatchNorm(nn.Module):
    """BatchNorm over every (batch, position) token, as a drop-in for LayerNorm in a Transformer.

    Its statistics mix tokens of other sequences and of future positions: that is what the
    batchnorm probe measures.
    """

    def __init__(self, d: int, eps: float = EPS) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(d, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x.reshape(-1, x.shape[-1])).view_as(x)


def make_norm(norm: str | None, d: int) -> nn.Module:
    if norm is None:
        return nn.Identity()
    if norm == "layernorm":
        return nn.LayerNorm(d, eps=EPS)
    if norm == "rmsnorm":
        # torch's own: x * rsqrt(mean(x^2) + eps) * w, eps inside the root (docs/numerics.md
        # section 1), weight from ones.
        return nn.RMSNorm(d, eps=EPS)
    if norm == "batchnorm":
        return TokenBatchNorm(d)
    if norm == "dyt":
        return DyT(d)
    raise ValueError(f"unknown norm type {norm!r}: choose from {', '.join(NORM_TYPES)}")
