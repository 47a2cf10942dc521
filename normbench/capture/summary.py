"""What a person reads about each captured layer (docs/capture.md "The summary"): rows, N,
the largest |x|, the channels holding most of the energy, the mean/std ratio, and the
synthetic input of `normbench list` it most resembles by a feature distance.

Features of a layer's input x (rows x N, its finite values), each of order 1, per row where a
massive activation sits in a few rows only (a [CLS] token's):

1. scale: log10 of the median nonzero |x| (at least 1e-12), robust to the outliers;
2. offset: log10(1 + the mean/std ratio), the ratio being the median over rows of
   |mean(row)| / std(row) (rows with a spread);
3. outlier: log10 of the largest, over rows, max |x| / median |x| of the row;
4. peak share: the largest, over rows, share of a row's energy sum(x^2) held by one element;
5. to 8. the fraction of rows that are constant, all zero, hold an inf, hold a NaN;
9. Gemma: 1 for a layer applying 1 + w (and for the gemma-weight input), else 0.

The distance is the Euclidean distance between a layer's features and those of a sample of
each distribution at the layer's rows x N (at most SAMPLE_ELEMENTS elements), drawn with seed 0
(near-eps scaled by sqrt of the layer's eps, as the stability suite does); the nearest wins,
ties to the earlier one in `normbench list`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from normbench.capture.records import CapturedLayer

TOP_K = 3
SAMPLE_ELEMENTS = 1 << 20
FP16_MAX = 65504.0
FEATURES = ("scale", "offset", "outlier", "peak share", "constant rows", "zero rows",
            "inf rows", "nan rows", "gemma")  # fmt: skip


@dataclass(frozen=True)
class LayerSummary:
    layer: str
    rows: int
    dim: int
    max_abs: float  # over the finite elements (0 when there is none)
    nonfinite: int  # elements that are inf or NaN
    top: tuple[tuple[int, float], ...]  # (channel, share of the energy), largest first
    mean_std: float  # median over rows of |mean| / std; NaN when no row has a spread
    max_row_sumsq: float  # the largest sum of squares of one row (fp16's sum overflows past 65504)
    nearest: str
    distance: float
    features: tuple[float, ...]

    @property
    def top_share(self) -> float:
        return sum(s for _, s in self.top)

    def describe_top(self) -> str:
        """'308: 41%, 12: 3.0%, 77: 2.1%'."""
        return ", ".join(f"{c}: {_pct(s)}" for c, s in self.top)


def _pct(share: float) -> str:
    p = 100 * share
    return f"{p:.0f}%" if p >= 10 else f"{p:.2g}%"


def rows_of(x: torch.Tensor) -> torch.Tensor:
    """x as fp64 rows x N on the CPU."""
    import torch

    return x.detach().to("cpu", dtype=torch.float64).reshape(-1, x.shape[-1])


def energy_shares(x2: torch.Tensor) -> torch.Tensor:
    """Each channel's share of sum(x^2) over the finite elements (zeros when there is none)."""
    import torch

    x0 = torch.where(torch.isfinite(x2), x2, torch.zeros_like(x2))
    e = x0.pow(2).sum(0)
    total = float(e.sum())
    return e / total if total > 0 else torch.zeros_like(e)


def mean_std_ratio(x2: torch.Tensor) -> float:
    """The median over the finite rows with a spread of |mean(row)| / std(row) (population
    std); NaN when there is no such row."""
    import torch

    rows = x2[torch.isfinite(x2).all(-1)]
    if rows.shape[0] == 0:
        return math.nan
    std = rows.std(-1, unbiased=False)
    spread = std > 0
    if not bool(spread.any()):
        return math.nan
    ratio = rows.mean(-1)[spread].abs() / std[spread]
    return float(ratio.median())


def features(
    x2: torch.Tensor, gemma: bool = False, ratio: float | None = None
) -> tuple[float, ...]:
    """The nine features of the module docstring, in FEATURES order; `ratio` is x2's
    mean_std_ratio where the caller has it already."""
    import torch

    finite = torch.isfinite(x2)
    row_finite = finite.all(-1)
    vals = x2[finite].abs()
    vals = vals[vals > 0]  # all-zero rows are their own feature
    median = float(vals.median()) if vals.numel() else 0.0
    ratio = mean_std_ratio(x2) if ratio is None else ratio
    good = x2[row_finite].abs()
    outlier, peak = 1.0, 0.0
    if good.shape[0]:
        med = good.median(-1).values
        spread = med > 0
        if bool(spread.any()):
            outlier = float((good.max(-1).values[spread] / med[spread]).max())
        energy = good.pow(2).sum(-1)
        lit = energy > 0
        if bool(lit.any()):
            peak = float((good.pow(2).max(-1).values[lit] / energy[lit]).max())
    std = torch.where(row_finite[:, None], x2, torch.zeros_like(x2)).std(-1, unbiased=False)
    rows = max(x2.shape[0], 1)
    return (
        math.log10(max(median, 1e-12)),
        0.0 if math.isnan(ratio) else math.log10(1 + ratio),
        math.log10(max(outlier, 1.0)),
        peak,
        float((row_finite & (std == 0)).sum()) / rows,
        float((row_finite & (x2 == 0).all(-1)).sum()) / rows,
        float(torch.isinf(x2).any(-1).sum()) / rows,
        float(torch.isnan(x2).any(-1).sum()) / rows,
        1.0 if gemma else 0.0,
    )


@lru_cache(maxsize=256)
def synthetic_features(dist: str, rows: int, dim: int, eps: float) -> tuple[float, ...]:
    """The features of a seed-0 sample of `dist` at rows x N (rows capped so the sample holds
    at most SAMPLE_ELEMENTS elements)."""
    import torch

    from normbench.inputs import get_distribution

    d = get_distribution(dist)
    rows = max(1, min(rows, SAMPLE_ELEMENTS // dim))
    x = d.sample((rows, dim), torch.Generator().manual_seed(0))
    if d.eps_scaled:
        x = x * math.sqrt(eps)
    return features(x, gemma=d.cast == "gemma")


def distance(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return math.sqrt(sum((p - q) ** 2 for p, q in zip(a, b)))


def nearest(feats: tuple[float, ...], rows: int, dim: int, eps: float) -> tuple[str, float]:
    """The distribution of `normbench list` nearest to these features, and its distance."""
    from normbench.inputs import DISTRIBUTIONS

    best: tuple[str, float] | None = None
    for name in DISTRIBUTIONS:
        d = distance(feats, synthetic_features(name, rows, dim, eps))
        if best is None or d < best[1]:
            best = (name, d)
    assert best is not None
    return best


def summarize(layer: CapturedLayer) -> LayerSummary:
    """The summary of one captured layer (see the module docstring)."""
    import torch

    m = layer.meta
    x2 = rows_of(layer.x)
    finite = torch.isfinite(x2)
    vals = x2[finite]
    shares = energy_shares(x2)
    k = min(TOP_K, shares.numel())
    top_v, top_i = torch.topk(shares, k)
    top = tuple((int(i), float(v)) for v, i in zip(top_v, top_i) if float(v) > 0)
    ratio = mean_std_ratio(x2)
    feats = features(x2, m.gemma, ratio)
    name, dist = nearest(feats, m.rows, m.dim, m.eps)
    x0 = torch.where(finite, x2, torch.zeros_like(x2))
    return LayerSummary(
        layer=m.name, rows=m.rows, dim=m.dim,
        max_abs=float(vals.abs().max()) if vals.numel() else 0.0,
        nonfinite=int((~finite).sum()), top=top, mean_std=ratio,
        max_row_sumsq=float(x0.pow(2).sum(-1).max()) if x0.numel() else 0.0,
        nearest=name, distance=dist, features=feats,
    )  # fmt: skip


def hints(s: LayerSummary, dtype: str, eps: float) -> str:
    """What about this layer's input a low-precision implementation can trip on, as the
    prefix of a failing verdict's reason (the traps of docs/numerics.md section 2)."""
    import torch

    out = []
    if dtype == "fp16" and s.max_abs >= 256:
        out.append(f"|x| reaches {s.max_abs:.4g} (>= 256: its fp16 square overflows)")
    elif dtype == "fp16" and s.max_row_sumsq > FP16_MAX:
        out.append(f"a row's sum of squares reaches {s.max_row_sumsq:.3g}, past fp16's 65504")
    constant = s.features[FEATURES.index("constant rows")] > 0  # where eps decides the output
    if constant and dtype == "fp16" and eps > 0 and float(torch.tensor(eps).half()) == 0:
        out.append(f"eps {eps:g} rounds to 0 in fp16")
    if s.top and s.top[0][1] >= 0.5:
        c, share = s.top[0]
        out.append(f"channel {c} holds {_pct(share)} of the energy (a massive activation)")
    return "; ".join(out)
