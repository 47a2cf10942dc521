"""BatchNorm over tokens in training mode (Ioffe & Szegedy 2015): statistics per channel over all
batch x seq rows, biased variance, no running statistics."""

from __future__ import annotations

from typing import Any

from normbench.variants.base import Semantics, Variant, inv_rms, row_norm_bytes


def _batchnorm(t: dict, s: dict, sem: Semantics, rt: Any) -> tuple:
    x = t["x"]
    flat = x.reshape(-1, x.shape[-1])
    mean = flat.mean(0)
    d = flat - mean
    h = d * inv_rms(d.pow(2).mean(0), s["eps"], sem.eps)
    return ((h * t["weight"] + t["bias"]).reshape(x.shape),)


BATCHNORM = Variant(
    name="batchnorm",
    description="BatchNorm over tokens, training mode: per-channel statistics over batch x seq",
    tensor_args=("x", "weight", "bias"),
    scalars={"eps": 1e-5},
    formula=_batchnorm,
    ideal_bytes=row_norm_bytes(params=2, stats=lambda shape: 2 * shape.dim),
    ideal_saved=lambda shape, b: b * shape.rows * shape.dim + 8 * shape.dim,
)
