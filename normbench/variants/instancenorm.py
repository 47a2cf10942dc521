"""InstanceNorm (Ulyanov et al. 2016): each channel of each sequence, over the sequence."""

from __future__ import annotations

from typing import Any

from normbench.variants.base import Semantics, Variant, inv_rms, row_norm_bytes


def _instancenorm(t: dict, s: dict, sem: Semantics, rt: Any) -> tuple:
    x = t["x"]  # (batch, seq, dim): statistics over seq
    d = x - x.mean(1, keepdim=True)
    h = d * inv_rms(d.pow(2).mean(1, keepdim=True), s["eps"], sem.eps)
    return (h * t["weight"] + t["bias"],)


INSTANCENORM = Variant(
    name="instancenorm",
    description="InstanceNorm: each channel of each sequence over the sequence, affine",
    tensor_args=("x", "weight", "bias"),
    scalars={"eps": 1e-5},
    formula=_instancenorm,
    ideal_bytes=row_norm_bytes(params=2, stats=lambda sh: 2 * sh.batch * sh.dim),
    ideal_saved=lambda sh, b: b * sh.rows * sh.dim + 8 * sh.batch * sh.dim,
)
