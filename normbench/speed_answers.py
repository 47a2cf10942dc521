"""What a speed run answers beyond each case's own timing: each backend's speedup over eager, and
the headline "Is RMSNorm faster than LayerNorm here?", each with a 95% CI (docs/numerics.md
section 6).

Both are ratios of medians, and their CIs come from the block bootstrap that `compare` uses
(normbench.stats): a ratio whose CI includes 1 is a tie, worded "can't tell", never "faster" or
"slower". Faster and slower are both x factors of at least 1, so a 1.5x gap reads the same in
either direction."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from normbench.results import Measurement
from normbench.results.speed import SpeedResult

if TYPE_CHECKING:
    import numpy as np

RESAMPLES = 2000  # as compare: enough for stable 2.5% / 97.5% percentiles
SEED = 0


@dataclass(frozen=True, eq=False)  # holds an array: compared by identity
class TimeRatio:
    """time(new) / time(base) (ratio of medians), its 95% CI and the bootstrap replicates of its
    log (for a geometric mean's CI over several such ratios)."""

    ratio: float
    low: float
    high: float
    log_replicates: np.ndarray


def time_ratio(
    new: SpeedResult, base: SpeedResult, key: str, workspace: np.ndarray | None = None
) -> TimeRatio | None:
    """median time(new) / median time(base) with its bootstrap CI from the two cases' raw samples
    (blocks resampled as the timer took them), seeded by `key` so the same results give the same
    CI whatever else is in the run. None when either case has no raw samples (a version-1 file)
    or the CI cannot be formed."""
    from normbench.compare_pairs import block_of
    from normbench.stats import log_ratio_replicates, ratio_ci

    tn, tb = new.time, base.time
    if tn is None or tb is None or not tn.samples or not tb.samples:
        return None
    seed = [SEED, zlib.crc32(key.encode())]
    rep = log_ratio_replicates(
        tb.samples, block_of(base), tn.samples, block_of(new), RESAMPLES, seed, workspace
    )
    ci = ratio_ci(tb.samples, tn.samples, rep)
    if not (math.isfinite(ci.low) and math.isfinite(ci.high)):
        return None
    return TimeRatio(ci.ratio, ci.low, ci.high, rep)


def _workspace() -> np.ndarray:
    # One scratch buffer for all the bootstraps of a run (see stats.block_median_replicates).
    import numpy as np

    from normbench.stats import WORKSPACE

    return np.empty(WORKSPACE, dtype=np.int64)


# In a speedup's note where a side was timed while the machine was unreliable: the view marks it
# as a tie ("~"), since its CI describes spoiled samples.
NOT_TOLD_APART = "not told apart"


def add_speedups(results: list[SpeedResult]) -> list[SpeedResult]:
    """Each backend's speedup over eager for the same variant/options/dtype/shape/mode, as a
    measurement after the case's own speed measurements: eager time / this time, with the 95% CI
    of that ratio of medians when both cases kept their raw samples (eager's own is exactly 1)."""
    eager = {r.group: r for r in results if r.time and r.backend == "eager"}
    workspace = _workspace() if eager else None
    out = []
    for r in results:
        ref = eager.get(r.group)
        base = ref.time.value if ref is not None and ref.time is not None else None
        if r.time and base and r.time.value:
            assert ref is not None
            low = high = None
            if ref is r and r.time.samples:  # against itself: exactly 1
                low = high = 1.0
            else:
                # Speedup = eager / this: the ratio with this case as the base.
                tr = time_ratio(ref, r, f"speedup/{r.case_id}", workspace)
                if tr is not None:
                    low, high = tr.low, tr.high
            note = "eager time / this time"
            busy = [x.backend for x in (ref, r) if x.unreliable]
            if busy and ref is not r:  # its CI describes samples a busy machine spoiled
                note += f"; {NOT_TOLD_APART}: {' and '.join(dict.fromkeys(busy))} timed unreliable"
            speedup = Measurement(
                "speedup", base / r.time.value, "x", note=note, ci_low=low, ci_high=high,
            )  # fmt: skip
            r = r.replace_measurements((*r.measurements, speedup))
        out.append(r)
    return out


def not_told_apart(low: float | None, high: float | None, note: object) -> bool:
    """A speedup over eager the measurement cannot tell from 1x: its CI includes 1 (`ties`), or
    a side was timed while the machine was unreliable (its note says so). The table's and
    the figure's "~"."""
    return ties(low, high) or (isinstance(note, str) and NOT_TOLD_APART in note)


def ties(low: float | None, high: float | None) -> bool:
    """A ratio's CI that cannot tell it from 1: it includes 1 (and is not the exact [1, 1] of a
    case against itself)."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return False
    return low <= 1 <= high and low < high


def ratio_words(ratio: float, low: float | None, high: float | None, subject: str) -> str:
    """A time ratio (subject's time / the other's) and its 95% CI in words, the same both ways:
    "Nx slower" is the ratio, "Nx faster" its inverse, so N >= 1 either way; "can't tell" when
    the CI includes 1. Without a CI the figure stands alone and says so."""
    has_ci = low is not None and high is not None and math.isfinite(low) and math.isfinite(high)
    if has_ci and low <= 1 <= high:
        lo, hi = _figures(low, high)
        return f"can't tell ({subject} takes {lo}x-{hi}x the time, 95% CI)"
    if has_ci:
        # Direction from the CI, which lies wholly on one side of 1; faster is the inverse.
        word = "slower" if low > 1 else "faster"
        if word == "faster":
            ratio, low, high = 1 / ratio, 1 / high, 1 / low
        lo, hi, r = _figures(low, high, ratio)
        return f"{subject} {r}x {word} (95% CI {lo}x-{hi}x)"
    if ratio == 1:
        return f"{subject} the same time (no CI)"
    word, r = ("slower", ratio) if ratio > 1 else ("faster", 1 / ratio)
    return f"{subject} {r:.2f}x {word} (no CI)"


def _figures(low: float, high: float, *more: float) -> tuple[str, ...]:
    """The CI's bounds (then `more`) with 2 decimals, or up to 4 where 2 would print a CI of
    zero width or a bound of 1 for a CI that excludes it (1.998x-2.004x, not 2.00x-2.00x)."""
    for d in (2, 3, 4):
        lo, hi = f"{low:.{d}f}", f"{high:.{d}f}"
        one = f"{1:.{d}f}"
        if lo != hi and (low <= 1 <= high or one not in (lo, hi)):
            break
    return (lo, hi, *(f"{x:.{d}f}" for x in more))


def geomean_ratio(ratios: list[float], cis: list[TimeRatio | None]) -> tuple[float, float, float]:
    """Geometric mean of the ratios, with a 95% CI from the mean of the cases' log replicates
    (as compare's geometric mean); the CI is NaN unless every ratio has its replicates."""
    from normbench.stats import geomean, mean_log_interval

    point = geomean(ratios)
    if not cis or any(c is None for c in cis):
        return point, math.nan, math.nan
    interval = mean_log_interval([c.log_replicates for c in cis if c is not None])
    if interval is None:
        return point, math.nan, math.nan
    return point, math.exp(interval[0]), math.exp(interval[1])


def rms_ln_ratios(results: list[SpeedResult]) -> dict[str, tuple[float, float, float]]:
    """Per backend, time(rmsnorm) / time(layernorm) as (geometric mean, 95% CI low, high) over
    the shapes, dtypes and modes where both ran; the CI is NaN where a case has no samples."""
    timed = {
        (r.backend, r.variant, r.dtype, str(r.shape), r.mode): r
        for r in results
        if r.time and r.time.value
    }
    workspace = None
    out = {}
    for b in dict.fromkeys(k[0] for k in timed):
        ratios, cis = [], []
        for k, rms in timed.items():
            ln = timed.get((b, "layernorm", *k[2:]))
            if k[0] != b or k[1] != "rmsnorm" or ln is None:
                continue
            assert rms.time is not None and ln.time is not None and ln.time.value
            ratios.append(rms.time.value / ln.time.value)
            if workspace is None:
                workspace = _workspace()
            cis.append(time_ratio(rms, ln, f"rms_vs_ln/{rms.case_id}", workspace))
        if ratios:
            out[b] = geomean_ratio(ratios, cis)
    return out


def rms_vs_ln(results: list[SpeedResult]) -> str | None:
    """The one-line answer: is RMSNorm faster than LayerNorm here, per backend (rms_ln_ratios
    in words; "can't tell" where the CI includes 1). Unreliable timings (SpeedResult.unreliable)
    are left out: a backend with no reliable pair gets "can't tell" and the reason."""
    reliable = rms_ln_ratios([r for r in results if r.reliable])
    every = rms_ln_ratios(results) if any(not r.reliable for r in results) else reliable
    parts = [
        f"{b}: {ratio_words(*reliable[b], 'RMSNorm')}"
        if b in reliable
        else f"{b}: can't tell (its cases were timed while unreliable)"
        for b in every
    ]
    if not parts:
        return None
    left_out = sum(1 for r in results if r.time and not r.reliable)
    tail = f" ({left_out} unreliable cases left out.)" if left_out and reliable else ""
    return (
        "Is RMSNorm faster than LayerNorm here? RMSNorm vs LayerNorm: "
        + "; ".join(parts)
        + "."
        + tail
    )
