"""Distribution summaries of timing samples: median, p20/p80 and a 95% CI of the median."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    p20: float
    p80: float
    ci_low: float
    ci_high: float
    mean: float
    stdev: float

    @property
    def rel_ci(self) -> float:
        """Half-width of the median's CI relative to the median (0.01 = +-1%)."""
        if self.median <= 0 or not math.isfinite(self.median):
            return math.inf
        return (self.ci_high - self.ci_low) / 2 / self.median

    @property
    def spread(self) -> float:
        """(p80 - p20) / median: the run-to-run spread a person sees."""
        return (self.p80 - self.p20) / self.median if self.median > 0 else math.inf

    def to_dict(self) -> dict:
        return asdict(self)


def median_ci(sorted_samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the median from binomial order statistics.

    The k-th smallest sample is below the true median with probability Binomial(n, 1/2); choose
    the widest symmetric pair of ranks whose coverage is at least `confidence`. With fewer than 6
    samples no pair covers 95%, so the CI is the full range.
    """
    from scipy.stats import binom

    n = len(sorted_samples)
    if n == 0:
        return math.nan, math.nan
    lo = int(binom.ppf((1 - confidence) / 2, n, 0.5))  # number of samples below the lower bound
    if lo <= 0 or n < 6:
        return float(sorted_samples[0]), float(sorted_samples[-1])
    # P(B < lo) <= alpha/2 at rank lo (1-indexed) and symmetric at n - lo + 1.
    if binom.cdf(lo - 1, n, 0.5) > (1 - confidence) / 2:
        lo -= 1
    lo = max(lo, 1)
    return float(sorted_samples[lo - 1]), float(sorted_samples[n - lo])


def summarize(samples: Sequence[float], confidence: float = 0.95) -> Summary:
    import numpy as np

    if len(samples) == 0:
        nan = math.nan
        return Summary(0, nan, nan, nan, nan, nan, nan, nan)
    arr = np.sort(np.asarray(samples, dtype=float))
    lo, hi = median_ci(arr, confidence)
    return Summary(
        n=len(arr),
        median=float(np.median(arr)),
        p20=float(np.quantile(arr, 0.2)),
        p80=float(np.quantile(arr, 0.8)),
        ci_low=lo,
        ci_high=hi,
        mean=float(arr.mean()),
        stdev=float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
    )


def geomean(values: Sequence[float]) -> float:
    vals = [v for v in values if v > 0 and math.isfinite(v)]
    if not vals:
        return math.nan
    return math.exp(sum(math.log(v) for v in vals) / len(vals))
