"""The variants registry: every norm normbench knows, by name."""

from __future__ import annotations

from normbench.variants.base import DEFAULT_SEMANTICS, MODES, Semantics, Shape, Variant
from normbench.variants.batchnorm import BATCHNORM
from normbench.variants.dyt import DYT
from normbench.variants.groupnorm import GROUPNORM
from normbench.variants.instancenorm import INSTANCENORM
from normbench.variants.layernorm import ADD_LAYERNORM, LAYERNORM
from normbench.variants.rmsnorm import ADD_RMSNORM, RMSNORM

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        LAYERNORM,
        RMSNORM,
        BATCHNORM,
        GROUPNORM,
        INSTANCENORM,
        DYT,
        ADD_LAYERNORM,
        ADD_RMSNORM,
    )
}


def get_variant(name: str) -> Variant:
    from normbench.errors import UsageError

    try:
        return VARIANTS[name]
    except KeyError:
        raise UsageError(f"unknown variant {name!r}: choose from {', '.join(VARIANTS)}") from None


__all__ = ["DEFAULT_SEMANTICS", "MODES", "VARIANTS", "Semantics", "Shape", "Variant", "get_variant"]
