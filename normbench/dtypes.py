"""The dtype names the CLI accepts and their torch equivalents, resolved lazily."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DTYPE_NAMES = ("fp32", "fp16", "bf16")
_ALIASES = {
    "float32": "fp32",
    "float16": "fp16",
    "half": "fp16",
    "bfloat16": "bf16",
    "float": "fp32",
}

# Absolute tolerance of the correctness gate, per dtype (docs/numerics.md section 2, from
# flash-attention's tests): |impl - ref64| <= 2 * |native_lowprec - ref64| + atol.
ATOL = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 5e-2, "fp64": 1e-10}


def canonical(name: str) -> str:
    """Map 'float16' / 'half' / 'FP16' to 'fp16'; refuse unknown names with the allowed ones."""
    from normbench.errors import UsageError

    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DTYPE_NAMES:
        raise UsageError(f"unknown dtype {name!r}: choose from {', '.join(DTYPE_NAMES)}")
    return key


def to_torch(name: str) -> torch.dtype:
    import torch

    return {
        "fp32": torch.float32,
        "fp16": torch.float16,
        "bf16": torch.bfloat16,
        "fp64": torch.float64,
    }[name]


def itemsize(name: str) -> int:
    return {"fp32": 4, "fp16": 2, "bf16": 2, "fp64": 8}[name]
