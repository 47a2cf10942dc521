"""Distribution summaries of timing samples (median, p20/p80, a CI of the median) and the
statistics of comparisons: block bootstrap of the ratio of medians, Welch over processes, Holm."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


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


# The fewest samples whose order statistics hold a 95% CI of the median: [min, max] of n covers
# it with probability 1 - 2 / 2^n, 93.75% at 5 and 96.9% at 6. Below it, median_ci's [min, max]
# is no 95% CI, so the sampler never stops short of it (normbench.timing.alternate).
MIN_FOR_MEDIAN_CI = 6


def median_ci(sorted_samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the median from binomial order statistics (scipy's
    `quantile_test`): the pair of ranks whose coverage under Binomial(n, 1/2) is at least
    `confidence`. A bound no rank can give (too few samples: below 6 at 95%) is the sample's
    minimum or maximum, so the CI is never NaN for a non-empty sample."""
    n = len(sorted_samples)
    if n == 0:
        return math.nan, math.nan
    low, high = _median_ranks(n, confidence)
    return float(sorted_samples[low]), float(sorted_samples[high])


@functools.lru_cache(maxsize=4096)
def _median_ranks(n: int, confidence: float) -> tuple[int, int]:
    """The ranks of median_ci's bounds for n samples: they depend on n alone, and the timing
    loop asks after every block (scipy's test costs about a millisecond)."""
    from scipy.stats import quantile_test

    ci = quantile_test(range(n), q=0, p=0.5).confidence_interval(confidence)
    low = 0 if math.isnan(ci.low) else int(ci.low)
    high = n - 1 if math.isnan(ci.high) else int(ci.high)
    return low, high


def summarize(samples: Sequence[float], confidence: float = 0.95) -> Summary:
    import numpy as np

    if len(samples) == 0:
        return Summary(0, *[math.nan] * 7)
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
    """Geometric mean of the positive finite values (NaN when there are none)."""
    from scipy.stats import gmean

    vals = [v for v in values if v > 0 and math.isfinite(v)]
    return float(gmean(vals)) if vals else math.nan


# --- Comparison statistics (docs/numerics.md section 7): bootstrap of the ratio of medians ---


def mean_log_interval(replicates: Sequence[Any]) -> tuple[float, float] | None:
    """The 95% percentile interval (on the log scale) of the mean of several cases' log-ratio
    bootstrap replicates: the CI of their geometric mean (compare's, and a speed run's
    headline). None when no replicate is finite."""
    import numpy as np

    mean_rep = np.mean(np.vstack(replicates), axis=0)
    mean_rep = mean_rep[np.isfinite(mean_rep)]
    if mean_rep.size == 0:
        return None
    lo, hi = np.quantile(mean_rep, [0.025, 0.975])
    return float(lo), float(hi)


# Fewer blocks than this make a block bootstrap too coarse (3 blocks have only 10 distinct
# resamples): below it the blocks are split into shorter runs of consecutive samples.
MIN_BOOT_BLOCKS = 8
WORKSPACE = 1 << 20  # int64 elements (8 MB) of scratch for the bootstrap


def effective_block_size(n: int, block_size: int) -> int:
    """The block length the bootstrap resamples: the timer's block, shortened so that at least
    MIN_BOOT_BLOCKS blocks exist (1 = plain bootstrap of single samples)."""
    block_size = max(1, int(block_size or 1))
    if n // block_size >= MIN_BOOT_BLOCKS:
        return block_size
    return max(1, n // MIN_BOOT_BLOCKS)


def block_median_replicates(
    samples: Sequence[float],
    block_size: int,
    resamples: int,
    rng: np.random.Generator,
    workspace: np.ndarray | None = None,
) -> np.ndarray:
    """`resamples` bootstrap replicates of the median, resampling whole blocks of consecutive
    samples with replacement (a drift inside a run stays inside its block).

    Vectorized as a weighted median: resampling blocks only changes how many times each block is
    counted, so each replicate is the median of the sorted samples weighted by their block's
    count, read off one running sum of the weights. O(resamples x n), no per-replicate loop.
    `workspace` (int64) is reused across calls: fresh multi-megabyte arrays cost as much in page
    faults as the arithmetic on them."""
    import numpy as np

    x = np.asarray(samples, dtype=float)
    n = x.size
    if n == 0:
        return np.full(resamples, np.nan)
    if workspace is None or workspace.size < n:
        workspace = np.empty(max(n, min(resamples * n, WORKSPACE)), dtype=np.int64)
    bs = effective_block_size(n, block_size)
    block_of = np.arange(n) // bs
    nb = int(block_of[-1]) + 1
    order = np.argsort(x, kind="stable")
    xs, bid = x[order], block_of[order]
    out = np.empty(resamples)
    chunk = max(1, min(resamples, workspace.size // n))
    for start in range(0, resamples, chunk):
        r = min(chunk, resamples - start)
        picks = rng.integers(0, nb, size=(r, nb))
        picks += (np.arange(r) * nb)[:, None]
        counts = np.bincount(picks.ravel(), minlength=r * nb).reshape(r, nb)
        # Replicates laid end to end, one running sum over all of them (a 1-D cumsum is fast, a
        # per-row one is not); each replicate's two middle ranks are searched in its stretch.
        flat = workspace[: r * n]
        np.take(counts, bid, axis=1, out=flat.reshape(r, n))
        np.cumsum(flat, out=flat)
        ends = flat[n - 1 :: n]
        starts = np.concatenate(([0], ends[:-1]))
        total = ends - starts
        row0 = np.arange(r) * n
        i_lo = np.searchsorted(flat, starts + (total - 1) // 2, side="right") - row0
        i_hi = np.searchsorted(flat, starts + total // 2, side="right") - row0
        out[start : start + r] = (xs[i_lo] + xs[i_hi]) / 2
    return out


@dataclass(frozen=True)
class RatioCI:
    """new/base ratio of medians with its bootstrap CI. `log_center` and `log_se` summarize the
    bootstrap distribution of log(ratio) for the one-sided tests (see `p_above`)."""

    ratio: float
    low: float
    high: float
    log_center: float
    log_se: float
    n_base: int
    n_new: int
    # Degrees of freedom of the tests: infinite (normal) for the bootstrap alone; finite when
    # an estimated between-run variance is added (compare.widen).
    df: float = math.inf
    # Processes on the smaller side when the CI is over processes (process_ci); 0 otherwise.
    processes: int = 0


def log_ratio_replicates(
    base: Sequence[float],
    base_block: int,
    new: Sequence[float],
    new_block: int,
    resamples: int = 2000,
    seed: int | Sequence[int] = 0,
    workspace: np.ndarray | None = None,
) -> np.ndarray:
    """Bootstrap replicates of log(median(new) / median(base)); the two runs are resampled
    independently from one seeded generator (same seed, same answer)."""
    import numpy as np

    if workspace is None:
        workspace = np.empty(WORKSPACE, dtype=np.int64)
    rng = np.random.default_rng(seed)
    mb = block_median_replicates(base, base_block, resamples, rng, workspace)
    mn = block_median_replicates(new, new_block, resamples, rng, workspace)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(mn) - np.log(mb)


def ratio_ci(
    base: Sequence[float],
    new: Sequence[float],
    replicates: np.ndarray,
    confidence: float = 0.95,
) -> RatioCI:
    """Percentile CI of the ratio of medians from log-ratio replicates.

    The center and standard error used by the tests are read off the same two percentiles
    (center = their midpoint, se = their half-distance / z), so "the CI lies wholly above 1+d"
    and "the one-sided test of ratio <= 1+d rejects at (1-confidence)/2" are the same statement.
    """
    import numpy as np
    from scipy.stats import norm

    a = (1 - confidence) / 2
    rep = replicates[np.isfinite(replicates)]
    med_b, med_n = float(np.median(base)), float(np.median(new))
    ratio = med_n / med_b if med_b > 0 else math.nan
    if rep.size == 0 or not math.isfinite(ratio):
        return RatioCI(ratio, math.nan, math.nan, math.nan, math.nan, len(base), len(new))
    lo, hi = np.quantile(rep, [a, 1 - a])
    z = float(norm.ppf(1 - a))
    return RatioCI(
        ratio=ratio,
        low=float(np.exp(lo)),
        high=float(np.exp(hi)),
        log_center=float((lo + hi) / 2),
        log_se=float((hi - lo) / (2 * z)),
        n_base=len(base),
        n_new=len(new),
    )


def process_groups(samples: Sequence[float], counts: Sequence[int]) -> list[list[float]]:
    """The samples split into their processes' runs: `counts[i]` consecutive samples each."""
    ends = itertools.accumulate(counts)
    return [list(samples[end - c : end]) for c, end in zip(counts, ends)]


def process_ci(
    base: Sequence[Sequence[float]], new: Sequence[Sequence[float]], confidence: float = 0.95
) -> RatioCI:
    """new/base when each side was timed in several processes: the process is the unit, as in
    pyperf, because a process keeps a speed of its own for its whole life (measured: one of six
    identical workers of eager RMSNorm 4 x 512 x 1024 ran 1.35x slower than the other five in
    every third of its run; docs/regression-gate.md), which no resampling of one process's
    samples can see. Each process gives the log of its median; the ratio is the exponent of the
    difference of the two sides' mean logs (the ratio of the geometric means of the processes'
    medians), its CI Welch's t-interval over the processes. `df` carries Welch's degrees of
    freedom to the tests."""
    import warnings

    import numpy as np
    from scipy.stats import ttest_ind

    lb = np.log([float(np.median(g)) for g in base])
    ln = np.log([float(np.median(g)) for g in new])
    center = float(ln.mean() - lb.mean())
    se = math.sqrt(lb.var(ddof=1) / len(lb) + ln.var(ddof=1) / len(ln))
    with warnings.catch_warnings():
        # One side's medians all equal (a coarse timer) is exact here, not a precision loss.
        warnings.simplefilter("ignore", RuntimeWarning)
        welch = ttest_ind(ln, lb, equal_var=False)
        low, high = welch.confidence_interval(confidence_level=confidence)
    # Medians identical on both sides: Welch's df is 0/0 (scipy reports 1); keep the pooled df.
    df = float(welch.df) if se > 0 else len(lb) + len(ln) - 2.0
    return RatioCI(
        ratio=math.exp(center),
        low=math.exp(low),
        high=math.exp(high),
        log_center=center,
        log_se=se,
        n_base=sum(len(g) for g in base),
        n_new=sum(len(g) for g in new),
        df=df,
        processes=min(len(lb), len(ln)),
    )


def p_above(log_center: float, log_se: float, bound: float, df: float = math.inf) -> float:
    """One-sided p-value of H0: ratio <= bound (small p: the ratio is above `bound`), from the
    normal approximation of the bootstrap distribution of log(ratio) (Student's t with `df`
    degrees of freedom when part of the variance is estimated). A continuous p-value is needed
    because Holm asks for levels such as 0.05/300, finer than any percentile of a few thousand
    replicates can resolve."""
    from scipy.stats import norm, t

    if not (math.isfinite(log_center) and math.isfinite(log_se)) or bound <= 0:
        return 1.0
    d = log_center - math.log(bound)
    if log_se <= 0:
        return 0.0 if d > 0 else 1.0
    return float(t.sf(d / log_se, df) if math.isfinite(df) else norm.sf(d / log_se))


def p_below(log_center: float, log_se: float, bound: float, df: float = math.inf) -> float:
    """One-sided p-value of H0: ratio >= bound (small p: the ratio is below `bound`)."""
    if not (math.isfinite(log_center) and math.isfinite(log_se)) or bound <= 0:
        return 1.0
    # Mirror in log space: ratio < bound  <=>  1/ratio > 1/bound.
    return p_above(-log_center, log_se, 1.0 / bound, df)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values (Holm 1979): sort ascending, multiply the k-th
    smallest (1-based) by m - k + 1, carry the running maximum, cap at 1. Rejecting every
    hypothesis whose adjusted p is <= alpha controls the family-wise error rate at alpha."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * pvalues[i]))
        adjusted[i] = running
    return adjusted
