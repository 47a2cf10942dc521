"""Named, seeded input distributions and the fp64 tensors of a case.

Everything is generated in fp64 on the CPU from a seeded generator, so every backend, dtype and
device sees the same values (rounded once to the case dtype).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from normbench.errors import UsageError

if TYPE_CHECKING:
    import torch

    from normbench.variants import Shape, Variant


@dataclass(frozen=True)
class Distribution:
    name: str
    description: str
    # (shape, generator) -> fp64 tensor of that shape
    sample: Callable[[tuple[int, ...], torch.Generator], torch.Tensor]


def _normal(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    import torch

    return torch.randn(shape, generator=g, dtype=torch.float64)


DISTRIBUTIONS: dict[str, Distribution] = {
    "normal": Distribution("normal", "N(0, 1) activations", _normal),
}


def register_distribution(dist: Distribution) -> None:
    DISTRIBUTIONS[dist.name] = dist


def get_distribution(name: str) -> Distribution:
    try:
        return DISTRIBUTIONS[name]
    except KeyError:
        raise UsageError(
            f"unknown input distribution {name!r}: choose from {', '.join(DISTRIBUTIONS)}"
        ) from None


def make_tensors(
    variant: Variant, shape: Shape, seed: int = 0, dist: str = "normal"
) -> dict[str, torch.Tensor]:
    """fp64 CPU tensors for every argument of `variant`: activations from `dist`, the residual
    (if any) from N(0, 1), parameters from the variant's initializer."""
    import torch

    g = torch.Generator().manual_seed(seed)
    sample = get_distribution(dist).sample
    full = (shape.batch, shape.seq, shape.dim)
    tensors: dict[str, torch.Tensor] = {}
    for name in variant.activations:
        tensors[name] = sample(full, g) if name == "x" else _normal(full, g)
    tensors.update(variant.make_params(shape.dim, seed))
    return {name: tensors[name] for name in variant.tensor_args}
