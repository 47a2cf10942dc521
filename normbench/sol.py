"""The speed-of-light reference of a case: a copy of its ideal bytes, timed in the same run and
cache state, so "% of SOL" compares like with like (docs/numerics.md section 6).

A memory-bound norm moves at least its ideal bytes (normbench.options.ideal_bytes); a copy of
half as many bytes moves the same number (it reads them and writes them). Timed with the same
timer, the same cache state (cold: the source rotated through copies that span twice the
last-level cache, the destination a fresh allocation from the same allocator as the case's
output) and in the same minutes as the case, its time is the fastest such traffic takes here.
A case above 100% of it is flagged with the reason (`above_sol_note`), never printed silently.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from normbench.cache_state import rotation_count
from normbench.fmt import fmt_bytes
from normbench.timing import TimingConfig, measure

if TYPE_CHECKING:
    from normbench.timing import Timing


class SolReference:
    """Copies timed once per byte count (and cache state) in a run, reused by its cases."""

    def __init__(self, device: str, llc_bytes: int, available: int | None = None) -> None:
        self.device = device
        self.llc = llc_bytes
        self.available = available
        self._done: dict[tuple[int, bool], Timing] = {}

    def timing(self, ideal_bytes: int, config: TimingConfig) -> Timing:
        """A copy of ideal_bytes / 2 bytes (as float32 elements), timed under `config`."""
        key = (ideal_bytes, config.hot)
        if key not in self._done:
            self._done[key] = self._measure(ideal_bytes, config)
        return self._done[key]

    def _measure(self, ideal_bytes: int, config: TimingConfig) -> Timing:
        import torch

        n = max(1, ideal_bytes // 8)  # float32 elements: 4 bytes read + 4 written each
        k = 1 if config.hot else rotation_count(4 * n, self.llc, self.available)
        sources = [torch.ones(n, dtype=torch.float32, device=self.device) for _ in range(k)]
        cycle = itertools.cycle(sources)
        # clone(): a fresh destination from the allocator on every call, as the case's output.
        timing = measure(lambda: next(cycle).clone(), self.device, config)
        del sources
        return timing


def above_sol_note(
    pct: float, low: float, high: float, nbytes: int, cache: str, device: str = "cpu"
) -> str | None:
    """Why a case is above 100% of its SOL reference (None when it is not); `low`/`high` the
    bounds of the percentage from the two medians' 95% CIs (wider than one 95% interval)."""
    if pct <= 100:
        return None
    what = f"a copy of the same {fmt_bytes(nbytes)}, {cache}"
    if low <= 100:
        return (
            f"above its SOL reference ({what}) within the noise: its CI {low:.0f}-{high:.0f}% "
            "includes 100%"
        )
    why = "a copy writes half its bytes"
    if not device.startswith("cuda"):
        why += ", and on a CPU a write also reads the line it fills"
    return (
        f"above its SOL reference ({what}): it moves its bytes faster than a copy does here ({why})"
    )
