"""The speed suite: gate each case against fp64, then time it; GB/s from the ideal byte model."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from normbench.backends.base import reason_from
from normbench.machine import OTHERS_CPU_LIMIT
from normbench.options import ideal_bytes
from normbench.results import Level, Measurement, Run, Status
from normbench.results.speed import SpeedResult
from normbench.speed_answers import add_speedups, rms_vs_ln
from normbench.suites.common import (
    CaseLoop,
    PreparedCache,
    Progress,
    case_counts,
    not_run,
    torch_threads,
)
from normbench.timing import TimingConfig, measure

if TYPE_CHECKING:
    from normbench.cases import Case
    from normbench.config import SpeedConfig
    from normbench.gate import Prepared

SUITE = "speed"
# Rows an untimed (interpreted) backend is gated on: Triton's interpreter runs tens of
# 4096-wide rows a second.
GATE_ROWS = 16


def make_runner(fn: Callable[..., Any], p: Prepared, mode: str) -> Callable[[], object]:
    """The timed callable for a mode. fwd runs without autograd; bwd replays backward through a
    graph built once; fwd+bwd does both each call. The closures hold only what they use, so a
    rotated copy's inputs are freed once its leaves are made."""
    import torch

    from normbench.gate import as_tuple

    scalars, dys = p.scalars, p.dys
    if mode == "fwd":
        inputs = p.inputs

        def fwd() -> object:
            with torch.no_grad():
                return fn(**inputs, **scalars)

        return fwd
    leaves = p.leaves()
    order = [v for v in leaves.values() if v is not None]  # no weight: nothing to differentiate
    if mode == "bwd":
        outs = as_tuple(fn(**leaves, **scalars))
        return lambda: torch.autograd.grad(outs, order, dys, retain_graph=True)

    def fwd_bwd() -> object:
        return torch.autograd.grad(as_tuple(fn(**leaves, **scalars)), order, dys)

    return fwd_bwd


def input_bytes(p: Prepared, mode: str) -> int:
    """The bytes a call reads from its own inputs: the tensors, and the output gradients for a
    backward."""
    tensors = p.tensors() + (list(p.dys) if mode != "fwd" else [])
    return sum(t.numel() * t.element_size() for t in tensors)


def timed_runner(
    fn: Callable[..., Any], p: Prepared, mode: str, hot: bool, inplace: bool
) -> tuple[Callable[[], object], int, str | None]:
    """The callable to time and how many copies of the inputs it rotates through: cold, enough
    copies that together they span twice the last-level cache (normbench.cache_state), so no
    call finds its inputs in a cache; hot, one. Both go through the same cycle, so the two
    states pay the same Python overhead per call. An in-place backend gets copies only: it
    must not overwrite the shared inputs. Returns the callable, the number of copies and, when
    they fall short of the span, the row's note saying so."""
    import itertools

    from normbench.cache_state import last_level_cache, partly_cold, rotation_count
    from normbench.env import available_memory

    device = p.case.device
    k, note = 1, None
    if not hot:
        nbytes, llc = input_bytes(p, mode), last_level_cache(device)[0]
        # What a copy holds while its runner lives: its inputs, and for a backward also the
        # leaves' copies, the outputs and what the forward saved (about 3x the inputs).
        held = nbytes * (1 if mode == "fwd" else 3)
        k = rotation_count(nbytes, llc, available_memory(device), held)
        note = partly_cold(nbytes, k, llc)
    # Each copy's runner is built at once, so a copy's inputs are freed as soon as its runner
    # holds what it needs (make_runner keeps only that).
    runners = [make_runner(fn, p if not inplace else fresh_copy(p, mode), mode)]
    runners += [make_runner(fn, fresh_copy(p, mode), mode) for _ in range(k - 1)]
    cycle = itertools.cycle(runners)
    return (lambda: next(cycle)()), k, note


def fresh_copy(p: Prepared, mode: str) -> Prepared:
    """The same values in new tensors: the inputs, and the output gradients where the mode
    reads them."""
    dys = p.dys if mode == "fwd" else tuple(d.clone() for d in p.dys)
    return replace(p, inputs=p.cloned(), dys=dys)


class SpeedCase:
    """Gate, then time one case. Holds what is shared across cases (the timing config, the SOL
    reference, the prepared inputs)."""

    def __init__(self, config: SpeedConfig) -> None:
        from normbench.cache_state import last_level_cache
        from normbench.env import available_memory
        from normbench.sol import SolReference

        self.config = config
        device = config.selection.device
        self.sol = SolReference(device, last_level_cache(device)[0], available_memory(device))
        self.cache = PreparedCache(config.selection.seed)
        budget = config.time_budget
        self.timing = TimingConfig(
            budget_s=budget,
            min_blocks=3 if config.quick else 5,
            target_rel_ci=0.02 if config.quick else 0.01,
            warmup_s=min(0.2, budget / 4),
            hot=config.hot,
            cuda_graph=config.cuda_graph,
        )

    def __call__(self, case: Case) -> SpeedResult:
        from normbench.gate import check, oracle
        from normbench.registry import get_backend
        from normbench.variants import get_variant

        backend = get_backend(case.backend)
        variant = get_variant(case.variant)
        reason = reason_from(backend, "supports", case)
        if reason:
            return skipped(case, Status.SKIPPED, reason)
        fn = backend.build(variant, case)
        grads = case.mode != "fwd"
        sem = backend.semantics_for(variant.name)
        blocker = reason_from(backend, "timing_blocker", case.device)
        if blocker:
            return self.untimed(case, variant, backend, fn, sem, blocker)
        p = self.cache.get(case)
        oracle(p, sem, grads)  # outside the first-call timing below
        t0 = time.perf_counter()
        gate = check(fn, p, sem, grads)
        first_call = time.perf_counter() - t0
        if not gate.ok:
            return skipped(case, Status.MISMATCH, gate.note)
        run, rotations, cold_note = timed_runner(fn, p, case.mode, self.config.hot, sem.inplace)
        timing = measure(run, case.device, self.timing)
        del run  # the rotated copies
        compiles = getattr(backend, "compiles", False)
        result = self.timed(case, variant, timing, first_call, compiles, rotations, cold_note)
        return self.memory(result, case, variant, backend, fn, p, sem)

    def untimed(self, case, variant, backend, fn, sem, blocker: str) -> SpeedResult:
        """A backend whose times mean nothing here (an interpreter) is still gated, on at most
        GATE_ROWS rows: an interpreter takes minutes for a full-size case, and a row-wise
        kernel's numerics do not depend on the row count."""
        from normbench.gate import check, prepare
        from normbench.variants.base import Shape

        small = case
        if case.shape.rows > GATE_ROWS:
            small = replace(case, shape=Shape(1, GATE_ROWS, case.shape.dim, case.shape.heads))
        p = prepare(variant, small, self.config.selection.seed)
        gate = check(fn, p, sem, case.mode != "fwd")
        if not gate.ok:
            return skipped(case, Status.MISMATCH, f"at {small.shape}: {gate.note}")
        where = f" at {small.shape}" if small is not case else ""
        skip = skipped(case, Status.SKIPPED, f"{blocker} (numerics{where}: {gate.note})")
        if not self.config.memory:
            return skip
        from normbench.suites.memory import interpreted

        # The memory suite measures an interpreted case at small sizes itself (p unused).
        if small is not case and not interpreted(backend, case):
            p = prepare(variant, case, self.config.selection.seed)
        elif small is not case:
            p = None
        return self.memory(skip, case, variant, backend, fn, p, sem)

    def memory(self, result: SpeedResult, case, variant, backend, fn, p, sem) -> SpeedResult:
        """--memory: the memory suite's measurements for this gated case (after timing, never
        inside), joined to its speed result."""
        if not self.config.memory:
            return result
        from normbench.suites.memory import measure_memory

        mem = measure_memory(case, variant, backend, fn, p, sem, seed=self.config.selection.seed)
        return replace(
            result, measurements=result.measurements + mem.measurements, **mem.memory_fields()
        )

    def timed(
        self,
        case,
        variant,
        timing,
        first_call: float,
        compiles: bool,
        rotations: int | None,
        cold_note: str | None = None,
        hot: bool = False,
    ) -> SpeedResult:
        """The case's measurements from its timing, its SOL reference timed now (same bytes,
        same cache state), and what the machine did meanwhile. `hot`: timed hot although the run
        asked for cold (an ab side that cannot rotate its inputs)."""
        s = timing.summary
        ms = 1e3
        nbytes = ideal_bytes(variant, case)
        gbps = nbytes / s.median / 1e9
        notes = [f"unreliable: {'; '.join(timing.unreliable)}"] if timing.unreliable else []
        notes += [cold_note] if cold_note else []
        out = [
            Measurement(
                "time", s.median * ms, "ms", note="; ".join(notes + list(timing.warnings)),
                p20=s.p20 * ms, p80=s.p80 * ms, ci_low=s.ci_low * ms, ci_high=s.ci_high * ms,
                n=s.n, samples=tuple(x * ms for x in timing.samples),
            ),
            Measurement("bandwidth", gbps, "GB/s", p20=nbytes / s.p80 / 1e9,
                        p80=nbytes / s.p20 / 1e9),
            *self.sol_measurements(s, nbytes, hot),
        ]  # fmt: skip
        if compiles:
            note = "first call, compilation included; not in the timings"
            out.append(Measurement("compile_time", first_call, "s", note=note))
        machine = timing.machine.fields() if timing.machine is not None else {}
        return SpeedResult.of_case(
            case, out, block_size=timing.block_size, inner_loops=timing.inner_loops,
            stopped=timing.stopped, timer=timing.timer, ideal_bytes=nbytes,
            warmup_calls=timing.warmup_calls, cache="hot" if hot else self.config.cache,
            rotations=rotations,
            unreliable="; ".join(timing.unreliable) or None,
            launch_overhead_s=timing.launch_overhead_s, **machine,
        )  # fmt: skip

    def sol_measurements(self, s, nbytes: int, hot: bool = False) -> list[Measurement]:
        """`sol_time` (a copy of the case's ideal bytes, timed now in the same cache state) and
        `pct_sol` = 100 x sol_time / time, its 95% bounds from the two medians' CIs, with the
        reason in its note when it is above 100%."""
        from normbench.sol import above_sol_note

        config = replace(self.timing, hot=True) if hot else self.timing
        ref_timing = self.sol.timing(nbytes, config)
        ref = ref_timing.summary
        if not (s.median > 0 and s.ci_low > 0):  # a timer that read 0: no share to give
            return []
        pct = 100 * ref.median / s.median
        low, high = 100 * ref.ci_low / s.ci_high, 100 * ref.ci_high / s.ci_low
        cache = "hot" if config.hot else "cold"
        notes = [above_sol_note(pct, low, high, nbytes, cache, self.config.selection.device)]
        if ref_timing.unreliable:  # the share is only as good as its reference
            notes.append(f"its SOL reference is unreliable: {'; '.join(ref_timing.unreliable)}")
        note = "; ".join(n for n in notes if n)
        return [
            Measurement("sol_time", ref.median * 1e3, "ms", p20=ref.p20 * 1e3, p80=ref.p80 * 1e3,
                        ci_low=ref.ci_low * 1e3, ci_high=ref.ci_high * 1e3, n=ref.n,
                        note=f"a copy of {nbytes // 2} bytes ({nbytes} moved), same cache state"),
            Measurement("pct_sol", pct, "%", ci_low=low, ci_high=high, note=note or ""),
        ]  # fmt: skip


def skipped(case: Case, status: Status, note: str) -> SpeedResult:
    return not_run(SpeedResult, case, status, note, "time", "ms")


def unreliable_summary(results: list[SpeedResult]) -> str | None:
    """One warning for the cases whose timing cannot be trusted (each row says why), naming what
    the machine did: other processes, steal, throttling (read while the cases were timed, not
    from two idle clock readings around the run)."""
    bad = [r for r in results if r.time and not r.reliable]
    if not bad:
        return None
    timed = sum(1 for r in results if r.time)
    busy = [r.others_cpu_pct for r in bad if r.others_cpu_pct is not None]
    throttled = sorted({r.throttle for r in bad if r.throttle})
    what = []
    if busy and max(busy) > 100 * OTHERS_CPU_LIMIT:
        what.append(f"other processes used up to {max(busy):.0f}% of the CPUs")
    if throttled:
        what.append(f"the GPU was throttled ({', '.join(throttled)})")
    why = f" ({'; '.join(what)})" if what else ""
    return (
        f"{len(bad)} of {timed} timed cases are unreliable{why}: their notes say why; compare "
        "will not judge them."
    )


def planned(config: SpeedConfig) -> tuple[list[Case], dict[str, list[str]]]:
    """The cases the run will time, and (--shapes-from) the captured layers of each."""
    if config.shapes_from:  # the model's own shapes (docs/capture.md "The model's shapes")
        from normbench.capture.cases import shape_cases
        from normbench.capture.store import read_meta

        meta = read_meta(config.shapes_from, "--shapes-from")
        return shape_cases(meta.layers, config.selection, config.own_variants)
    return config.selection.cases(), {}


def planned_ids(config: SpeedConfig) -> list[str]:
    """The ids of the cases the run will time (--baseline checks them before measuring)."""
    return [c.id for c in planned(config)[0]]


def run_speed(config: SpeedConfig, progress: Progress | None = None, debug: bool = False) -> Run:
    """Run the speed suite and return the run (reports are written by the caller)."""

    from normbench.env import timing_env

    start = time.perf_counter()
    device = config.selection.device
    cases, layers = planned(config)
    loop = CaseLoop(SUITE, progress, debug, result=SpeedResult)
    with torch_threads(config.threads):  # the copy bandwidth too, cached per thread count
        env = timing_env(device, config.threads)
        results = add_speedups(loop.run(cases, SpeedCase(config)))
    if layers:
        from normbench.capture.cases import with_layers

        results = with_layers(results, layers)
    run = Run(SUITE, env, config.to_dict(), results, interrupted=loop.interrupted)
    answer = rms_vs_ln(results)
    if answer:
        run.add(answer)
    warning = unreliable_summary(results)
    if warning:
        run.add(warning, Level.WARNING)
    run.findings.append(case_counts(results, "timed", "the command exits 4 unless a --baseline "
                                    "gate calls it broken (1)"))  # fmt: skip
    run.wall_s = time.perf_counter() - start
    return run
