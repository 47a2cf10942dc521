"""LayerNorm (Ba et al. 2016) and fused residual-add + LayerNorm."""

from __future__ import annotations

from typing import Any

from normbench.variants.base import (
    Semantics,
    Shape,
    Variant,
    by_mode,
    inv_rms,
    round_to,
    row_norm_bytes,
)
from normbench.variants.rmsnorm import residual_sum


def ln_formula(x: Any, weight: Any, bias: Any, eps: float, sem: Semantics, rt: Any) -> Any:
    # Two-pass variance: never E[x^2] - E[x]^2 (docs/numerics.md section 1, trap 4).
    mean = x.mean(-1, keepdim=True)
    d = x - mean
    h = d * inv_rms(d.pow(2).mean(-1, keepdim=True), eps, sem.eps)
    if sem.cast == "llama":
        h = round_to(h, rt)
    if weight is not None:  # None: elementwise_affine=False
        h = h * weight
    return h if bias is None else h + bias


def _layernorm(t: dict, s: dict, sem: Semantics, rt: Any) -> tuple:
    return (ln_formula(t["x"], t["weight"], t["bias"], s["eps"], sem, rt),)


def _add_layernorm(t: dict, s: dict, sem: Semantics, rt: Any, res_rt: Any = None) -> tuple:
    total = residual_sum(t, sem, res_rt or rt)
    return ln_formula(total, t["weight"], t["bias"], s["eps"], sem, rt), total


def _add_bytes(shape: Shape, b: int, bw: int, mode: str) -> int:
    m, n = shape.rows, shape.dim
    fwd = 4 * b * m * n + 2 * n * bw
    bwd = 4 * b * m * n + 8 * m + 3 * n * bw
    return by_mode(fwd, bwd, 8 * m, mode)


LAYERNORM = Variant(
    name="layernorm",
    description="LayerNorm: (x - mean) * rsqrt(var + eps) * w + b",
    tensor_args=("x", "weight", "bias"),
    scalars={"eps": 1e-5},
    formula=_layernorm,
    ideal_bytes=row_norm_bytes(params=2, stats=2),
    ideal_saved=lambda shape, b: b * shape.rows * shape.dim + 8 * shape.rows,
    relevant=("eps", "cast"),
)

ADD_LAYERNORM = Variant(
    name="add_layernorm",
    description="fused residual add + LayerNorm: s = x + r; returns (LayerNorm(s), s)",
    tensor_args=("x", "residual", "weight", "bias"),
    scalars={"eps": 1e-5},
    formula=_add_layernorm,
    ideal_bytes=_add_bytes,
    ideal_saved=lambda shape, b: b * shape.rows * shape.dim + 8 * shape.rows,
    outputs=("y", "residual_out"),
    activations=("x", "residual"),
    relevant=("eps", "cast", "residual"),
)
