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
class Variant:
    """Where the norm sits (post, pre, deepnorm, none) and which norm it is (None for 'none')."""

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


def parse_variant(name: str) -> Variant:
    """'pre-rmsnorm' -> Variant('pre', 'rmsnorm'); refuses unknown names listing the known ones."""
    key = name.strip().lower()
    if key == "none":
        return Variant("none", None)
    placement, _, norm = key.partition("-")
    if placement not in PLACEMENTS or norm not in NORM_TYPES:
        raise ValueError(
            f"unknown norm variant {name!r}: choose from {', '.join(known_variants())} "
            "(<placement>-<type>, or none)"
        )
    return Variant(placement, norm)


class RMSNorm(nn.Module):
    """x * rsqrt(mean(x^2) + eps) * w, eps inside the square root (docs/numerics.md section 1)."""

    def __init__(self, d: int, eps: float = EPS) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


class DyT(nn.Module):
    """Dynamic Tanh, w * tanh(alpha * x) + b, alpha learnable from 0.5 (Zhu et al. 2025)."""

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
        return RMSNorm(d)
    if norm == "batchnorm":
        return TokenBatchNorm(d)
    if norm == "dyt":
        return DyT(d)
    raise ValueError(f"unknown norm type {norm!r}: choose from {', '.join(NORM_TYPES)}")
