"""Dynamic Tanh (Zhu et al. 2025, "Transformers without Normalization").

y = gamma * tanh(alpha x) + beta.
"""

from __future__ import annotations

from typing import Any

from normbench.variants.base import Semantics, Shape, Variant


def _dyt(t: dict, s: dict, sem: Semantics, rt: Any) -> tuple:
    import torch

    return (t["weight"] * torch.tanh(t["alpha"] * t["x"]) + t["bias"],)


def _bytes(shape: Shape, b: int, bw: int, mode: str) -> int:
    # Elementwise: fwd reads x and writes y; bwd reads x, dy, writes dx (+ w read, 3 grads written).
    m, n = shape.rows, shape.dim
    fwd = 2 * b * m * n + 2 * n * bw
    bwd = 3 * b * m * n + n * bw + 2 * n * bw
    return {"fwd": fwd, "bwd": bwd, "fwd+bwd": fwd + bwd}[mode]


DYT = Variant(
    name="dyt",
    description="DyT: weight * tanh(alpha * x) + bias, alpha a learned scalar (no statistics)",
    tensor_args=("x", "alpha", "weight", "bias"),
    scalars={},
    formula=_dyt,
    ideal_bytes=_bytes,
    ideal_saved=lambda shape, b: b * shape.rows * shape.dim,
    relevant=(),
)
