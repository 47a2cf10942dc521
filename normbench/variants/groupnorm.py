"""GroupNorm (Wu & He 2018) over the hidden dimension of each token, in groups of channels."""

from __future__ import annotations

import math
from typing import Any

from normbench.variants.base import Semantics, Variant, inv_rms, row_norm_bytes


def num_groups(dim: int) -> int:
    """32 groups as in the paper, or the largest count dividing the hidden size."""
    return math.gcd(dim, 32)


def _groupnorm(t: dict, s: dict, sem: Semantics, rt: Any) -> tuple:
    x = t["x"]
    n = x.shape[-1]
    g = x.reshape(*x.shape[:-1], num_groups(n), -1)
    d = g - g.mean(-1, keepdim=True)
    h = (d * inv_rms(d.pow(2).mean(-1, keepdim=True), s["eps"], sem.eps)).reshape(x.shape)
    return (h * t["weight"] + t["bias"],)


GROUPNORM = Variant(
    name="groupnorm",
    description="GroupNorm: each token's channels in gcd(N, 32) groups, per-channel affine",
    tensor_args=("x", "weight", "bias"),
    scalars={"eps": 1e-5},
    formula=_groupnorm,
    ideal_bytes=row_norm_bytes(params=2, stats=lambda sh: 2 * sh.rows * num_groups(sh.dim)),
    ideal_saved=lambda sh, b: b * sh.rows * sh.dim + 8 * sh.rows * num_groups(sh.dim),
)
