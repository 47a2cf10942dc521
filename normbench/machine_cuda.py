"""NVML facts of the GPU a torch CUDA device is, read while its timed blocks run.

CUDA and NVML number GPUs differently: CUDA_VISIBLE_DEVICES renumbers and hides, the default
CUDA_DEVICE_ORDER is fastest first while NVML's is PCI order, and a MIG instance is no NVML
index at all. So the device is found by its UUID (or PCI bus id), never by the CUDA index
(docs/numerics.md section 6). Nothing here raises: NVML errors give None and a note.
"""

from __future__ import annotations

import contextlib
import math
import time
import weakref
from typing import Any

# NVML reads are host calls of tens of microseconds: at most one per this many seconds.
MIN_INTERVAL_S = 0.05

# Reasons a clock is held low, in the words a row prints; by NVML's constant names without the
# prefix (nvmlClocksEventReason..., or the older nvmlClocksThrottleReason...).
REASON_WORDS = (
    ("HwThermalSlowdown", "hardware thermal slowdown"),
    ("HwSlowdown", "hardware slowdown"),
    ("HwPowerBrakeSlowdown", "hardware power brake"),
    ("SwThermalSlowdown", "software thermal slowdown"),
    ("SwPowerCap", "power cap"),
    ("SyncBoost", "sync boost"),
    ("DisplayClockSetting", "display clock setting"),
    ("BoardLimit", "board limit"),
    ("Reliability", "reliability limit"),
)
# Not a slowdown of timed work: idle (nothing running at that instant) and clocks set by the
# administrator (applications clocks: the same in every run on that machine).
QUIET_REASONS = ("GpuIdle", "ApplicationsClocksSetting")

# The watches that sample themselves during timed blocks: from creation until closed or dropped.
_active: weakref.WeakSet[NvmlWatch] = weakref.WeakSet()


def reason_bit(pynvml: Any, name: str) -> int | None:
    for prefix in ("nvmlClocksEventReason", "nvmlClocksThrottleReason"):
        bit = getattr(pynvml, prefix + name, None)
        if bit is not None:
            return int(bit)
    return None


def reason_words(pynvml: Any, bits: int) -> str | None:
    """The clock event reasons in `bits`, in words ("hardware thermal slowdown, power cap");
    None when only quiet reasons (idle, applications clocks) or none are set."""
    for name in QUIET_REASONS:
        bits &= ~(reason_bit(pynvml, name) or 0)
    words = []
    for name, word in REASON_WORDS:
        bit = reason_bit(pynvml, name)
        if bit and bits & bit:
            words.append(word)
            bits &= ~bit
    if bits:
        words.append(f"other reason bits {bits:#x}")
    return ", ".join(words) or None


def cuda_index(device: str) -> int:
    """The torch CUDA index of "cuda" (the current device) or "cuda:N"."""
    import torch

    index = torch.device(device).index
    return torch.cuda.current_device() if index is None else index


def nvml_handle(device: str) -> tuple[Any | None, str]:
    """The NVML handle of torch CUDA `device` ("cuda" or "cuda:N"), or None and why. NVML must
    be initialised (pynvml.nvmlInit) while the handle is used. For a MIG instance, the handle of
    the GPU it is part of: clocks and their reasons are the whole GPU's."""
    try:
        import pynvml
    except ImportError:
        return None, "pynvml not installed (pip install nvidia-ml-py)"
    try:
        import torch

        props = torch.cuda.get_device_properties(cuda_index(device))
    except Exception as exc:
        return None, f"no properties for {device} ({exc})"
    uuid = str(getattr(props, "uuid", "") or "").strip().lower()
    if uuid:
        handle = _by_uuid(pynvml, uuid)
        if handle is not None:
            return handle, ""
    bus = pci_bus_id(props)
    if bus:
        try:
            return pynvml.nvmlDeviceGetHandleByPciBusId(bus), ""
        except Exception:
            pass
    return None, f"no NVML device has the UUID {uuid or '?'} or PCI bus id {bus or '?'} of {device}"


def _by_uuid(pynvml: Any, uuid: str) -> Any | None:
    """torch prints the 16 UUID bytes bare; NVML names a GPU "GPU-<uuid>" and a MIG instance
    "MIG-<uuid>". Looked up directly, else among every GPU and its MIG instances."""
    bare = uuid.split("-", 1)[1] if uuid.startswith(("gpu-", "mig-")) else uuid
    for name in (f"GPU-{bare}", f"MIG-{bare}"):
        try:
            return _whole_gpu(pynvml, pynvml.nvmlDeviceGetHandleByUUID(name))
        except Exception:
            continue
    try:
        count = pynvml.nvmlDeviceGetCount()
    except Exception:
        return None
    for i in range(count):
        try:
            gpu = pynvml.nvmlDeviceGetHandleByIndex(i)
            if _uuid_of(pynvml, gpu).endswith(bare):
                return gpu
            migs = pynvml.nvmlDeviceGetMaxMigDeviceCount(gpu)
        except Exception:
            continue
        for j in range(migs):
            with contextlib.suppress(Exception):  # an empty MIG slot
                mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu, j)
                if _uuid_of(pynvml, mig).endswith(bare):
                    return gpu
    return None


def _uuid_of(pynvml: Any, handle: Any) -> str:
    u = pynvml.nvmlDeviceGetUUID(handle)
    return (u.decode() if isinstance(u, bytes) else str(u)).lower()


def _whole_gpu(pynvml: Any, handle: Any) -> Any:
    try:
        if pynvml.nvmlDeviceIsMigDeviceHandle(handle):
            return pynvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle)
    except Exception:
        pass
    return handle


def pci_bus_id(props: Any) -> str | None:
    """NVML's "domain:bus:device.function" from torch's properties where this torch has them
    (pci_domain_id, pci_bus_id, pci_device_id)."""
    parts = [getattr(props, f"pci_{k}_id", None) for k in ("domain", "bus", "device")]
    if any(p is None for p in parts):
        return None
    domain, bus, dev = (int(p) for p in parts)
    return f"{domain:08X}:{bus:02X}:{dev:02X}.0"


class NvmlWatch:
    """Clock event reasons and the SM clock of one CUDA device, read while its work runs.

    From its creation until `close()` (or until it is dropped) a watch is active:
    normbench.timing_cuda's takers call `sample_active()` after queueing each timed block and
    before waiting for it, so those reads see the GPU busy with timed work. `sample()` may also
    be called directly (between blocks: the clock is still up just after a block; a read that
    finds the GPU idle keeps no clock). `result()` gives what was seen; it never raises."""

    def __init__(self, device: str, min_interval_s: float = MIN_INTERVAL_S) -> None:
        self.device = device
        self.min_interval_s = min_interval_s
        self.note = ""
        self.reads = 0
        self.max_clock_mhz: int | None = None
        self._pynvml: Any = None
        self._handle: Any = None
        self._bits = 0
        self._clocks: list[int] = []
        self._last = -math.inf
        self._open = False  # NVML initialised by this watch, to shut down once
        if not device.startswith("cuda"):
            self.note = "not a CUDA device"
            return
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception as exc:  # ImportError, NVMLError_LibraryNotFound, DriverNotLoaded...
            self.note = f"NVML unavailable ({exc})"
            return
        self._pynvml = pynvml
        self._open = True
        self._handle, why = nvml_handle(device)
        if self._handle is None:
            self.note = why
            self.close()
            return
        try:
            self.max_clock_mhz = int(
                pynvml.nvmlDeviceGetMaxClockInfo(self._handle, pynvml.NVML_CLOCK_SM)
            )
        except Exception:
            self.max_clock_mhz = None
        _active.add(self)

    def sample(self) -> None:
        """One read of the reasons and the SM clock, at most one per min_interval_s. A read that
        finds the GPU idle keeps its reasons but not its clock (an idle clock is no slowdown)."""
        if self._handle is None:
            return
        now = time.monotonic()
        if now - self._last < self.min_interval_s:
            return
        self._last = now
        bits = self._reasons()
        idle = reason_bit(self._pynvml, "GpuIdle") or 0
        if bits is not None:
            self._bits |= bits
        if bits is not None and bits & idle:
            self.reads += 1
            return
        try:
            clock = int(
                self._pynvml.nvmlDeviceGetClockInfo(self._handle, self._pynvml.NVML_CLOCK_SM)
            )
        except Exception:
            clock = None
        if clock is not None:
            self._clocks.append(clock)
        # A read is either fact: a GPU without clock event reasons still tells its clock.
        if bits is not None or clock is not None:
            self.reads += 1

    def _reasons(self) -> int | None:
        for name in (
            "nvmlDeviceGetCurrentClocksEventReasons",
            "nvmlDeviceGetCurrentClocksThrottleReasons",
        ):
            fn = getattr(self._pynvml, name, None)
            if fn is None:
                continue
            try:
                return int(fn(self._handle))
            except Exception:
                continue
        return None

    def result(self) -> dict[str, Any]:
        """throttle: the slowdown reasons seen, in words (None: none, or only idle and
        applications clocks); clock_mhz: the lowest SM clock seen while busy; max_clock_mhz."""
        throttle = reason_words(self._pynvml, self._bits) if self._pynvml and self._bits else None
        return {
            "throttle": throttle,
            "clock_mhz": min(self._clocks) if self._clocks else None,
            "max_clock_mhz": self.max_clock_mhz,
        }

    def close(self) -> None:
        """Shut NVML down (once; pynvml counts its inits). The result stays readable."""
        _active.discard(self)
        if self._open:
            self._open = False
            with contextlib.suppress(Exception):
                self._pynvml.nvmlShutdown()
        self._handle = None

    def __enter__(self) -> NvmlWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def sample_active() -> None:
    """Sample every active NvmlWatch (the timed blocks call this; free when none is active)."""
    for watch in list(_active):
        watch.sample()
