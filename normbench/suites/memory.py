"""The memory suite: what each implementation saves for backward and the peak extra memory it
needs, next to the ideal of its variant.

What is measured, per case (gated against fp64 first; a mismatch is never measured):

- `saved_bytes`: every distinct storage autograd's saved-tensor hooks see during a forward with
  gradients, counted once by storage (a tensor saved twice, or a view, counts once, and a view
  counts its whole storage, since that is what stays alive). A saved activation input (x, or the
  residual) counts: it must stay alive for backward and the ideal counts it too. Saved parameters
  (weight, bias) are left out and reported apart as `saved_param_bytes`: they live as long as the
  model, whatever the norm does. Exact and device-independent. Tensors a custom autograd
  Function keeps as plain `ctx` attributes bypass the hooks; `peak_fwd_bytes`'s extra
  `after_fwd_bytes` (what is still allocated after the forward) shows them.
- `peak_fwd_bytes`: the peak allocated during that forward with gradients (a training forward),
  above what existed before it (inputs and parameters); the outputs count.
- `peak_bytes`: the peak of the case's mode run as `speed` runs it, above the inputs and
  parameters: fwd is an inference forward (no autograd), bwd the backward alone (above what the
  forward left: outputs and saved tensors), fwd+bwd a training forward then backward (the outputs
  stay alive through the backward, as in a model).

Ideals (`ideal_<metric>` rows): saved is `Variant.ideal_saved` (x plus fp32 statistics); the peak
ideals count only what must exist: the outputs, the fp32 statistics and one gradient per input,
nothing transient.

How peaks are measured (PeakMemory): CUDA: the caching allocator's `max_memory_allocated` after
`reset_peak_memory_stats`, minus the allocated bytes at the start. CPU: the profiler's memory
events (allocations and frees through PyTorch's CPU allocator while it runs), replayed in order,
one profiler session for the forward and backward so the backward's frees of saved tensors are
seen. Memory outside PyTorch's allocator (numpy arrays in Triton's interpreter) is not seen:
peaks of a backend that cannot be timed on this device (an interpreter) are skipped rows. Such a
backend is also too slow to run a large case whole, so beyond DIRECT_ROWS rows it is gated and
measured at SMALL_ROWS rows and its saved bytes extrapolated linearly (exact for a row-wise norm,
which saves x and statistics per row); the row's note says so.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from normbench.dtypes import itemsize
from normbench.suites.common import CaseLoop, PreparedCache, Progress, case_row

if TYPE_CHECKING:
    import torch

    from normbench.backends.base import Backend
    from normbench.cases import Case
    from normbench.config import Selection
    from normbench.gate import Prepared
    from normbench.results import Row, Run
    from normbench.variants import Semantics, Variant

SUITE = "memory"
UNIT = "B"
# An interpreted backend runs whole up to DIRECT_ROWS rows; beyond, at SMALL_ROWS rows.
DIRECT_ROWS = 64
SMALL_ROWS = (4, 8)
PEAK_OF = {
    "fwd": "an inference forward (no autograd)",
    "bwd": "the backward alone",
    "fwd+bwd": "a training forward then backward",
}


@dataclass(frozen=True)
class MemoryConfig:
    selection: Selection
    out: Path = Path("reports")
    formats: tuple[str, ...] = ("csv", "md", "json")
    plot: bool = False
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["out"] = str(self.out)
        return d


# ---------------------------------------------------------------- saved for backward


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

    CUDA: the caching allocator's allocated-bytes statistics (`reset_peak_memory_stats` at each
    phase). CPU: the profiler's memory events, replayed in order and split at a marker event per
    phase. The CPU profiler cannot size a block allocated before it started, so freeing one
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
            self._level = torch.cuda.memory_allocated(self.device)
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
        now = torch.cuda.memory_allocated(self.device)
        peak = torch.cuda.max_memory_allocated(self.device) - self._level
        self.phases[self.names[-1]] = Peak(peak, now - self._level)
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


# ---------------------------------------------------------------- one case


@dataclass(frozen=True)
class Ideal:
    saved: int
    fwd: int  # inference forward: the outputs
    train_fwd: int  # training forward: the outputs and the saved statistics
    bwd: int  # backward alone: one gradient per input
    step: int  # forward and backward: outputs, statistics and gradients

    def peak(self, mode: str) -> int:
        return {"fwd": self.fwd, "bwd": self.bwd, "fwd+bwd": self.step}[mode]


def ideal_memory(variant: Variant, case: Case) -> Ideal:
    """The least any implementation of `variant` can hold (see the module docstring), each
    tensor in its own dtype (a residual stream in fp32 is held in fp32)."""
    o = case.options
    el = case.shape.rows * case.shape.dim
    b, br = itemsize(case.dtype), itemsize(o.res_dtype(case.dtype))
    sb = br if "residual" in variant.activations else b  # the saved x, or the residual output
    saved = variant.ideal_saved(case.shape, sb)
    stats = saved - sb * el  # the saved activation is x (an input) or the residual output
    outputs = sum((br if name == "residual_out" else b) * el for name in variant.outputs)
    params = variant.make_params(case.shape.param_dims, 0, o.param_args(variant))
    bw = itemsize(o.param_dtype(case.dtype))
    acts = sum((br if a == "residual" else b) * el for a in variant.activations)
    grads = acts + bw * sum(t.numel() for t in params.values())
    return Ideal(saved, outputs, outputs + stats, grads, outputs + stats + grads)


@dataclass
class Measured:
    saved: Saved | None = None
    train_fwd: Peak | None = None
    peak: Peak | None = None


def _train(fn: Callable[..., Any], p: Prepared, backward: bool, track: bool) -> tuple[Saved, Any]:
    """One training forward (its saved tensors) and, with `backward`, the backward; with `track`,
    the peaks of both phases ("fwd", "bwd")."""
    import torch

    from normbench.gate import as_tuple

    leaves = p.leaves()
    recorder = SavedTensors(leaves, p.case.options.param_args(p.variant))
    grads = None
    with torch.enable_grad(), PeakMemory(p.case.device, "fwd") if track else _NoTracking() as mem:
        with recorder:
            outs = as_tuple(fn(**leaves, **p.scalars))
        if backward:
            dys = [dy.to(o.dtype) for dy, o in zip(p.dys, outs)]
            order = [v for v in leaves.values() if v is not None]
            mem.mark("bwd")  # the backward starts where the forward left off
            grads = torch.autograd.grad(outs, order, dys, allow_unused=True)
    del outs, grads
    return recorder.result(), mem


def _inference(fn: Callable[..., Any], p: Prepared, sem: Semantics, track: bool) -> Peak | None:
    import torch

    inputs = p.cloned() if sem.inplace else p.inputs
    with torch.no_grad():
        if not track:
            fn(**inputs, **p.scalars)
            return None
        with PeakMemory(p.case.device) as mem:
            out = fn(**inputs, **p.scalars)
        del out
    return mem.total


def measure(
    fn: Callable[..., Any], p: Prepared, sem: Semantics, differentiable: bool, track: bool
) -> Measured:
    """Measure a gated case. Each measured call is preceded by the same call unmeasured, so a
    first-call cost (compilation for this grad mode, autotuning, lazy init) is never counted."""
    mode = p.case.mode
    m = Measured()
    if differentiable:
        backward = mode != "fwd" and track
        if track:  # the saved tensors do not depend on a first call, the peaks may
            _train(fn, p, backward, track=False)
        m.saved, mem = _train(fn, p, backward, track)
        if track:
            m.train_fwd = mem.phases["fwd"]
            if mode != "fwd":
                m.peak = mem.phases["bwd"] if mode == "bwd" else mem.total
    if mode == "fwd" and track:
        _inference(fn, p, sem, track=False)
        m.peak = _inference(fn, p, sem, track=True)
    return m


def interpreted(backend: Backend, case: Case) -> bool:
    """True when `case` is too slow to run whole: an interpreted backend (Triton's interpreter
    runs tens of 4096-wide rows a second on a CPU core) on more than DIRECT_ROWS rows."""
    differentiable = any(m in backend.modes for m in ("bwd", "fwd+bwd"))
    blocker = backend.timing_blocker(case.device)
    return bool(blocker) and differentiable and case.shape.rows > DIRECT_ROWS


def extrapolated_saved(
    case: Case, variant: Variant, fn: Callable[..., Any], sem: Semantics, seed: int
) -> tuple[Saved | None, str]:
    """Saved bytes at the case's shape from two small row counts (SMALL_ROWS), each gated
    first; exact for a row-wise norm, whose saved state is linear in the rows (x plus
    statistics per row). (None, why) when a small case fails its gate."""
    from dataclasses import replace

    from normbench.gate import check, prepare
    from normbench.variants import Shape

    points = []
    for rows in SMALL_ROWS:
        small = replace(case, shape=Shape(1, rows, case.shape.dim, case.shape.heads))
        p = prepare(variant, small, seed)
        gate = check(fn, p, sem, small.mode != "fwd")
        if not gate.ok:
            return None, f"at {small.shape}: {gate.note}"
        points.append(_train(fn, p, backward=False, track=False)[0])
    (r1, r2), (a, b) = SMALL_ROWS, points
    rows = case.shape.batch * case.shape.seq  # in the small cases' unit: r rows of `heads` heads

    def line(f: str) -> int:
        v1, v2 = getattr(a, f), getattr(b, f)
        return v1 + (rows - r1) * (v2 - v1) // (r2 - r1)

    fields = ("nbytes", "param_bytes", "input_bytes")
    return Saved(*(line(f) for f in fields), b.tensors, b.storages), ""


def measure_memory(
    case: Case,
    variant: Variant,
    backend: Backend,
    fn: Callable[..., Any],
    p: Prepared | None,
    sem: Semantics,
    suite: str = SUITE,
    seed: int = 0,
) -> list[Row]:
    """The memory rows of a case that passed its correctness gate (the speed suite's --memory
    calls this too, with its own suite name). An interpreted case (see `interpreted`) is gated
    and measured at two small row counts instead, and `p` may be None."""
    differentiable = any(m in backend.modes for m in ("bwd", "fwd+bwd"))
    blocker = backend.timing_blocker(case.device)
    how = ""
    if interpreted(backend, case):
        saved, problem = extrapolated_saved(case, variant, fn, sem, seed)
        if saved is None:
            return [case_row(case, suite, "saved_bytes", None, UNIT, status="mismatch",
                             note=problem)]  # fmt: skip
        m = Measured(saved=saved)
        how = f"; gated and measured at {' and '.join(map(str, SMALL_ROWS))} rows, scaled"
    else:
        assert p is not None
        m = measure(fn, p, sem, differentiable, track=blocker is None)
    ideal = ideal_memory(variant, case)

    def row(metric: str, value: int | None, ideal_value: int, note: str, **kw: Any) -> Row:
        if value is None:
            return case_row(case, suite, metric, None, UNIT, status="skipped", note=note)
        extra = {"ideal_bytes": ideal_value, "ratio": value / ideal_value if ideal_value else None}
        return case_row(case, suite, metric, value, UNIT, note=note, extra={**extra, **kw})

    why = f"peaks not measured: {blocker}" if blocker else "not measured"
    rows = []
    s = m.saved
    if s is None:
        rows.append(row("saved_bytes", None, 0, f"{backend.name} is forward-only: no autograd"))
    else:
        note = "saves x itself" if s.input_bytes else "saves derived copies, not x"
        if s.nbytes < ideal.saved:
            note += "; below the ideal: statistics kept narrower than fp32"
        rows.append(row("saved_bytes", s.nbytes, ideal.saved, note + how, **asdict(s)))
        note = "parameters saved for backward (not in saved_bytes)"
        rows.append(case_row(case, suite, "saved_param_bytes", s.param_bytes, UNIT, note=note))
    if differentiable:
        fwd = m.train_fwd.peak if m.train_fwd else None
        note = "training forward (autograd recording)" if fwd is not None else why
        rows.append(
            row(
                "peak_fwd_bytes",
                fwd,
                ideal.train_fwd,
                note,
                after_fwd_bytes=m.train_fwd.net if m.train_fwd else None,
            )
        )
    peak = m.peak.peak if m.peak else None
    note = f"peak of {PEAK_OF[case.mode]}" if peak is not None else why
    rows.append(row("peak_bytes", peak, ideal.peak(case.mode), note, phase=case.mode))
    ideals = (("saved", ideal.saved), ("peak_fwd", ideal.train_fwd),
              ("peak", ideal.peak(case.mode)))  # fmt: skip
    rows += [case_row(case, suite, f"ideal_{k}_bytes", v, UNIT) for k, v in ideals]
    return rows


class MemoryCase:
    """Gate, then measure one case."""

    def __init__(self, config: MemoryConfig) -> None:
        self.config = config
        self.cache = PreparedCache(config.selection.seed)

    def __call__(self, case: Case) -> list[Row]:
        from normbench.gate import check, oracle
        from normbench.registry import get_backend
        from normbench.variants import get_variant

        backend = get_backend(case.backend)
        variant = get_variant(case.variant)
        reason = backend.supports(case)
        if reason:
            return [case_row(case, SUITE, "saved_bytes", None, UNIT, status="skipped",
                             note=reason)]  # fmt: skip
        fn = backend.build(variant, case)
        sem = backend.semantics_for(variant.name)
        seed = self.config.selection.seed
        if interpreted(backend, case):  # gated at the small shapes it is measured at
            return measure_memory(case, variant, backend, fn, None, sem, seed=seed)
        p = self.cache.get(case)
        grads = case.mode != "fwd"
        oracle(p, sem, grads)
        gate = check(fn, p, sem, grads)
        if not gate.ok:  # numbers before memory: a wrong implementation is never measured
            return [case_row(case, SUITE, "saved_bytes", None, UNIT, status="mismatch",
                             note=gate.note)]  # fmt: skip
        return measure_memory(case, variant, backend, fn, p, sem, seed=seed)


# ---------------------------------------------------------------- the run


def ratio_summary(rows: list[Row]) -> list[str]:
    """One line per variant: saved / ideal per backend (geometric mean over the cases)."""
    from normbench.stats import geomean

    ratios: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        if r.metric == "saved_bytes" and r.status == "ok" and r.extra.get("ratio"):
            ratios.setdefault(r.variant, {}).setdefault(r.backend, []).append(r.extra["ratio"])
    lines = []
    for variant, per_backend in ratios.items():
        parts = [f"{b} {geomean(v):.2f}x" for b, v in per_backend.items()]
        lines.append(f"{variant}: saved for backward / ideal: " + ", ".join(parts) + ".")
    return lines


def run_memory(config: MemoryConfig, progress: Progress | None = None, debug: bool = False) -> Run:
    """Run the memory suite and return the run (reports are written by the caller)."""
    import torch

    from normbench.env import fingerprint
    from normbench.results import Run

    start = time.perf_counter()
    sel = config.selection
    env = fingerprint(sel.device, torch.get_num_threads())
    cases = sel.cases()
    loop = CaseLoop(SUITE, progress, debug, metric="saved_bytes", unit=UNIT)
    rows = loop.run(cases, MemoryCase(config))
    run = Run(SUITE, env, config.to_dict(), rows, interrupted=loop.interrupted)
    run.summary.extend(ratio_summary(rows))
    heads = [r for r in rows if r.metric == "saved_bytes"]
    counts = {s: sum(1 for r in heads if r.status == s) for s in ("ok", "skipped", "mismatch",
                                                                  "error")}  # fmt: skip
    run.summary.append(
        "Cases: "
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        + (" (mismatches are never measured)" if counts["mismatch"] else "")
    )
    if not sel.device.startswith("cuda"):
        run.summary.append(
            "CPU peaks are replayed from the profiler's allocation events (PyTorch's CPU "
            "allocator); saved bytes are exact on any device."
        )
    run.wall_s = time.perf_counter() - start
    return run
