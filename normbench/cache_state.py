"""Cold and hot cache states: how many copies of a case's inputs a cold timing rotates through.

A norm reads its inputs once per call; in a model those inputs were written one layer earlier and
are rarely still in the cache at inference sizes. Timed back to back on the same tensors
("hot"), a working set smaller than the last-level cache is served from it: on this project's
CPU (a 480 MiB L3) every default case is, and a copy of 256 MB is too, so GB/s and % of a copy
describe the cache, not the memory (docs/numerics.md section 6). "Cold" gives each call inputs
that no cache holds: the inputs are rotated through copies whose total is at least twice the
last-level cache, so a copy is evicted by the others before its next turn. On CUDA the L2 is
also flushed before each sample (normbench.timing_cuda).
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

# Rotated copies together span at least this many last-level caches: an LRU-like cache then
# holds none of a copy when its turn comes again.
SPAN = 2
# What a last-level cache is assumed to be where the machine does not say (a large server L3).
FALLBACK_LLC = 256 << 20
# Never hold more than this share of the device's available memory in rotated copies.
MAX_MEMORY_SHARE = 0.25
# Nor more copies than this: each costs a clone and a closure (about 30 us), and a case of a few
# KB would need hundreds of thousands to span a 480 MiB L3 (measured: 1.6 million copies, 47 s of
# set-up for four 2 x 4 x 64 cases). Such a case is only partly cold, and its row says so.
MAX_ROTATIONS = 1024


@functools.cache  # read once per device: every timed case asks
def last_level_cache(device: str = "cpu") -> tuple[int, str]:
    """(bytes, where the figure came from) of the cache a cold timing must defeat: the CPU's
    largest cache (sysfs), or the GPU's L2."""
    if device.startswith("cuda"):
        import torch

        props = torch.cuda.get_device_properties(torch.device(device))
        l2 = int(getattr(props, "L2_cache_size", 0) or 0)
        if l2:
            return l2, "L2_cache_size"
        return 64 << 20, "assumed 64 MiB (the device reports no L2 size)"
    size = _sysfs_llc(Path("/sys/devices/system/cpu/cpu0/cache"))
    if size:
        return size, "sysfs"
    try:
        size = int(os.sysconf("SC_LEVEL3_CACHE_SIZE") or 0)
    except (ValueError, OSError, AttributeError):
        size = 0
    if size > 0:
        return size, "sysconf"
    return FALLBACK_LLC, f"assumed {FALLBACK_LLC >> 20} MiB (the machine reports no L3)"


def _sysfs_llc(root: Path) -> int | None:
    """The largest cache under /sys/devices/system/cpu/cpu0/cache ("491520K")."""
    best = 0
    for index in sorted(root.glob("index*")):
        try:
            text = (index / "size").read_text().strip().upper()
        except OSError:
            continue
        unit = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            best = max(best, int(digits) * unit)
    return best or None


def rotation_count(
    input_bytes: int, llc_bytes: int, available: int | None = None, held_bytes: int | None = None
) -> int:
    """Copies of `input_bytes` of inputs that together span SPAN last-level caches (1 when the
    inputs alone are that large), capped at MAX_ROTATIONS and so that the copies, each holding
    `held_bytes` (default: its inputs), take at most MAX_MEMORY_SHARE of the `available`
    memory."""
    if input_bytes <= 0:
        return 1
    k = min(MAX_ROTATIONS, max(1, math.ceil(SPAN * llc_bytes / input_bytes)))
    if available is not None:
        k = min(k, max(1, int(MAX_MEMORY_SHARE * available) // (held_bytes or input_bytes)))
    return k


def partly_cold(input_bytes: int, copies: int, llc_bytes: int) -> str | None:
    """The row's note when `copies` of the inputs span less than SPAN caches (None otherwise)."""
    from normbench.fmt import fmt_bytes

    span = input_bytes * copies
    if span >= SPAN * llc_bytes:
        return None
    return (
        f"partly cold: {copies} copies of its inputs span {fmt_bytes(span)}, under "
        f"{SPAN} x the {fmt_bytes(llc_bytes)} last-level cache"
    )
