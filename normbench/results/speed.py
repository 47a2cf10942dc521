"""The speed suite's result: one case's timing and what is derived from it.

Measurements: `time` (ms: the median, p20/p80, the CI and the raw samples), `bandwidth` (GB/s
from the ideal byte model), `pct_copy_bw` (% of the measured copy bandwidth), `speedup` (eager
time / this time) and, for a compiling backend, `compile_time` (s); with --memory, the memory
suite's measurements too. The fields say how the timing was taken."""

from __future__ import annotations

from dataclasses import dataclass

from normbench.results.memory import MemoryFields
from normbench.results.model import Measurement, result_kind


@result_kind("speed")
@dataclass(frozen=True)
class SpeedResult(MemoryFields):
    block_size: int | None = None  # calls per timed block
    inner_loops: int | None = None  # calls per sample
    stopped: str | None = None  # why sampling stopped (CI reached, budget spent)
    timer: str | None = None  # the clock used (CUDA events, perf_counter)
    ideal_bytes: int | None = None  # the byte model's bytes for this case
    warmup_calls: int | None = None

    @property
    def time(self) -> Measurement | None:
        """The timing, when the case was timed."""
        m = self.get("time")
        return m if m is not None and m.ok else None

    @property
    def group(self) -> tuple[str, str, str, str, str]:
        """The cases that should be compared with each other: all but the backend."""
        return (self.variant, self.options, self.dtype, str(self.shape), self.mode)
