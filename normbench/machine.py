"""What else the machine did while a case was timed: the evidence behind "unreliable".

A timing taken while other processes ran on the same cores, while the hypervisor stole time, or
while the clock fell measures the machine's moment, not the code (docs/numerics.md section 6).
`MachineWatch` reads the kernel's counters around the timed blocks (and, on CUDA, NVML between
them through normbench.machine_cuda) and `MachineState.busy_reasons` says in words what makes a
timing untrustworthy. Linux counters only; elsewhere the fields are None and nothing is claimed.

- others' CPU: the CPU time all processes used (/proc/stat) minus this process's own
  (/proc/self/stat), as a share of every online CPU over the wall time. Per case and exact to a
  clock tick, unlike the load average (a one-minute moving average that includes this process);
- steal: the time the hypervisor ran other guests on this VM's CPUs (/proc/stat);
- the lowest CPU clock seen (/proc/cpuinfo), or on CUDA the lowest SM clock and NVML's
  clock-event reasons (throttling).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

# Busy thresholds, measured on this project's 2-core VM (docs/benchmarks.md "Busy machine"):
# quiet, other processes used 0.0% (median) and at most 5.7% of the CPUs while a case was timed
# and steal stayed 0; with a busy-loop process per core they used 59-64%, and a 2-thread case
# ran about 20x slower. Above these a timing describes the neighbours as much as the code.
OTHERS_CPU_LIMIT = 0.15
STEAL_LIMIT = 0.05
CLOCK_DROP_LIMIT = 0.10  # the clock fell by more than this during the case
# The kernel counts CPU time in clock ticks (usually 100 a second), and /proc/stat and this
# process's own counter round differently: a couple of ticks of difference is no neighbour. So
# TICK_SLACK ticks are forgiven, and an interval shorter than MIN_TICKS ticks of capacity (0.25 s
# on 2 CPUs) is judged as if it had lasted MIN_TICKS: one tick would be 2-10% of it, so a share
# is only claimed when the ticks seen would exceed the limit even over MIN_TICKS. (Not judging
# short intervals at all once let 10 ticks of others in 24, a 730x slower A/A case, through.)
TICK_SLACK = 2
MIN_TICKS = 50


@dataclass(frozen=True)
class CpuTimes:
    """Counters at one instant (clock ticks, except wall)."""

    wall: float
    busy: int  # every CPU's non-idle time, steal excluded
    steal: int
    own: int  # this process's user + system time
    mhz: float | None


@dataclass(frozen=True)
class MachineState:
    """What the machine did over a timed interval; None where it could not be read."""

    wall_s: float
    others_cpu: float | None = None  # share of all online CPUs used by other processes
    steal: float | None = None  # share of all online CPUs stolen by the hypervisor
    load_avg: float | None = None  # 1-minute load average at the end
    cpus: int | None = None
    ticks: float | None = None  # the interval's CPU capacity in clock ticks (wall x Hz x CPUs)
    clock_mhz: float | None = None  # the lowest clock seen (CPU MHz or CUDA SM clock)
    max_clock_mhz: float | None = None
    throttle: str | None = None  # CUDA: NVML's clock-event reasons seen, in words

    def busy_reasons(self) -> tuple[str, ...]:
        """Why a timing over this interval cannot be trusted, in words (empty: nothing seen)."""
        out = []
        # Below MIN_TICKS of capacity a share is weighed over MIN_TICKS (see above).
        weight = 1.0 if self.ticks is None else min(1.0, self.ticks / MIN_TICKS)
        if self.others_cpu is not None and self.others_cpu * weight > OTHERS_CPU_LIMIT:
            out.append(f"other processes used {self.others_cpu:.0%} of the CPUs while it was timed")
        if self.steal is not None and self.steal * weight > STEAL_LIMIT:
            out.append(f"the hypervisor stole {self.steal:.0%} of the CPU time (steal)")
        lo, hi = self.clock_mhz, self.max_clock_mhz
        if lo and hi and lo < (1 - CLOCK_DROP_LIMIT) * hi:
            out.append(f"the clock fell from {hi:.0f} to {lo:.0f} MHz")
        if self.throttle:
            out.append(f"the GPU was throttled ({self.throttle})")
        return tuple(out)

    def fields(self) -> dict[str, float | str | None]:
        """The SpeedResult fields of this state (percentages, rounded for the files)."""

        def pct(x: float | None) -> float | None:
            return None if x is None else round(100 * x, 1)

        return {
            "others_cpu_pct": pct(self.others_cpu),
            "steal_pct": pct(self.steal),
            "load_avg": None if self.load_avg is None else round(self.load_avg, 2),
            "clock_mhz": self.clock_mhz,
            "throttle": self.throttle,
        }


def _ticks() -> int:
    try:
        return os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError, AttributeError):
        return 100


def read_cpu_times(
    pids: tuple[int, ...] = (),
    proc: Path = Path("/proc"),
) -> CpuTimes | None:
    """The counters now, this process's own time with that of `pids` (its worker processes);
    None where /proc is not there (not Linux)."""
    wall = time.perf_counter()
    try:
        fields = (proc / "stat").read_text().split("\n", 1)[0].split()
        # cpu user nice system idle iowait irq softirq steal guest guest_nice: guest time is
        # already inside user and nice, idle and iowait are not busy, steal is apart.
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
        own = _process_ticks(proc / "self" / "stat")
    except (OSError, ValueError, IndexError):
        return None
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):  # a worker that has exited
            own += _process_ticks(proc / str(pid) / "stat")
    busy = user + nice + system + irq + softirq
    return CpuTimes(wall, busy, steal, own, _cpu_mhz(proc / "cpuinfo"))


def _process_ticks(stat: Path) -> int:
    """utime + stime of one process (fields 14 and 15 of /proc/PID/stat); the command may hold
    spaces, so the fields are counted from its closing parenthesis."""
    rest = stat.read_text().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def _cpu_mhz(cpuinfo: Path) -> float | None:
    """The lowest current clock of the CPUs, where the kernel reports one."""
    try:
        mhz = [float(line.split(":")[1]) for line in cpuinfo.read_text().splitlines()
               if line.startswith("cpu MHz")]  # fmt: skip
    except (OSError, ValueError, IndexError):
        return None
    return min(mhz) if mhz else None


def cpu_state(a: CpuTimes, b: CpuTimes, cpus: int, hz: int | None = None) -> MachineState:
    """The interval from `a` to `b` on `cpus` online CPUs."""
    hz = hz or _ticks()
    wall = max(b.wall - a.wall, 1e-9)
    capacity = wall * hz * cpus
    others = max(0, (b.busy - a.busy) - (b.own - a.own) - TICK_SLACK) / capacity
    clocks = [m for m in (a.mhz, b.mhz) if m]
    return MachineState(
        wall_s=wall,
        others_cpu=min(1.0, others),
        steal=min(1.0, (b.steal - a.steal) / capacity),
        load_avg=_load(),
        cpus=cpus,
        ticks=capacity,
        clock_mhz=min(clocks) if clocks else None,
        max_clock_mhz=max(clocks) if clocks else None,
    )


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def online_cpus() -> int:
    """The CPUs /proc/stat adds up (all online ones, not only this process's affinity)."""
    return os.cpu_count() or 1


class MachineWatch:
    """Counters around a timed interval: `start()`, `sample()` between blocks (CUDA: NVML),
    `stop()` -> MachineState."""

    def __init__(self, device: str = "cpu", pids: tuple[int, ...] = ()) -> None:
        self.device = device
        self.pids = pids  # processes of this run (ab's workers): their CPU time is not others'
        self._start: CpuTimes | None = None
        self._nvml = None
        if device.startswith("cuda"):
            from normbench.machine_cuda import NvmlWatch

            self._nvml = NvmlWatch(device)

    def start(self) -> None:
        self._start = read_cpu_times(self.pids)
        self.sample()

    def sample(self) -> None:
        if self._nvml is not None:
            self._nvml.sample()

    def stop(self) -> MachineState:
        end = read_cpu_times(self.pids)
        if self._start is None or end is None:
            state = MachineState(wall_s=0.0, load_avg=_load())
        else:
            state = cpu_state(self._start, end, online_cpus())
        if self._nvml is not None:
            gpu = self._nvml.result()
            self._nvml.close()
            # On CUDA the clock that matters is the GPU's. Its slowdowns are NVML's reasons: a
            # busy clock below the maximum boost clock is normal, not a fall.
            state = MachineState(
                wall_s=state.wall_s, others_cpu=state.others_cpu, steal=state.steal,
                load_avg=state.load_avg, cpus=state.cpus, ticks=state.ticks,
                clock_mhz=gpu.get("clock_mhz"),
                throttle=gpu.get("throttle"),
            )  # fmt: skip
        return state
