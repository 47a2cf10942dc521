"""What a variant is: parameters, inputs, the fp64 reference and the ideal byte model.

One `Variant` per norm. Every backend implements the same call signature,
`fn(**tensors, **scalars)`, with the tensor names in `Variant.tensor_args`, so a user plugin is a
plain function such as `def rmsnorm(x, weight, eps): ...`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

MODES = ("fwd", "bwd", "fwd+bwd")


@dataclass(frozen=True)
class Semantics:
    """What an implementation promises numerically (docs/numerics.md section 1).

    eps: "inside" rsqrt(ms + eps), "clamp" rsqrt(max(ms, eps)), "outside" 1 / (sqrt(ms) + eps).
    cast: "fp32" (normalize and apply the weight in fp32, cast once), "llama" (round the normalized
      value to the input dtype before the weight), "gemma" ((1 + w) in fp32).
    residual: "rounded" (normalize the sum x + r rounded once to the residual output's dtype, the
      tensor that is stored and that backward recomputes from: unfused model code and
      normbench's kernels) or "fp32" (normalize the unrounded fp32 sum).
    """

    eps: str = "inside"
    cast: str = "fp32"
    residual: str = "rounded"
    inplace: bool = False

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("eps", self.eps, ("inside", "clamp", "outside")),
            ("cast", self.cast, ("fp32", "llama", "gemma")),
            ("residual", self.residual, ("fp32", "rounded")),
        ):
            if value not in allowed:
                raise ValueError(f"semantics {name}={value!r}: choose from {', '.join(allowed)}")

    def describe(self) -> str:
        return f"eps {self.eps}, cast {self.cast}, residual {self.residual}"


DEFAULT_SEMANTICS = Semantics()


@dataclass(frozen=True)
class Shape:
    """Activations are (batch, seq, dim); rows M = batch * seq, hidden N = dim. With heads > 1
    (QK-norm) they are (batch, seq, heads, dim), M = batch * seq * heads, and the weight is one
    per head: (heads, dim)."""

    batch: int
    seq: int
    dim: int
    heads: int = 1

    @property
    def rows(self) -> int:
        return self.batch * self.seq * self.heads

    @property
    def dims(self) -> tuple[int, ...]:
        """The activation tensor's shape."""
        if self.heads > 1:
            return (self.batch, self.seq, self.heads, self.dim)
        return (self.batch, self.seq, self.dim)

    @property
    def param_dims(self) -> tuple[int, ...]:
        return (self.heads, self.dim) if self.heads > 1 else (self.dim,)

    def __str__(self) -> str:
        return "x".join(map(str, self.dims))


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    # Names of the tensor arguments, activations first, in call order.
    tensor_args: tuple[str, ...]
    # Keyword scalars passed to every implementation (eps).
    scalars: Mapping[str, float]
    # The formula, written once for any dtype: (tensors, scalars, semantics, round_to) -> outputs.
    # Called on fp64 tensors it is the oracle; on fp32 upcasts it is the "native low precision" run.
    formula: Callable[..., Any]
    # Ideal device-memory bytes (docs/numerics.md section 3): (shape, act_bytes, param_bytes, mode).
    ideal_bytes: Callable[[Shape, int, int, str], int]
    # Ideal bytes saved for backward: (shape, act_bytes) -> int.
    ideal_saved: Callable[[Shape, int], int]
    outputs: tuple[str, ...] = ("y",)
    activations: tuple[str, ...] = ("x",)
    # A semantics field that matters for this variant (others are ignored when matching references).
    relevant: tuple[str, ...] = ("eps",)
    notes: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(a for a in self.tensor_args if a not in self.activations)

    def make_params(
        self, dim: int | tuple[int, ...], seed: int, names: tuple[str, ...] | None = None
    ) -> dict[str, torch.Tensor]:
        """fp64 parameters on the CPU, seeded: weight ~ 1 + 0.1 N(0,1), bias ~ 0.1 N(0,1).
        `dim` may be a shape ((heads, dim) for a per-head weight); `names` the parameters to
        make (default: the variant's own)."""
        import torch

        g = torch.Generator().manual_seed(seed + 1)
        shape = (dim,) if isinstance(dim, int) else tuple(dim)
        out: dict[str, torch.Tensor] = {}
        for name in self.params if names is None else names:
            if name == "weight":
                out[name] = 1 + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
            elif name == "bias":
                out[name] = 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
            elif name == "alpha":
                out[name] = torch.full((1,), 0.5, dtype=torch.float64)
            else:  # pragma: no cover - a new variant must say how to make its parameters
                raise ValueError(f"variant {self.name}: no initializer for parameter {name!r}")
        return out


def round_to(t: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """Round to `dtype` and back, with a straight-through gradient (for reference backward)."""
    import torch

    if dtype is None or dtype == t.dtype:
        return t
    # The rounding error is added as a constant; at +-inf it is inf - inf = NaN, which would
    # turn a propagating inf into a NaN (and its gradients into NaN everywhere): there it is 0.
    delta = t.to(dtype).to(t.dtype) - t
    return t + torch.where(torch.isfinite(t), delta, torch.zeros_like(delta)).detach()


def inv_rms(ms: torch.Tensor, eps: float, convention: str) -> torch.Tensor:
    """1 / sqrt(mean square) under the declared eps convention."""
    import torch

    if convention == "inside":
        return torch.rsqrt(ms + eps)
    if convention == "clamp":
        return torch.rsqrt(torch.clamp(ms, min=eps))
    return 1.0 / (torch.sqrt(ms) + eps)


def by_mode(fwd: int, bwd: int, stats: int, mode: str) -> int:
    """One mode's bytes from the forward's and the backward's: a training step's forward also
    writes the `stats` bytes of fp32 statistics its backward reads (an inference forward,
    `fwd`, keeps none), so fwd+bwd is more than their sum by those (docs/numerics.md
    section 3)."""
    return {"fwd": fwd, "bwd": bwd, "fwd+bwd": fwd + stats + bwd}[mode]


def row_norm_bytes(
    params: int, stats: int | Callable[[Shape], int]
) -> Callable[[Shape, int, int, str], int]:
    """Byte model of a norm with `params` per-channel parameters and `stats` fp32 statistics per
    row (or a function of the shape giving their count).

    fwd: 2bMN + the parameters read. bwd: 3bMN (read x, dy; write dx) + the stats read + the
    weight read + the parameter gradients written (docs/numerics.md section 3). Per-program dW
    partials depend on the implementation's grid, so they are not part of the ideal.
    """

    def model(shape: Shape, b: int, bw: int, mode: str) -> int:
        m, n = shape.rows, shape.dim
        fwd = 2 * b * m * n + params * n * bw
        n_stats = stats(shape) if callable(stats) else stats * m
        bwd = 3 * b * m * n + 4 * n_stats + n * bw + params * n * bw
        return by_mode(fwd, bwd, 4 * n_stats, mode)

    return model
