"""The rules that refuse an option's value, in one place: ranges, NaN and infinity, lists that
name nothing, repeats in a list, and the thread cap the machine allows.

Each rule raises UsageError (exit 2) with one sentence naming the option and its allowed range,
and runs while the configs are built: before torch sees a thread count or a seed, and before
anything is measured or allocated. The library refuses what the CLI refuses.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

from normbench.errors import UsageError

# --threads: at most this many threads per CPU this process may run on. More than one per CPU
# can still help a CPU with SMT the affinity set hides; tens of thousands crash OpenMP
# (libgomp aborts, or the process segfaults) before a single case is timed.
THREADS_PER_CPU = 4
# --seed: what numpy's and torch's generators take from every command (the suites derive their
# inputs' seeds as seed + a small offset, and compare adds a 32-bit hash beside it).
SEED_MAX = 2**32 - 1
# calibrate --repeats: the runs are compared pairwise (repeats x (repeats - 1) / 2 comparisons
# per case), so 100 repeats are already about 5000 comparisons per case.
REPEATS_MIN, REPEATS_MAX = 2, 100
# diagnose --depths: a toy-model block holds about 50k parameters (width 64) and the probes keep
# each model's activations, gradients and optimizer state, so memory grows linearly with depth:
# grad-init and amplify at depth 256 peaked at 1.2 GB resident (--quick, CPU), so 512 stays near
# 2 GB, where --depths 100000 grew past 22 GB before it was stopped.
DEPTH_MAX = 512


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity set where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def max_threads() -> int:
    """The largest --threads accepted here: THREADS_PER_CPU x the usable CPUs."""
    return THREADS_PER_CPU * usable_cpus()


def check_threads(threads: int) -> int:
    """Refuse a thread count outside 1 .. max_threads() (checked before torch.set_num_threads)."""
    cap = max_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= cap:
        raise UsageError(
            f"--threads must be between 1 and {cap} ({THREADS_PER_CPU} per CPU this process may "
            f"use, of which there are {usable_cpus()}), got {threads}"
        )
    return threads


def check_seconds(value: float, option: str = "--time-budget") -> float:
    """Refuse a duration that is not a finite positive number of seconds (NaN, inf, <= 0)."""
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{option} must be a finite positive number of seconds, got {value}")
    return value


def check_seed(seed: int, option: str = "--seed") -> int:
    """Refuse a seed the generators cannot take: 0 .. SEED_MAX."""
    if not 0 <= seed <= SEED_MAX:
        raise UsageError(f"{option} must be between 0 and {SEED_MAX} (2**32 - 1), got {seed}")
    return seed


def check_range(value: int, option: str, lo: int, hi: int, why: str = "") -> int:
    """Refuse an integer option outside lo .. hi; `why` says where the bound comes from."""
    if not lo <= value <= hi:
        reason = f" ({why})" if why else ""
        raise UsageError(f"{option} must be between {lo} and {hi}{reason}, got {value}")
    return value


def given(text: str | Iterable[str] | None, option: str) -> list[str]:
    """A list option as given ('a,b', or repeated) -> its items, repeats dropped in order.

    None (left out) is [] so the caller's default applies; a value given that names nothing
    (`--dim ,`, `--variant ''`) is refused rather than read as "the defaults". Repeats would time
    the same case twice, so `--dim 64,64` is `--dim 64`."""
    if text is None:
        return []
    parts = [text] if isinstance(text, str) else list(text)
    if not parts:
        return []
    items = [s.strip() for p in parts for s in p.replace(" ", ",").split(",") if s.strip()]
    if not items:
        shown = ",".join(parts)
        raise UsageError(f"{option} {shown!r} names nothing: give one value or a comma list")
    return list(dict.fromkeys(items))


def unique_ints(values: Iterable[int]) -> list[int]:
    """Whole-number list items with repeats dropped in order ('64,064' is one 64)."""
    return list(dict.fromkeys(values))
