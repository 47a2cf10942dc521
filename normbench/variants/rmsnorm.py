"""RMSNorm and fused residual-add + RMSNorm (Zhang & Sennrich 2019)."""

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


def rms_formula(x: Any, weight: Any, eps: float, sem: Semantics, rt: Any, bias: Any = None) -> Any:
    """weight None: no weight (elementwise_affine=False); bias: RMSNorm with a bias."""
    ms = x.pow(2).mean(-1, keepdim=True)
    h = x * inv_rms(ms, eps, sem.eps)
    if sem.cast == "llama":
        h = round_to(h, rt)
    if weight is not None:
        h = h * (1.0 + weight) if sem.cast == "gemma" else h * weight
    return h if bias is None else h + bias


def _rmsnorm(t: dict, s: dict, sem: Semantics, rt: Any) -> tuple:
    return (rms_formula(t["x"], t["weight"], s["eps"], sem, rt, t.get("bias")),)


def residual_sum(t: dict, sem: Semantics, res_rt: Any) -> Any:
    """s = x + residual: exact (sem.residual "fp32") or rounded once to the residual output's
    dtype `res_rt` ("rounded": what unfused code and normbench's kernels normalize)."""
    s = t["x"] + t["residual"]
    return round_to(s, res_rt) if sem.residual == "rounded" else s


def _add_rmsnorm(t: dict, s: dict, sem: Semantics, rt: Any, res_rt: Any = None) -> tuple:
    total = residual_sum(t, sem, res_rt or rt)
    return rms_formula(total, t["weight"], s["eps"], sem, rt, t.get("bias")), total


def _saved(stats: int):
    # x (or the residual sum) in the activation dtype plus `stats` fp32 values per row.
    return lambda shape, b: b * shape.rows * shape.dim + 4 * stats * shape.rows


def _add_bytes(shape: Shape, b: int, bw: int, mode: str) -> int:
    # Read x, r; write y, residual out (fwd). Read s, dy, d(residual out); write dx (bwd).
    m, n = shape.rows, shape.dim
    fwd = 4 * b * m * n + n * bw
    bwd = 4 * b * m * n + 4 * m + 2 * n * bw
    return by_mode(fwd, bwd, 4 * m, mode)


RMSNORM = Variant(
    name="rmsnorm",
    description="RMSNorm: x * rsqrt(mean(x^2) + eps) * w",
    tensor_args=("x", "weight"),
    scalars={"eps": 1e-6},
    formula=_rmsnorm,
    ideal_bytes=row_norm_bytes(params=1, stats=1),
    ideal_saved=_saved(1),
    relevant=("eps", "cast"),
)

ADD_RMSNORM = Variant(
    name="add_rmsnorm",
    description="fused residual add + RMSNorm: s = x + r; returns (RMSNorm(s), s)",
    tensor_args=("x", "residual", "weight"),
    scalars={"eps": 1e-6},
    formula=_add_rmsnorm,
    ideal_bytes=_add_bytes,
    ideal_saved=_saved(1),
    outputs=("y", "residual_out"),
    activations=("x", "residual"),
    relevant=("eps", "cast", "residual"),
)
