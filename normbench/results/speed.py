"""The speed suite's result: one case's timing and what is derived from it.

Measurements: `time` (ms: the median, p20/p80, the CI and the raw samples), `bandwidth` (GB/s
from the ideal byte model), `sol_time` (ms: a copy of the case's ideal bytes, timed in the same
run and cache state: its speed-of-light reference) and `pct_sol` (100 x sol_time / time, with a
note when above 100%), `speedup` (eager time / this time, with its CI) and, for a compiling
backend, `compile_time` (s); with --memory, the memory suite's measurements too. Version-1 runs
carry `pct_copy_bw` (% of one device-wide copy bandwidth) instead of the SOL pair. The fields say
how the timing was taken, in which cache state, what the machine was doing meanwhile, and, when
the timing cannot be trusted, why (docs/numerics.md section 6)."""

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
    cache: str | None = None  # "cold" (inputs rotated / cache flushed per sample) or "hot"
    rotations: int | None = None  # copies of the inputs a cold timing rotated through
    launch_overhead_s: float | None = None  # CUDA: host seconds to issue one call
    # What else the machine did while the case was timed (normbench.machine): the share of all
    # CPUs that other processes used, the hypervisor's steal time, the 1-minute load average,
    # the lowest clock seen (CPU MHz, or the GPU's SM clock) and, on CUDA, NVML's clock-event
    # reasons (throttling). None where not measured.
    others_cpu_pct: float | None = None
    steal_pct: float | None = None
    load_avg: float | None = None
    clock_mhz: float | None = None
    throttle: str | None = None
    # Why this timing cannot be trusted, in words ("; "-joined); None when nothing was found.
    # compare judges no unreliable case a regression or an improvement.
    unreliable: str | None = None

    @property
    def time(self) -> Measurement | None:
        """The timing, when the case was timed."""
        m = self.get("time")
        return m if m is not None and m.ok else None

    @property
    def reliable(self) -> bool:
        return not self.unreliable

    @property
    def group(self) -> tuple[str, str, str, str, str]:
        """The cases that should be compared with each other: all but the backend."""
        return (self.variant, self.options, self.dtype, str(self.shape), self.mode)
