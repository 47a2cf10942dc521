"""Named, seeded input distributions and the fp64 tensors of a case.

Everything is generated in fp64 from a seeded generator, so every backend and dtype sees the same
values (rounded once to the case dtype). A CPU case's come from the CPU's generator, a CUDA
case's from its device's: the same on every run there, not the CPU's values, and made in
milliseconds where the CPU would take seconds per case (an fp64 normal sample is not
vectorized there; 8x2048x8192 took 4 s on 2 cores). Each distribution is one of the inputs real
models produce and says, in `trap`, what it breaks (docs/numerics.md section 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from normbench.errors import UsageError

if TYPE_CHECKING:
    import torch

    from normbench.options import NormOptions
    from normbench.variants import Shape, Variant


@dataclass(frozen=True)
class Distribution:
    name: str
    description: str
    # (shape, generator) -> fp64 tensor of that shape, on the generator's device
    sample: Callable[[tuple[int, ...], torch.Generator], torch.Tensor]
    # What broken code does on it, in words; the stability verdict's reason starts with it.
    trap: str = ""
    # Dtypes the trap applies to (empty: all).
    trap_dtypes: tuple[str, ...] = ()
    # (dtype, trap) where the input, rounded to that dtype, breaks code another way.
    dtype_traps: tuple[tuple[str, str], ...] = ()
    # Scale the sample by sqrt(eps) of the variant, so mean(x^2) lands near eps.
    eps_scaled: bool = False
    # (fp64 parameters, generator) -> replacement parameters (e.g. a Gemma weight near zero).
    params: Callable[[Mapping[str, torch.Tensor], torch.Generator], dict] | None = None
    # Only meaningful for implementations that declare this cast semantics ("gemma": 1 + w).
    cast: str | None = None
    # Scalars the trap needs, replacing the variant's own where it has them (an eps of 1e-8,
    # which fp16 cannot hold), for the dtypes in scalar_dtypes (empty: all). The fp64 reference
    # is computed with the same values.
    scalars: tuple[tuple[str, float], ...] = ()
    scalar_dtypes: tuple[str, ...] = ()
    # Part of the stability suite's default set.
    default: bool = True

    def trap_for(self, dtype: str) -> str:
        own = dict(self.dtype_traps).get(dtype)
        if own is not None:
            return own
        return self.trap if not self.trap_dtypes or dtype in self.trap_dtypes else ""


def _normal(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    import torch

    return torch.randn(shape, generator=g, dtype=torch.float64, device=g.device)


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, t.shape[-1])


def _scaled(factor: float, offset: float = 0.0) -> Callable:
    def sample(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
        return offset + factor * _normal(shape, g)

    return sample


def _signs(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    import torch

    return torch.randint(0, 2, shape, generator=g, device=g.device).to(torch.float64) * 2 - 1


def _sum_overflow(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    return 200.0 * _signs(shape, g)


def _massive(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    import torch

    # Massive activations sit in a few fixed channels (Sun et al. 2024, sglang #27540).
    x = _normal(shape, g)
    channel = int(torch.randint(0, shape[-1], (1,), generator=g, device=g.device))
    x[..., channel] = 2600.0
    return x


def _constant(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    rows = _normal((*shape[:-1], 1), g)
    return rows.expand(shape).clone()


def _every_other_row(value: float | None) -> Callable:
    """N(0, 1) where every other row (0, 2, ...) is all zero (value None) or holds one `value`."""

    def sample(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
        import torch

        x = _normal(shape, g)
        r = _rows(x)
        cols = torch.randint(0, shape[-1], (r.shape[0],), generator=g, device=g.device)
        even = torch.arange(0, r.shape[0], 2, device=g.device)
        if value is None:
            r[even] = 0.0
        else:
            r[even, cols[even]] = value  # one indexed write, not a launch per row on a GPU
        return x

    return sample


def _unit_max(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    # The largest |x| of each row is 0.999, so at scale 2^k the largest element is just below 2^k
    # (and still rounds below it in fp16: 0.999 * 256 -> 255.75).
    x = _normal(shape, g)
    r = _rows(x)
    r /= r.abs().amax(-1, keepdim=True) / 0.999
    return x


GEMMA_W = 2.0**-8


def _gemma_weight(params: Mapping[str, torch.Tensor], g: torch.Generator) -> dict:
    import torch

    if "weight" not in params:
        return dict(params)
    w = params["weight"]
    # Gemma stores w near 0 and applies (1 + w); in bf16, 1 + 2^-8 rounds to 1.0 (Liger PR #1462).
    near = GEMMA_W + 2.0**-10 * torch.randn(w.shape, generator=g, dtype=torch.float64)
    return {**params, "weight": near}


FP16 = ("fp16",)
OFFSET_LOW = ("mean 1e4 >> std, rounded to {dt} (spacing {ulp} at 1e4){square}: rows of one "
              "value or nearly leave the variance to eps and to how the mean rounds")  # fmt: skip

DISTRIBUTIONS: dict[str, Distribution] = {
    d.name: d
    for d in (
        Distribution("normal", "N(0, 1) activations", _normal),
        Distribution(
            "large",
            "300 x N(0, 1): many |x| >= 256, whose square (> 65504) overflows fp16",
            _scaled(300.0),
            trap="fp16 square overflows at |x| >= 256",
            trap_dtypes=FP16,
        ),
        Distribution(
            "sum-overflow",
            "every element +-200: each fp16 square (40000) fits, the row's sum of squares does not",
            _sum_overflow,
            trap="a half-precision sum of squares overflows",
            trap_dtypes=FP16,
        ),
        Distribution(
            "tiny",
            "1e-4 x N(0, 1): x * x underflows fp16 (the mean square comes out too small)",
            _scaled(1e-4),
            trap="x * x underflows fp16 at |x| ~ 1e-4",
            trap_dtypes=FP16,
        ),
        Distribution(
            "near-eps",
            "sqrt(eps) x N(0, 1): mean(x^2) near eps, where eps inside/clamped/outside differ",
            _normal,
            trap="mean(x^2) near eps: the eps convention decides the output (up to sqrt(2))",
            eps_scaled=True,
        ),
        Distribution(
            "offset",
            "1e4 + N(0, 1): mean >> std, E[x^2] - E[x]^2 cancels to a negative variance",
            _scaled(1.0, 1e4),
            trap="mean 1e4 >> std: cancellation (one-pass variance, uncentered sums; x^2 = 1e8)",
            # Rounded to half precision the input is no longer 1e4 + N(0, 1): the spacing at 1e4
            # is 8 (fp16) and 64 (bf16), so fp16 rows are one value bar a rare +-8 and every
            # bf16 row is 9984. What breaks there is the near-zero variance, not cancellation.
            dtype_traps=(
                ("fp16", OFFSET_LOW.format(dt="fp16", ulp=8, square="; x^2 = 1e8 overflows fp16")),
                ("bf16", OFFSET_LOW.format(dt="bf16", ulp=64, square="")),
            ),
        ),
        Distribution(
            "massive",
            "N(0, 1) with one channel at 2600 (a massive activation)",
            _massive,
            trap="a 2600 outlier: its fp16 square overflows, a low-precision sum loses the rest",
        ),
        Distribution(
            "constant",
            "each row one value from N(0, 1): zero variance (LayerNorm gives bias)",
            _constant,
            trap="zero variance: the result hangs on eps (NaN without it)",
        ),
        Distribution(
            "zero",
            "every other row all zeros (the rest N(0, 1)); fp16 at eps = 1e-8: output 0 or "
            "bias, never NaN",
            _every_other_row(None),
            trap="all-zero rows: 0 / sqrt(0 + eps)",
            dtype_traps=(
                (
                    "fp16",
                    "all-zero rows at eps = 1e-8: 0 / sqrt(0 + eps) (eps cast to "
                    "fp16 vanishes, DeepSpeed #581)",
                ),
            ),  # fmt: skip
            scalars=(("eps", 1e-8),),
            scalar_dtypes=("fp16",),
        ),
        Distribution(
            "inf",
            "N(0, 1) with one +inf in every other row: those rows must come out non-finite",
            _every_other_row(math.inf),
            trap="a +inf in the row",
        ),
        Distribution(
            "nan",
            "N(0, 1) with one NaN in every other row: those rows must come out non-finite",
            _every_other_row(math.nan),
            trap="a NaN in the row",
        ),
        Distribution(
            "gemma-weight",
            "Gemma-style weight w ~ 2^-8 applied as (1 + w) (implementations with cast gemma)",
            _normal,
            trap="(1 + w) rounded in low precision loses w ~ 2^-8 (Liger PR #1462)",
            params=_gemma_weight,
            cast="gemma",
        ),
        Distribution(
            "unit-max",
            "N(0, 1) rows scaled to max |x| = 0.999: the --sweep-range base (x 2^k)",
            _unit_max,
            default=False,
        ),
    )
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
    variant: Variant,
    shape: Shape,
    seed: int = 0,
    dist: str = "normal",
    scale: float = 1.0,
    options: NormOptions | None = None,
    device: str = "cpu",
) -> dict[str, torch.Tensor | None]:
    """fp64 tensors for every argument of `variant` with `options`: activations from `dist` on
    `device` (its own generator, see the module's docstring), the residual (if any) from
    N(0, 1), parameters (on the CPU: one row, or one per head) from the variant's initializer
    or the distribution's; None for the weight and bias of a layer without them. `scale`
    multiplies every activation (the dynamic-range sweep)."""
    import torch

    from normbench.options import NormOptions

    options = options or NormOptions()
    g = generator(device, seed)
    d = get_distribution(dist)
    full = shape.dims
    tensors: dict[str, torch.Tensor | None] = {}
    for name in variant.activations:
        tensors[name] = d.sample(full, g) if name == "x" else _normal(full, g)
    if d.eps_scaled:
        tensors["x"] = tensors["x"] * math.sqrt(variant.scalars.get("eps", 1e-5))
    if scale != 1.0:
        for name in variant.activations:
            tensors[name] = tensors[name] * scale
    params = variant.make_params(shape.param_dims, seed, options.param_args(variant))
    if d.params is not None and params:
        params = d.params(params, torch.Generator().manual_seed(seed + 2))
    tensors.update(params)
    return {name: tensors.get(name) for name in options.tensor_args(variant)}


def generator(device: str, seed: int) -> torch.Generator:
    """A seeded generator on `device` (cuda:N's own for a CUDA case, the CPU's otherwise)."""
    import torch

    return torch.Generator(device=device if device.startswith("cuda") else "cpu").manual_seed(seed)


def scalars_for(variant: Variant, dist: str, dtype: str) -> dict[str, float]:
    """The variant's scalars (eps, ...) on input `dist` in `dtype`: the distribution's own
    where the variant has them."""
    d = get_distribution(dist)
    own = dict(d.scalars) if not d.scalar_dtypes or dtype in d.scalar_dtypes else {}
    return {k: own.get(k, v) for k, v in variant.scalars.items()}


def default_dists() -> tuple[str, ...]:
    """The distributions a stability run uses when --dist is not given."""
    return tuple(name for name, d in DISTRIBUTIONS.items() if d.default)
