"""The speed suite: gate each case against fp64, then time it; GB/s from the ideal byte model."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from normbench.options import ideal_bytes
from normbench.results import Level, Measurement, Run, Status
from normbench.results.speed import SpeedResult
from normbench.suites.common import CaseLoop, PreparedCache, Progress, case_counts, not_run
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
    graph built once; fwd+bwd does both each call."""
    import torch

    from normbench.gate import as_tuple

    scalars = p.scalars
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
        return lambda: torch.autograd.grad(outs, order, p.dys, retain_graph=True)

    def fwd_bwd() -> object:
        return torch.autograd.grad(as_tuple(fn(**leaves, **scalars)), order, p.dys)

    return fwd_bwd


class SpeedCase:
    """Gate, then time one case. Holds what is shared across cases (timing config, bandwidth)."""

    def __init__(self, config: SpeedConfig, copy_gbps: float) -> None:
        self.config = config
        self.copy_gbps = copy_gbps
        self.cache = PreparedCache(config.selection.seed)
        budget = config.time_budget
        self.timing = TimingConfig(
            budget_s=budget,
            min_blocks=3 if config.quick else 5,
            target_rel_ci=0.02 if config.quick else 0.01,
            warmup_s=min(0.2, budget / 4),
            hot=config.hot,
        )

    def __call__(self, case: Case) -> SpeedResult:
        from normbench.gate import check, oracle
        from normbench.registry import get_backend
        from normbench.variants import get_variant

        backend = get_backend(case.backend)
        variant = get_variant(case.variant)
        reason = backend.supports(case)
        if reason:
            return skipped(case, Status.SKIPPED, reason)
        fn = backend.build(variant, case)
        grads = case.mode != "fwd"
        sem = backend.semantics_for(variant.name)
        blocker = backend.timing_blocker(case.device)
        if blocker:
            return self.untimed(case, variant, backend, fn, sem, blocker)
        p = self.cache.get(case)
        oracle(p, sem, grads)  # outside the first-call timing below
        t0 = time.perf_counter()
        gate = check(fn, p, sem, grads)
        first_call = time.perf_counter() - t0
        if not gate.ok:
            return skipped(case, Status.MISMATCH, gate.note)
        if sem.inplace:  # it overwrites its inputs: let it overwrite copies, not the shared ones
            p = replace(p, inputs=p.cloned())
        timing = measure(make_runner(fn, p, case.mode), case.device, self.timing)
        result = self.timed(case, variant, timing, first_call, getattr(backend, "compiles", False))
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

    def timed(self, case, variant, timing, first_call: float, compiles: bool) -> SpeedResult:
        s = timing.summary
        ms = 1e3
        nbytes = ideal_bytes(variant, case)
        gbps = nbytes / s.median / 1e9
        out = [
            Measurement(
                "time", s.median * ms, "ms", note="; ".join(timing.warnings),
                p20=s.p20 * ms, p80=s.p80 * ms, ci_low=s.ci_low * ms, ci_high=s.ci_high * ms,
                n=s.n, samples=tuple(x * ms for x in timing.samples),
            ),
            Measurement("bandwidth", gbps, "GB/s", p20=nbytes / s.p80 / 1e9,
                        p80=nbytes / s.p20 / 1e9),
            Measurement("pct_copy_bw", 100 * gbps / self.copy_gbps, "%"),
        ]  # fmt: skip
        if compiles:
            note = "first call, compilation included; not in the timings"
            out.append(Measurement("compile_time", first_call, "s", note=note))
        return SpeedResult.of_case(
            case, out, block_size=timing.block_size, inner_loops=timing.inner_loops,
            stopped=timing.stopped, timer=timing.timer, ideal_bytes=nbytes,
            warmup_calls=timing.warmup_calls,
        )  # fmt: skip


def skipped(case: Case, status: Status, note: str) -> SpeedResult:
    return not_run(SpeedResult, case, status, note, "time", "ms")


def add_speedups(results: list[SpeedResult]) -> list[SpeedResult]:
    """Each backend's speedup over eager for the same variant/options/dtype/shape/mode, as a
    measurement after the case's own speed measurements."""
    eager = {r.group: r.time.value for r in results if r.time and r.backend == "eager"}
    out = []
    for r in results:
        base = eager.get(r.group)
        if r.time and base and r.time.value:
            note = "eager time / this time"
            r = r.replace_measurements((*r.measurements, Measurement("speedup", base / r.time.value,
                                                                    "x", note=note)))  # fmt: skip
        out.append(r)
    return out


def rms_vs_ln(results: list[SpeedResult]) -> str | None:
    """The one-line answer: is RMSNorm faster than LayerNorm here, per backend (geometric mean of
    the time ratio over the shapes, dtypes and modes where both ran)."""
    from normbench.stats import geomean

    times = {
        (r.backend, r.variant, r.dtype, str(r.shape), r.mode): r.time.value
        for r in results
        if r.time and r.time.value
    }
    parts = []
    backends = dict.fromkeys(k[0] for k in times)
    for b in backends:
        ratios = [
            v / times[(b, "layernorm", *k[2:])]
            for k, v in times.items()
            if k[0] == b and k[1] == "rmsnorm" and (b, "layernorm", *k[2:]) in times
        ]
        if ratios:
            g = geomean(ratios)
            word = "faster" if g < 1 else "slower"
            pct = abs(1 - g) if g < 1 else g - 1
            parts.append(f"{b} {pct:.0%} {word}" if g < 2 else f"{b} {g:.1f}x slower")
    if not parts:
        return None
    return "Is RMSNorm faster than LayerNorm here? RMSNorm vs LayerNorm: " + ", ".join(parts) + "."


def run_speed(config: SpeedConfig, progress: Progress | None = None, debug: bool = False) -> Run:
    """Run the speed suite and return the run (reports are written by the caller)."""
    import torch

    from normbench.env import sm_clock_mhz, timing_env

    start = time.perf_counter()
    torch.set_num_threads(config.threads)
    device = config.selection.device
    env = timing_env(device, config.threads)
    clock_before = sm_clock_mhz(device)
    cases = config.selection.cases()
    loop = CaseLoop(SUITE, progress, debug, result=SpeedResult)
    results = add_speedups(loop.run(cases, SpeedCase(config, env["copy_bandwidth_gbps"])))
    run = Run(SUITE, env, config.to_dict(), results, interrupted=loop.interrupted)
    answer = rms_vs_ln(results)
    if answer:
        run.add(answer)
    clock_after = sm_clock_mhz(device)
    if clock_before and clock_after and clock_after < 0.9 * clock_before:
        run.add(
            f"SM clock fell from {clock_before} to {clock_after} MHz during the run "
            "(thermal or power throttling): timings late in the run are slower.",
            Level.WARNING,
        )
    run.findings.append(case_counts(results, "timed"))
    run.wall_s = time.perf_counter() - start
    return run
