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

Ideals (the `ideal_<metric>` measurements): saved is `Variant.ideal_saved` (x plus fp32
statistics); the peak ideals count only what must exist: the outputs, the fp32 statistics and one
gradient per input, nothing transient.

How peaks are measured (PeakMemory): CUDA: the caching allocator's requested-bytes peak
(`requested_bytes.all.peak`, the bytes tensors asked for, not the rounded blocks) after
`reset_peak_memory_stats`, minus the requested bytes at the start. CPU: the profiler's memory
events (allocations and frees through PyTorch's CPU allocator while it runs), replayed in order,
one profiler session for the forward and backward so the backward's frees of saved tensors are
seen. Memory outside PyTorch's allocator (numpy arrays in Triton's interpreter) is not seen:
peaks of a backend that cannot be timed on this device (an interpreter) are skipped
measurements. Such a backend is also too slow to run a large case whole, so beyond DIRECT_ROWS
rows it is gated and measured at SMALL_ROWS rows and its saved bytes extrapolated linearly (exact
for a row-wise norm, which saves x and statistics per row); the measurement's note says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from normbench.backends.base import reason_from
from normbench.dtypes import itemsize
from normbench.formats import DEFAULT_FORMATS, DEFAULT_OUT
from normbench.memprobe import Peak, PeakMemory, Saved, SavedTensors, _NoTracking
from normbench.results import Measurement, Run, Status
from normbench.results.memory import MemoryResult
from normbench.suites.common import CaseLoop, PreparedCache, Progress, case_counts, not_run

if TYPE_CHECKING:
    from normbench.backends.base import Backend
    from normbench.cases import Case
    from normbench.config import Selection
    from normbench.gate import Prepared
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
    out: Path = DEFAULT_OUT
    formats: tuple[str, ...] = DEFAULT_FORMATS
    plot: bool = False
    extra: dict = field(default_factory=dict)
    quick: bool = False  # recorded only: --quick chose the smaller selection's defaults

    def to_dict(self) -> dict:
        d = asdict(self)
        d["out"] = str(self.out)
        return d


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


def _train(
    fn: Callable[..., Any], p: Prepared, backward: bool, track: bool, own_dy: bool = False
) -> tuple[Saved, Any]:
    """One training forward (its saved tensors) and, with `backward`, the backward; with `track`,
    the peaks of both phases ("fwd", "bwd"). `own_dy`: the backward gets a copy of dy, made
    before anything is tracked (a kernel declared in place may write dx into it; the shared one
    must stay for the next backend's gate)."""
    import torch

    from normbench.gate import as_tuple

    given_dys = tuple(d.clone() for d in p.dys) if own_dy and backward else p.dys
    leaves = p.leaves()
    recorder = SavedTensors(leaves, p.case.options.param_args(p.variant))
    grads = None
    with torch.enable_grad(), PeakMemory(p.case.device, "fwd") if track else _NoTracking() as mem:
        with recorder:
            outs = as_tuple(fn(**leaves, **p.scalars))
        if backward:
            dys = [dy.to(o.dtype) for dy, o in zip(given_dys, outs)]
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
            _train(fn, p, backward, track=False, own_dy=sem.inplace)
        m.saved, mem = _train(fn, p, backward, track, own_dy=sem.inplace)
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
    blocker = reason_from(backend, "timing_blocker", case.device)
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
    seed: int = 0,
) -> MemoryResult:
    """The memory result of a case that passed its correctness gate (the speed suite's --memory
    joins it to its speed result). An interpreted case (see `interpreted`) is gated and measured
    at two small row counts instead, and `p` may be None."""
    differentiable = any(m in backend.modes for m in ("bwd", "fwd+bwd"))
    blocker = reason_from(backend, "timing_blocker", case.device)
    how = ""
    if interpreted(backend, case):
        saved, problem = extrapolated_saved(case, variant, fn, sem, seed)
        if saved is None:
            return skipped(case, Status.MISMATCH, problem)
        m = Measured(saved=saved)
        how = f"; gated and measured at {' and '.join(map(str, SMALL_ROWS))} rows, scaled"
    else:
        assert p is not None
        m = measure(fn, p, sem, differentiable, track=blocker is None)
    ideal = ideal_memory(variant, case)

    def size(metric: str, value: int | None, note: str) -> Measurement:
        if value is None:
            return Measurement(metric, None, UNIT, status=Status.SKIPPED, note=note)
        return Measurement(metric, value, UNIT, note=note)

    why = f"peaks not measured: {blocker}" if blocker else "not measured"
    out = []
    s = m.saved
    fields: dict[str, Any] = {}
    if s is None:
        out.append(size("saved_bytes", None, f"{backend.name} is forward-only: no autograd"))
    else:
        note = "saves x itself" if s.input_bytes else "saves derived copies, not x"
        if s.nbytes < ideal.saved:
            note += "; below the ideal: statistics kept narrower than fp32"
        out.append(size("saved_bytes", s.nbytes, note + how))
        note = "parameters saved for backward (not in saved_bytes)"
        out.append(Measurement("saved_param_bytes", s.param_bytes, UNIT, note=note))
        fields.update(saved_input_bytes=s.input_bytes, saved_tensors=s.tensors,
                      saved_storages=s.storages)  # fmt: skip
    if differentiable:
        fwd = m.train_fwd.peak if m.train_fwd else None
        note = "training forward (autograd recording)" if fwd is not None else why
        out.append(size("peak_fwd_bytes", fwd, note))
        if m.train_fwd:
            fields["after_fwd_bytes"] = m.train_fwd.net
    peak = m.peak.peak if m.peak else None
    note = f"peak of {PEAK_OF[case.mode]}" if peak is not None else why
    out.append(size("peak_bytes", peak, note))
    ideals = (("saved", ideal.saved), ("peak_fwd", ideal.train_fwd),
              ("peak", ideal.peak(case.mode)))  # fmt: skip
    out += [Measurement(f"ideal_{k}_bytes", v, UNIT) for k, v in ideals]
    return MemoryResult.of_case(case, out, **fields)


def skipped(case: Case, status: Status, note: str) -> MemoryResult:
    return not_run(MemoryResult, case, status, note, "saved_bytes", UNIT)


class MemoryCase:
    """Gate, then measure one case."""

    def __init__(self, config: MemoryConfig) -> None:
        self.config = config
        self.cache = PreparedCache(config.selection.seed)

    def __call__(self, case: Case) -> MemoryResult:
        from normbench.gate import check, oracle
        from normbench.registry import get_backend
        from normbench.variants import get_variant

        backend = get_backend(case.backend)
        variant = get_variant(case.variant)
        reason = reason_from(backend, "supports", case)
        if reason:
            return skipped(case, Status.SKIPPED, reason)
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
            return skipped(case, Status.MISMATCH, gate.note)
        return measure_memory(case, variant, backend, fn, p, sem, seed=seed)


# ---------------------------------------------------------------- the run


def ratio_summary(results: list[MemoryResult]) -> list[str]:
    """One line per variant: saved / ideal per backend (geometric mean over the cases)."""
    from normbench.stats import geomean

    ratios: dict[str, dict[str, list[float]]] = {}
    for r in results:
        x = r.ratio("saved_bytes")
        if x:
            ratios.setdefault(r.variant, {}).setdefault(r.backend, []).append(x)
    lines = []
    for variant, per_backend in ratios.items():
        parts = [f"{b} {geomean(v):.2f}x" for b, v in per_backend.items()]
        lines.append(f"{variant}: saved for backward / ideal: " + ", ".join(parts) + ".")
    return lines


def run_memory(config: MemoryConfig, progress: Progress | None = None, debug: bool = False) -> Run:
    """Run the memory suite and return the run (reports are written by the caller)."""
    import torch

    from normbench.env import fingerprint

    start = time.perf_counter()
    sel = config.selection
    env = fingerprint(sel.device, torch.get_num_threads())
    cases = sel.cases()
    loop = CaseLoop(SUITE, progress, debug, result=MemoryResult, metric="saved_bytes", unit=UNIT)
    results = loop.run(cases, MemoryCase(config))
    run = Run(SUITE, env, config.to_dict(), results, interrupted=loop.interrupted)
    for line in ratio_summary(results):
        run.add(line)
    run.findings.append(case_counts(results, "measured"))
    if not sel.device.startswith("cuda"):
        run.add(
            "CPU peaks are replayed from the profiler's allocation events (PyTorch's CPU "
            "allocator); saved bytes are exact on any device."
        )
    run.wall_s = time.perf_counter() - start
    return run
