"""The environment fingerprint: what ran, where, with which versions, and how fast memory is.

Every saved run carries it; `compare` refuses runs whose fingerprints differ in the keys below.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Two runs are comparable only when these agree (docs/numerics.md section 7).
FINGERPRINT_KEYS = ("device_name", "driver", "torch", "triton", "threads")

# PyTorch's CPU allocator asks for transparent huge pages (madvise) for allocations of 2 MB and
# more when this is set; it reads it once, at its first allocation, so it is set before torch
# is imported. Measured on this project's 2-core VM (4 x 128 x 1024 fp32 LayerNorm written as
# composite model code, 1 thread, 5 processes x 10 visits of 0.3 s): without it the visit
# medians ranged from 0.53 to 8.8 ms (one process stayed at ~7.8 ms throughout), with it from
# 0.52 to 0.80 ms. Pages of 4 KB behind every fresh activation made the timing a measurement
# of the VM's page tables, not of the kernel. The CUDA caching allocator has no such cost.
THP_ENV = "THP_MEM_ALLOC_ENABLE"


# glibc's malloc gives large blocks back to the kernel (munmap, or trimming the heap's top) on
# free, and its thresholds move with the process's history. A tensor freed and allocated again
# each call then costs page faults or not depending on that history: measured on this VM,
# F.rms_norm 4 x 512 x 1024 fp32 (2 threads, fresh processes, identical code) took 4068 minor
# faults per call and 6.1-7.3 ms in two processes, 0 faults and 0.40 ms in a third. Keeping
# freed memory in the heap (no mmap, no trimming) makes every process reach the same steady
# state, the one a long-running process or the CUDA caching allocator has: the timing measures
# the kernel, not the kernel's page faults. The values are glibc's mallopt() parameters.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
STEADY_ENV = "NORMBENCH_STEADY_HEAP"  # "0": leave glibc's malloc as it is


def prepare_cpu_memory() -> None:
    """Before torch is imported: ask torch's CPU allocator for huge pages (unless the user set
    THP_MEM_ALLOC_ENABLE), and keep freed memory in the heap (steady_heap)."""
    if sys.platform.startswith("linux") and "torch" not in sys.modules:
        os.environ.setdefault(THP_ENV, "1")
    steady_heap()


def steady_heap() -> bool:
    """Ask glibc's malloc to keep freed memory (see above); False where it is not glibc or
    NORMBENCH_STEADY_HEAP=0. Idempotent; it affects this process only."""
    global _steady
    if _steady is None:
        _steady = _keep_freed_memory()
    return _steady


def _keep_freed_memory() -> bool:
    if os.environ.get(STEADY_ENV, "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    import ctypes

    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    # A trim threshold of 2**31 - 1 (mallopt takes an int) never trims in practice.
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


_steady: bool | None = None


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is present, else 'cpu'; refuse 'cuda' without one."""
    import torch

    from normbench.errors import UsageError

    device = device.strip().lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            why = "this torch has no CUDA support" if torch.version.cuda is None else "no GPU found"
            raise UsageError(f"--device {device}: no CUDA device is available ({why})")
        if ":" in device:
            index = device.split(":", 1)[1]
            if not index.isdigit() or int(index) >= torch.cuda.device_count():
                raise UsageError(
                    f"--device {device}: there are {torch.cuda.device_count()} CUDA devices"
                )
        return device
    raise UsageError(f"unknown device {device!r}: choose auto, cpu, cuda or cuda:N")


def device_scope(device: str):
    """The context a case runs in: "cuda:N" made the current CUDA device. CUDA events and
    streams, Triton's launches and torch.compile's kernels follow the current device, not the
    tensors', so a case on cuda:1 under a current cuda:0 would time device 0's stream while
    the work runs on 1 (issue 21). Nothing for the CPU or plain "cuda" (the current one)."""
    if not device.startswith("cuda:"):
        return contextlib.nullcontext()
    import torch

    return torch.cuda.device(torch.device(device))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def available_memory(device: str) -> int:
    """Bytes that a run may allocate on `device` right now. CUDA: the device's free memory
    plus what this process's caching allocator holds but no tensor uses (reserved minus
    allocated: the copy-bandwidth buffers, the previous case), which it hands out again before
    asking the driver; `mem_get_info` alone counts that as taken (issue 21)."""
    if device.startswith("cuda"):
        import torch

        dev = torch.device(device)
        free, _ = torch.cuda.mem_get_info(dev)
        cached = torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)
        return int(free) + max(0, int(cached))
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def _nvml(index: int) -> dict[str, Any]:
    """Facts of torch's GPU `index` through NVML, found by UUID (normbench.machine_cuda: NVML's
    numbering is not CUDA's); only a note when NVML or the device is not there."""
    try:
        import pynvml
    except ImportError:
        return {"nvml": "not installed (pip install nvidia-ml-py)"}
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return {"nvml": f"unavailable ({exc})"}
    try:
        from normbench.machine_cuda import nvml_handle

        h, why = nvml_handle(f"cuda:{index}")
        if h is None:
            return {"nvml": f"unavailable ({why})"}
        sm, mem_clock = pynvml.NVML_CLOCK_SM, pynvml.NVML_CLOCK_MEM
        reads: dict[str, Callable[[], Any]] = {
            "driver": lambda: _str(pynvml.nvmlSystemGetDriverVersion()),
            "gpu_memory_gib": lambda: round(pynvml.nvmlDeviceGetMemoryInfo(h).total / 2**30, 1),
            "sm_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(h, sm),
            "mem_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(h, mem_clock),
            "max_sm_clock_mhz": lambda: pynvml.nvmlDeviceGetMaxClockInfo(h, sm),
            "temperature_c": lambda: pynvml.nvmlDeviceGetTemperature(
                h, pynvml.NVML_TEMPERATURE_GPU
            ),
            "power_w": lambda: round(pynvml.nvmlDeviceGetPowerUsage(h) / 1000, 1),
        }
        # Each fact on its own: a VM or a MIG slice often refuses power or temperature, which
        # must not cost the driver version and the memory size.
        info: dict[str, Any] = {}
        failed: list[str] = []
        for key, read in reads.items():
            try:
                info[key] = read()
            except Exception as exc:  # NVMLError_NotSupported, NoPermission, ...
                failed.append(f"{key}: {exc}")
        return {"nvml": f"partial ({'; '.join(failed)})" if failed else "ok", **info}
    except Exception as exc:
        return {"nvml": f"partial ({exc})"}
    finally:
        pynvml.nvmlShutdown()


def _str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def sm_clock_mhz(device: str) -> int | None:
    """The current SM clock, to warn when it drops during a run (throttling)."""
    if not device.startswith("cuda"):
        return None
    from normbench.machine_cuda import cuda_index

    info = _nvml(cuda_index(device))
    return info.get("sm_clock_mhz")


def fingerprint(device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """Device, software versions and thread count of this process."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    from normbench import __version__

    # The installed version without importing triton: Triton decides interpreter vs compiler for
    # its own @jit helpers on first import, so importing it before normbench.kernels has set
    # TRITON_INTERPRET (no GPU) breaks every interpreted kernel in the process.
    try:
        triton_version = version("triton")
    except PackageNotFoundError:
        triton_version = "not installed"
    env: dict[str, Any] = {
        "normbench": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "triton": triton_version,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "device": device,
        "cpu_huge_pages": os.environ.get(THP_ENV, "0") == "1",
        "cpu_steady_heap": bool(_steady),
    }
    if device.startswith("cuda"):
        from normbench.machine_cuda import cuda_index

        index = cuda_index(device)  # "cuda" is the current device, not always 0
        props = torch.cuda.get_device_properties(index)
        env.update(
            device_name=props.name,
            compute_capability=f"{props.major}.{props.minor}",
            sm_count=props.multi_processor_count,
            cuda=torch.version.cuda,
            driver="unknown",
        )
        env.update(_nvml(index))
    else:
        env.update(device_name=f"cpu: {env['cpu']}", driver="n/a", nvml="no NVIDIA GPU")
    return env


def timing_env(device: str, threads: int, refresh: bool = False) -> dict[str, Any]:
    """The fingerprint of a timing run, with the copy bandwidth its GB/s are measured against."""
    env = fingerprint(device, threads)
    env["copy_bandwidth_gbps"] = round(copy_bandwidth(device, threads, refresh, env), 2)
    return env


def cache_dir() -> Path:
    """Where measured machine facts are kept between runs: $NORMBENCH_CACHE_DIR, else
    $XDG_CACHE_HOME/normbench (the XDG base directory rule), else ~/.cache/normbench."""
    if os.environ.get("NORMBENCH_CACHE_DIR"):
        return Path(os.environ["NORMBENCH_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and Path(xdg).is_absolute():  # the spec says to ignore a relative value
        return Path(xdg) / "normbench"
    return Path.home() / ".cache" / "normbench"


def _cache_warning(path: Path, what: str, exc: BaseException | None = None) -> None:
    # A cache is an optimisation: one line on stderr (once per file), and the run measures
    # without it.
    if path in _warned:
        return
    _warned.add(path)
    why = f" ({exc.strerror or exc})" if isinstance(exc, OSError) else f" ({exc})" if exc else ""
    print(f"normbench: warning: {what} {path}{why}; measuring without it", file=sys.stderr)


_warned: set[Path] = set()


def _read_cache(path: Path) -> dict[str, Any]:
    """The cache's entries; {} (with a warning) when it cannot be read or is not an object."""
    try:
        cache = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        _cache_warning(path, "cannot read the cache", exc)
        return {}
    if not isinstance(cache, dict):
        _cache_warning(path, f"the cache holds a JSON {type(cache).__name__}, not an object, at")
        return {}
    return cache


def _write_cache(path: Path, cache: dict[str, Any]) -> None:
    from normbench.results import atomic_write_text

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(cache, indent=2), overwrite=True)
    except OSError as exc:  # read-only home, full disk, a file where the folder should be
        _cache_warning(path, "cannot write the cache", exc)


def copy_bandwidth(
    device: str, threads: int, refresh: bool = False, env: dict[str, Any] | None = None
) -> float:
    """Measured copy bandwidth in GB/s (bytes read + written), cached per device and threads
    (`env`: this process's fingerprint, when the caller has it already)."""
    env = env or fingerprint(device, threads)
    # "cold": measured past the last-level cache (entries without it were not).
    key = f"{env['device_name']}|threads={threads}|torch={env['torch']}|cold"
    path = cache_dir() / "bandwidth.json"
    cache = _read_cache(path)
    entry = cache.get(key)
    if not refresh and isinstance(entry, dict) and _finite_positive(entry.get("gbps")):
        return float(entry["gbps"])
    gbps = measure_copy_bandwidth(device)
    cache[key] = {"gbps": gbps, "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _write_cache(path, cache)
    return gbps


def _finite_positive(v: Any) -> bool:
    # A hand-edited entry ("fast", -1, NaN) is measured again, never divided by.
    try:
        return isinstance(v, (int, float)) and 0 < float(v) < float("inf")
    except (TypeError, ValueError, OverflowError):
        return False


def measure_copy_bandwidth(device: str, nbytes: int = 256 << 20) -> float:
    """A large device-to-device copy, median of repeated samples (docs/numerics.md section 3),
    of at least twice the last-level cache so that it measures memory, not a cache."""
    import torch

    from normbench.cache_state import SPAN, last_level_cache
    from normbench.timing import TimingConfig, measure

    if device.startswith("cuda"):
        nbytes = 1 << 30
    nbytes = max(nbytes, SPAN * last_level_cache(device)[0])
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    config = TimingConfig(budget_s=0.5, min_blocks=3)
    median = measure(functools.partial(dst.copy_, src), device, config).summary.median
    del src, dst  # freed here (the timing keeps no reference to them), then given back:
    release_cached(device)  # 2 GiB on a GPU: the cases' memory, not the allocator's cache
    return 2 * nbytes / median / 1e9


def release_cached(device: str) -> None:
    """Give the caching allocator's unused blocks back to the driver (CUDA only), so that they
    are free for the cases and for other processes."""
    if device.startswith("cuda"):
        import torch

        with device_scope(device):
            torch.cuda.empty_cache()
