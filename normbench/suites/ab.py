"""Same-job A/B: two implementations timed interleaved in one process, then compared.

Comparing two separate CI jobs also compares two machines' moods (clocks, neighbours, caches);
timing A and B block by block, alternately, in one process puts the same drift on both sides, so
the comparison's noise is far below that of separate runs (NUMERICS.md section 7: the strongest
mode). Each case: both sides are gated against fp64, warmed up, then timed in rounds of one block
each, the order alternating A B, B A, A B, ... (a drift that is linear over two rounds cancels);
at least `min_rounds` rounds (so the block bootstrap has blocks to resample), then until both
medians are tight or the time budget is spent. The verdicts are `compare`'s, with cases matched
on the id without the backend.

A side is a registered backend name (`eager`, `compile`, ...), or `plugin:SPEC` with SPEC as for
--plugin (`pkg.mod:object`, `path/file.py[:object]`) naming one backend. Two installs of
normbench (two git worktrees) are compared by running the gate in each and `normbench compare`
on the two JSON files, or by installing both kernels as plugins in one environment: only then
can they share the interleaving.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from normbench.errors import UsageError
from normbench.suites.common import CaseLoop, Progress, case_row
from normbench.suites.speed import SpeedCase, make_runner

if TYPE_CHECKING:
    from normbench.cases import Case
    from normbench.compare import CompareConfig
    from normbench.config import SpeedConfig
    from normbench.results import Row, Run
    from normbench.timing import Timing, TimingConfig

SUITE = "speed"  # each side is a speed run: re-comparable with `normbench compare`
SIDES = ("A", "B")


def resolve_side(spec: str, option: str) -> str:
    """A side's backend name, loading a `plugin:` spec first."""
    from normbench.registry import backends

    spec = (spec or "").strip()
    if not spec:
        raise UsageError(f"{option} is empty: give a backend name or plugin:SPEC")
    if spec.startswith("plugin:"):
        from normbench.plugins import load_plugins

        found = load_plugins([spec[len("plugin:") :]])
        if len(found) != 1:
            names = ", ".join(b.name for b in found) or "none"
            raise UsageError(
                f"{option} {spec}: the plugin defines {len(found)} backends ({names}); name one "
                "with plugin:SPEC:object, or pass --plugin SPEC and the backend name"
            )
        return found[0].name
    if spec not in backends():
        raise UsageError(f"{option} {spec!r}: unknown backend: choose from {', '.join(backends())}")
    return spec


@dataclass(frozen=True)
class ABConfig:
    speed: SpeedConfig  # cases, threads, time budget per side, quick, hot
    a: str  # backend names (resolved specs)
    b: str
    compare: CompareConfig
    specs: tuple[str, str] = ("", "")
    min_rounds: int = 8
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.min_rounds < 2:
            raise UsageError(f"min_rounds must be at least 2, got {self.min_rounds}")

    def to_dict(self) -> dict[str, Any]:
        d = {"a": self.a, "b": self.b, "specs": list(self.specs), "min_rounds": self.min_rounds}
        d["speed"] = self.speed.to_dict()
        d["compare"] = asdict(self.compare)
        return {**d, **self.extra}


@dataclass
class ABResult:
    a: Run
    b: Run
    comparison: Run


# --- interleaved timing ------------------------------------------------------------------------


def interleaved(
    runs: tuple[Callable[[], object], Callable[[], object]],
    device: str,
    config: TimingConfig,
    min_rounds: int = 8,
) -> tuple[Timing, Timing]:
    """Time two callables in alternating blocks (A B, B A, A B, ...) until both medians' CIs are
    within the target, after at least `min_rounds` rounds, or the budget (both sides) is spent."""
    from normbench.stats import summarize
    from normbench.timing import (
        MIN_SAMPLE_S,
        _block_size,
        _finish,
        _warmup,
        cpu_taker,
        cuda_taker,
        l2_flush_buffer,
    )

    cuda = device.startswith("cuda")
    if cuda:
        import torch

        dev = torch.device(device)
        sync = lambda: torch.cuda.synchronize(dev)  # noqa: E731
        flush = l2_flush_buffer(device, config.hot)
    else:
        sync = lambda: None  # noqa: E731
    warm = [_warmup(r, sync, config.warmup_s) for r in runs]
    per_call = [sorted(w)[len(w) // 2] for _, w in warm]
    if cuda:
        inner = [1, 1]
        takers = [cuda_taker(r, device, flush) for r in runs]
        timer = "cuda events, interleaved" + ("" if flush is not None else " (hot L2)")
    else:
        inner = [max(1, math.ceil(MIN_SAMPLE_S / max(c, 1e-9))) for c in per_call]
        takers = [cpu_taker(r, k) for r, k in zip(runs, inner)]
        timer = "perf_counter_ns, interleaved"
    block = _block_size(max(c * k for c, k in zip(per_call, inner)), config)
    samples: tuple[list[float], list[float]] = ([], [])
    rounds, stopped = 0, "budget"
    gc_was_enabled = gc.isenabled()
    gc.disable()
    start = time.perf_counter()
    try:
        while True:
            for i in (0, 1) if rounds % 2 == 0 else (1, 0):
                samples[i].extend(takers[i](block))
            rounds += 1
            if rounds >= min_rounds:
                if all(summarize(s).rel_ci <= config.target_rel_ci for s in samples):
                    stopped = "converged"
                    break
                if time.perf_counter() - start >= config.budget_s:
                    break
            if len(samples[0]) >= config.max_samples:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return tuple(  # type: ignore[return-value]
        _finish(samples[i], block, inner[i], warm[i][0], len(warm[i][1]), stopped, timer)
        for i in (0, 1)
    )


# --- the suite -----------------------------------------------------------------------------------


class ABCase(SpeedCase):
    """Gate both sides, then time them interleaved; rows carry extra['side'] = 'A' or 'B'."""

    def __init__(self, config: ABConfig, copy_gbps: float) -> None:
        super().__init__(config.speed, copy_gbps)
        self.ab = config
        # Both sides share the time: the budget is per side.
        self.timing = replace(self.timing, budget_s=2 * config.speed.time_budget)

    def __call__(self, case: Case) -> list[Row]:
        from normbench.gate import check, oracle
        from normbench.registry import get_backend
        from normbench.variants import get_variant

        variant = get_variant(case.variant)
        p = self.cache.get(case)
        grads = case.mode != "fwd"
        sides = []
        problems: list[Row] = []
        for label, name in zip(SIDES, (self.ab.a, self.ab.b)):
            c = replace(case, backend=name)
            backend = get_backend(name)
            reason = backend.supports(c) or backend.timing_blocker(c.device)
            if reason:
                problems.append(self._row(c, label, "skipped", reason))
                continue
            fn = backend.build(variant, c)
            sem = backend.semantics_for(variant.name)
            oracle(p, sem, grads)
            t0 = time.perf_counter()
            gate = check(fn, p, sem, grads)
            first = time.perf_counter() - t0
            if not gate.ok:
                problems.append(self._row(c, label, "mismatch", gate.note))
                continue
            q = replace(p, inputs={k: v.clone() for k, v in p.inputs.items()}) if sem.inplace else p
            sides.append((label, c, make_runner(fn, q, c.mode), first, backend))
        if problems:
            # Neither side is timed alone: an A/B with one side missing says nothing.
            failed = {r.extra["side"] for r in problems}
            for label, c, *_ in sides:
                other = "B" if label == "A" else "A"
                if other in failed:
                    problems.append(
                        self._row(c, label, "skipped", f"not timed: side {other} failed")
                    )
            return problems
        ta, tb = interleaved((sides[0][2], sides[1][2]), case.device, self.timing,
                             self.ab.min_rounds)  # fmt: skip
        rows = []
        for (label, c, _, first, backend), timing in zip(sides, (ta, tb)):
            for r in self.rows(c, variant, timing, first, getattr(backend, "compiles", False)):
                rows.append(replace(r, extra={**r.extra, "side": label}))
        return rows

    def _row(self, case: Case, side: str, status: str, note: str) -> Row:
        from normbench.suites.speed import SUITE as SPEED

        r = case_row(case, SPEED, "time", None, "ms", status=status, note=note)
        return replace(r, extra={"side": side})


def run_ab(config: ABConfig, progress: Progress | None = None, debug: bool = False) -> ABResult:
    """Time A and B interleaved over the selected cases and compare them (B relative to A)."""
    import torch

    from normbench.compare import compare_runs
    from normbench.env import copy_bandwidth, fingerprint
    from normbench.results import Run

    start = time.perf_counter()
    torch.set_num_threads(config.speed.threads)
    sel = config.speed.selection
    env = fingerprint(sel.device, config.speed.threads)
    env["copy_bandwidth_gbps"] = round(copy_bandwidth(sel.device, config.speed.threads), 2)
    cases = sel.cases()
    loop = CaseLoop("speed", progress, debug)
    rows = loop.run(cases, ABCase(config, env["copy_bandwidth_gbps"]))
    wall = time.perf_counter() - start
    runs = []
    for label, name in zip(SIDES, (config.a, config.b)):
        side_rows = []
        for r in rows:
            side = r.extra.get("side")
            if side == label:
                side_rows.append(r)
            elif side is None:  # an exception in the case: an error row on both sides
                case_id = r.case_id.replace(f"/{r.backend}/", f"/{name}/", 1)
                side_rows.append(replace(r, case_id=case_id, backend=name))
        cfg = {**config.speed.to_dict(), "ab": config.to_dict(), "side": label}
        run = Run(SUITE, env, cfg, side_rows, interrupted=loop.interrupted, wall_s=wall)
        run.summary.append(f"Side {label} of an interleaved A/B run: {name}.")
        runs.append(run)
    labels = (f"A {config.a}", f"B {config.b}")
    cmp_config = replace(config.compare, match="group", labels=labels)
    comparison = compare_runs(runs[0], runs[1], cmp_config, labels)
    comparison.summary.insert(
        1, f"Interleaved A/B in one process: B = {config.b} relative to A = {config.a}."
    )
    comparison.wall_s = wall
    return ABResult(runs[0], runs[1], comparison)
