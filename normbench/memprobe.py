"""Measuring memory around a call: the storages autograd saves for backward (SavedTensors) and
the allocation peaks of a block in phases (PeakMemory), on CUDA from the caching allocator's
statistics and on the CPU by replaying the profiler's allocation events. The memory suite
(normbench.suites.memory) says what is measured per case and against which ideal."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Saved:
    """What one forward saved for backward, by distinct storage."""

    nbytes: int  # activations and intermediates (saved inputs included), each storage once
    param_bytes: int  # saved parameter storages (weight, bias), reported apart
    input_bytes: int  # the part of `nbytes` that is an input itself (x saved as is, not a copy)
    tensors: int  # saved tensor references, duplicates included
    storages: int  # distinct storages among them (parameters included)


class SavedTensors:
    """Records, through autograd's saved-tensor hooks, the storages a forward saves. Only the
    address and size are kept, never a reference, so the lifetimes (and the peak measured around
    the same forward) are untouched."""

    def __init__(self, leaves: dict[str, torch.Tensor], params: tuple[str, ...]) -> None:
        self._kind = {_storage_key(t): ("param" if k in params else "input") for k, t in
                      leaves.items() if t is not None}  # fmt: skip
        self._sizes: dict[tuple, int] = {}
        self._refs = 0
        self._hooks: Any = None

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        self._refs += 1
        try:
            self._sizes[_storage_key(t)] = t.untyped_storage().nbytes()
        except (RuntimeError, NotImplementedError):  # a tensor subclass without one storage
            self._sizes[("tensor", id(t))] = t.numel() * t.element_size()
        return t

    def __enter__(self) -> SavedTensors:
        import torch

        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)

    def result(self) -> Saved:
        kinds = {k: self._kind.get(k) for k in self._sizes}
        param = sum(n for k, n in self._sizes.items() if kinds[k] == "param")
        inputs = sum(n for k, n in self._sizes.items() if kinds[k] == "input")
        total = sum(self._sizes.values()) - param
        return Saved(total, param, inputs, self._refs, len(self._sizes))


def _storage_key(t: torch.Tensor) -> tuple:
    return (str(t.device), t.untyped_storage().data_ptr())


# ---------------------------------------------------------------- peak memory


@dataclass
class Peak:
    """Peak and net bytes allocated during a phase, above the level where the phase began."""

    peak: int = 0
    net: int = 0


@contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    # Kineto prints "profiler_start" / "profiler_stop" lines on file descriptor 2 from C++ at
    # every start and stop, and no log level silences them; only the start and the stop are
    # wrapped, never the measured code.
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


class PeakMemory:
    """Allocation peaks of a `with` block on `device`, in phases: the block opens phase `first`,
    `mark(name)` opens the next. After the block, `phases[name]` is each phase's Peak relative to
    the level where it began, and `total` the whole block's.

    CUDA: the caching allocator's requested-bytes statistics (`reset_peak_memory_stats` at each
    phase): the bytes the tensors asked for, not the blocks that hold them. Blocks are rounded
    up to 512 B, and a cached block is handed out whole when the rest would be under 1 MB, so
    counting blocks adds up to ~1 MB per tensor to the ratio against the ideal (issue 21).
    CPU: the profiler's memory events, replayed in order and split at a marker event per phase.
    The CPU profiler cannot size a block allocated before it started, so freeing one
    inside the block is not seen (CUDA sees it; PyTorch warns "Memory block of unknown size");
    the calls measured here never free memory allocated before their block."""

    def __init__(self, device: str, first: str = "all") -> None:
        self.device = device
        self.cuda = device.startswith("cuda")
        self.names = [first]
        self.phases: dict[str, Peak] = {}
        self.total = Peak()
        self._prof: Any = None
        self._level = 0  # CUDA: allocated bytes at the start of the current phase

    def __enter__(self) -> PeakMemory:
        import torch

        if self.cuda:
            torch.cuda.synchronize(self.device)
            self._level = cuda_requested(self.device)[0]
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        from torch.autograd import profiler

        self._prof = profiler.profile(profile_memory=True, use_cpu=True)
        with _quiet_native_stderr():
            self._prof.__enter__()
        return self

    def mark(self, name: str) -> None:
        """End the current phase and begin `name`."""
        from torch.autograd import profiler

        if self.cuda:
            self._close_cuda()
        else:
            with profiler.record_function(f"normbench::{name}"):
                pass
        self.names.append(name)

    def _close_cuda(self) -> None:
        import torch

        torch.cuda.synchronize(self.device)
        now, peak = cuda_requested(self.device)
        self.phases[self.names[-1]] = Peak(peak - self._level, now - self._level)
        self._level = now
        torch.cuda.reset_peak_memory_stats(self.device)

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            self._close_cuda()
        else:
            with _quiet_native_stderr():
                self._prof.__exit__(*exc)
            if exc[0] is not None:
                return
            for name, sizes in zip(self.names, _cpu_allocations(self._prof, self.names[1:])):
                self.phases[name] = Peak(*replay(sizes))
        level = 0
        for name in self.names:
            ph = self.phases[name]
            self.total.peak = max(self.total.peak, level + ph.peak)
            level += ph.net
        self.total.net = level


def cuda_requested(device: str) -> tuple[int, int]:
    """(current, peak since the last reset) bytes the tensors on `device` requested from the
    caching allocator; a torch without requested-bytes statistics (before 2.1) gives the
    allocated blocks' instead."""
    import torch

    stats = torch.cuda.memory_stats(device)
    for kind in ("requested_bytes", "allocated_bytes"):
        cur, peak = stats.get(f"{kind}.all.current"), stats.get(f"{kind}.all.peak")
        if cur is not None and peak is not None:
            return int(cur), int(peak)
    return int(torch.cuda.memory_allocated(device)), int(torch.cuda.max_memory_allocated(device))


def _cpu_allocations(prof: Any, marks: list[str]) -> list[list[int]]:
    """Signed sizes of the CPU allocations (+) and frees (-) the profiler saw, in order, split at
    the marker events into len(marks) + 1 phases."""
    events = sorted(prof.kineto_results.events(), key=lambda e: e.start_ns())  # stable sort
    phases: list[list[int]] = [[]]
    pending = [f"normbench::{m}" for m in marks]
    for e in events:
        if pending and e.name() == pending[0]:
            pending.pop(0)
            phases.append([])
        elif e.name() == "[memory]" and str(e.device_type()).endswith("CPU"):
            phases[-1].append(int(e.nbytes()))
    if pending:  # pragma: no cover - a marker the profiler lost: say so, never guess
        raise RuntimeError(f"the profiler recorded no {pending[0]} marker")
    return phases


def replay(sizes: list[int]) -> tuple[int, int]:
    """(peak, net) of a sequence of allocations (+) and frees (-) starting from zero; freeing
    memory allocated before never makes a peak, so the peak is never below 0."""
    level = peak = 0
    for n in sizes:
        level += n
        peak = max(peak, level)
    return peak, level


class _NoTracking:
    """PeakMemory's stand-in where peaks are not measured (an interpreter's would mislead)."""

    phases: dict[str, Peak] = {}

    def __enter__(self) -> _NoTracking:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def mark(self, name: str) -> None:
        return None
