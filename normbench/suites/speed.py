"""The speed suite: gate each case against fp64, then time it; GB/s from the ideal byte model."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from normbench.options import ideal_bytes
from normbench.suites.common import CaseLoop, PreparedCache, Progress, case_row
from normbench.timing import TimingConfig, measure

if TYPE_CHECKING:
    from normbench.cases import Case
    from normbench.config import SpeedConfig
    from normbench.gate import Prepared
    from normbench.results import Row, Run

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

    def __call__(self, case: Case) -> list[Row]:
        from normbench.gate import check, oracle
        from normbench.registry import get_backend
        from normbench.variants import get_variant

        backend = get_backend(case.backend)
        variant = get_variant(case.variant)
        reason = backend.supports(case)
        if reason:
            return [case_row(case, SUITE, "time", None, "ms", status="skipped", note=reason)]
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
            return [case_row(case, SUITE, "time", None, "ms", status="mismatch", note=gate.note)]
        if sem.inplace:  # it overwrites its inputs: let it overwrite copies, not the shared ones
            from dataclasses import replace

            p = replace(p, inputs=p.cloned())
        timing = measure(make_runner(fn, p, case.mode), case.device, self.timing)
        rows = self.rows(case, variant, timing, first_call, getattr(backend, "compiles", False))
        return rows + self.memory(case, variant, backend, fn, p, sem)

    def untimed(self, case, variant, backend, fn, sem, blocker: str) -> list[Row]:
        """A backend whose times mean nothing here (an interpreter) is still gated, on at most
        GATE_ROWS rows: an interpreter takes minutes for a full-size case, and a row-wise
        kernel's numerics do not depend on the row count."""
        from dataclasses import replace

        from normbench.gate import check, prepare
        from normbench.variants.base import Shape

        small = case
        if case.shape.rows > GATE_ROWS:
            small = replace(case, shape=Shape(1, GATE_ROWS, case.shape.dim, case.shape.heads))
        p = prepare(variant, small, self.config.selection.seed)
        gate = check(fn, p, sem, case.mode != "fwd")
        if not gate.ok:
            note = f"at {small.shape}: {gate.note}"
            return [case_row(case, SUITE, "time", None, "ms", status="mismatch", note=note)]
        where = f" at {small.shape}" if small is not case else ""
        note = f"{blocker} (numerics{where}: {gate.note})"
        skip = case_row(case, SUITE, "time", None, "ms", status="skipped", note=note)
        if not self.config.memory:
            return [skip]
        from normbench.suites.memory import interpreted

        # The memory suite measures an interpreted case at small sizes itself (p unused).
        if small is not case and not interpreted(backend, case):
            p = prepare(variant, case, self.config.selection.seed)
        elif small is not case:
            p = None
        return [skip, *self.memory(case, variant, backend, fn, p, sem)]

    def memory(self, case, variant, backend, fn, p, sem) -> list[Row]:
        """--memory: the memory suite's rows for this gated case (after timing, never inside)."""
        if not self.config.memory:
            return []
        from normbench.suites.memory import measure_memory

        seed = self.config.selection.seed
        return measure_memory(case, variant, backend, fn, p, sem, suite=SUITE, seed=seed)

    def rows(self, case, variant, timing, first_call: float, compiles: bool) -> list[Row]:
        s = timing.summary
        ms = 1e3
        nbytes = ideal_bytes(variant, case)
        gbps = nbytes / s.median / 1e9
        extra = {
            "block_size": timing.block_size,
            "inner_loops": timing.inner_loops,
            "stopped": timing.stopped,
            "timer": timing.timer,
            "ideal_bytes": nbytes,
            "warmup_calls": timing.warmup_calls,
        }
        out = [
            case_row(
                case, SUITE, "time", s.median * ms, "ms",
                note="; ".join(timing.warnings),
                p20=s.p20 * ms, p80=s.p80 * ms, ci_low=s.ci_low * ms, ci_high=s.ci_high * ms,
                n=s.n, samples=tuple(x * ms for x in timing.samples), extra=extra,
            ),
            case_row(case, SUITE, "bandwidth", gbps, "GB/s",
                     p20=nbytes / s.p80 / 1e9, p80=nbytes / s.p20 / 1e9),
            case_row(case, SUITE, "pct_copy_bw", 100 * gbps / self.copy_gbps, "%"),
        ]  # fmt: skip
        if compiles:
            note = "first call, compilation included; not in the timings"
            out.append(case_row(case, SUITE, "compile_time", first_call, "s", note=note))
        return out


def add_speedups(rows: list[Row]) -> list[Row]:
    """Speedup of each backend over eager for the same variant/dtype/shape/mode."""
    times = {r.case_id: r for r in rows if r.metric == "time" and r.status == "ok"}
    eager = {
        (r.variant, r.dtype, r.shape, r.mode): r.value
        for r in times.values()
        if r.backend == "eager"
    }
    out = []
    for r in times.values():
        base = eager.get((r.variant, r.dtype, r.shape, r.mode))
        if base and r.value:
            out.append(_derived(r, "speedup", base / r.value, "x", "eager time / this time"))
    return out


def _derived(r: Row, metric: str, value: float, unit: str, note: str) -> Row:
    from dataclasses import replace

    return replace(
        r, metric=metric, value=value, unit=unit, note=note, p20=None, p80=None,
        ci_low=None, ci_high=None, n=None, samples=(), extra={},
    )  # fmt: skip


def rms_vs_ln(rows: list[Row]) -> str | None:
    """The one-line answer: is RMSNorm faster than LayerNorm here, per backend (geometric mean of
    the time ratio over the shapes, dtypes and modes where both ran)."""
    from normbench.stats import geomean

    times = {
        (r.backend, r.variant, r.dtype, r.shape, r.mode): r.value
        for r in rows
        if r.metric == "time" and r.status == "ok" and r.value
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
    from normbench.results import Run

    start = time.perf_counter()
    torch.set_num_threads(config.threads)
    device = config.selection.device
    env = timing_env(device, config.threads)
    clock_before = sm_clock_mhz(device)
    cases = config.selection.cases()
    loop = CaseLoop(SUITE, progress, debug)
    rows = loop.run(cases, SpeedCase(config, env["copy_bandwidth_gbps"]))
    rows += add_speedups(rows)
    run = Run(SUITE, env, config.to_dict(), rows, interrupted=loop.interrupted)
    answer = rms_vs_ln(rows)
    if answer:
        run.summary.append(answer)
    clock_after = sm_clock_mhz(device)
    if clock_before and clock_after and clock_after < 0.9 * clock_before:
        run.summary.append(
            f"Warning: SM clock fell from {clock_before} to {clock_after} MHz during the run "
            "(thermal or power throttling): timings late in the run are slower."
        )
    counts = {s: sum(1 for r in rows if r.metric == "time" and r.status == s)
              for s in ("ok", "skipped", "mismatch", "error")}  # fmt: skip
    run.summary.append(
        "Cases: "
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        + (" (mismatches are never timed)" if counts["mismatch"] else "")
    )
    run.wall_s = time.perf_counter() - start
    return run
