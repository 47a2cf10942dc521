"""Same-job A/B: two implementations timed interleaved, then compared.

Comparing two separate CI jobs also compares two machines' moods (clocks, neighbours, caches);
timing A and B block by block, alternately, in one process puts the same drift on both sides, so
the comparison's noise is far below that of separate runs (docs/numerics.md section 7: the strongest
mode). Each case: both sides are gated against fp64, warmed up, then timed in rounds of one block
each, the order alternating A B, B A, A B, ... (a drift that is linear over two rounds cancels);
at least `min_rounds` rounds (so the block bootstrap has blocks to resample), then until both
medians are tight or the time budget is spent. The verdicts are `compare`'s, with cases matched
on the id without the backend.

A side is a registered backend name (`eager`, `compile`, ...), or `plugin:SPEC` with SPEC as for
--plugin (`pkg.mod:object`, `path/file.py[:object]`) naming one backend, then optionally `@PATH`
for another install (a checkout or a virtual environment; `@PATH` alone: every selected backend).
With `@` on either side both sides run in worker processes (normbench.worker), one at a time.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from normbench.errors import UsageError
from normbench.results import Finding, Status
from normbench.results.compare import SideResult
from normbench.suites.common import CaseLoop, PreparedCache, Progress, describe_error, not_run
from normbench.suites.speed import SpeedCase, make_runner
from normbench.timing import Sampler, alternate, block_size, no_gc, warm_up
from normbench.worker import Install, Worker, WorkerError, split_spec

if TYPE_CHECKING:
    from normbench.cases import Case
    from normbench.compare import CompareConfig
    from normbench.config import SpeedConfig
    from normbench.results import Run
    from normbench.timing import Timing, TimingConfig

SUITE = "speed"  # each side is a speed run: re-comparable with `normbench compare`
SIDES = ("A", "B")
MAX_PROCESSES = 16
# Worker processes per side when a side is another install (@PATH). A process keeps a speed of
# its own (docs/regression-gate.md: one of six identical workers ran 1.35x slower for its whole
# life), so one worker per side turns that into a false verdict with a tight CI. Three per side
# give the t-interval over processes about 4 degrees of freedom; measured there over 20 A/A
# comparisons: 0 false regressions in 400 cases (1 process, two runs: 7 and 17), a 15% slowdown
# caught in 18 of 20 (1 process: 20). pyperf runs 20 processes; each one here costs a torch
# import and a warm-up per case.
DEFAULT_PROCESSES = 3


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
    # Where each side runs: None in this process; with either set, both sides run in worker
    # processes (normbench.worker), the other one with this interpreter.
    installs: tuple[Install | None, Install | None] = (None, None)
    plugins: tuple[str, ...] = ()  # --plugin specs, loaded by the workers too
    # Worker processes per side (workers only): 2 or more and the CI is over processes. None:
    # DEFAULT_PROCESSES when a side is another install, else 1.
    processes: int | None = None

    def __post_init__(self) -> None:
        if self.min_rounds < 2:
            raise UsageError(f"min_rounds must be at least 2, got {self.min_rounds}")
        if self.processes is None:
            object.__setattr__(self, "processes", DEFAULT_PROCESSES if self.remote else 1)
        if not 1 <= self.processes <= MAX_PROCESSES:
            raise UsageError(
                f"--processes must be between 1 and {MAX_PROCESSES}, got {self.processes}"
            )
        if self.processes > 1 and not self.remote:
            raise UsageError(
                "--processes needs a side in another install (@PATH): in-process sides share "
                "this one process"
            )

    @property
    def remote(self) -> bool:
        return any(self.installs)

    def to_dict(self) -> dict[str, Any]:
        d = {"a": self.a, "b": self.b, "specs": list(self.specs), "min_rounds": self.min_rounds}
        if self.remote:
            d["installs"] = [i.label if i else sys.executable for i in self.installs]
            d["processes"] = self.processes
        d["speed"] = self.speed.to_dict()
        d["compare"] = asdict(self.compare)
        return {**d, **self.extra}


@dataclass
class ABResult:
    a: Run
    b: Run
    comparison: Run


# --- interleaved timing ------------------------------------------------------------------------


# A side ready to time: `take(k)` returns k samples (seconds per call). In-process sides come
# from timing.warm_up, worker sides from the worker's answer to `setup`.


def time_sides(
    sides: list[list[Sampler]], config: TimingConfig, min_rounds: int
) -> tuple[list[Timing], list[list[int]]]:
    """Both sides timed alternately with one block size (from the slowest sample). A side may be
    several processes: each round visits A0 B0 A1 B1 ... Returns each side's Timing (the samples
    of its processes one after the other) and how many samples each process took."""
    block = block_size(max(w.per_sample for side in sides for w in side), config)
    takers = [w.take for pair in zip(*sides) for w in pair]
    with no_gc():  # in-process sides; a worker disables its own collector per block
        samples, stopped = alternate(takers, block, config, min_rounds)
    timings, counts = [], []
    for i, side in enumerate(sides):
        own = samples[i :: len(sides)]
        flat = [x for s in own for x in s]
        timings.append(side[0].timing(flat, block, stopped))
        counts.append([len(s) for s in own])
    return timings, counts


# --- the suite -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """One side of one case after its gate: status ok (then `warm` is set), skipped, mismatch
    or error, with the note saying why."""

    status: str
    note: str = ""
    first_call_s: float = 0.0  # the gate's call: compilation included
    compiles: bool = False
    warm: Sampler | None = None

    @property
    def take(self) -> Callable[[int], list[float]] | None:
        return self.warm.take if self.warm else None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"status": self.status, "note": self.note}
        d.update(first_call_s=self.first_call_s, compiles=self.compiles)
        if self.warm:
            w = self.warm
            d.update(per_call=w.per_call, inner=w.inner, warm_first_s=w.first_call_s,
                     warmup_calls=w.warmup_calls, timer=w.timer)  # fmt: skip
        return d


def setup_side(case: Case, cache: PreparedCache, timing: TimingConfig) -> Ready:
    """Gate `case` (its backend is the side's) against fp64 and warm it up. An exception is an
    error status: one side failing must not stop the run."""
    from normbench.gate import check, oracle
    from normbench.registry import get_backend
    from normbench.variants import get_variant

    try:
        backend = get_backend(case.backend)
        reason = backend.supports(case) or backend.timing_blocker(case.device)
        if reason:
            return Ready("skipped", reason)
        variant = get_variant(case.variant)
        p = cache.get(case)
        grads = case.mode != "fwd"
        fn = backend.build(variant, case)
        sem = backend.semantics_for(variant.name)
        oracle(p, sem, grads)
        t0 = time.perf_counter()
        gate = check(fn, p, sem, grads)
        first = time.perf_counter() - t0
        if not gate.ok:
            return Ready("mismatch", gate.note)
        if sem.inplace:  # it overwrites its inputs: let it overwrite copies
            p = replace(p, inputs=p.cloned())
        warm = warm_up(make_runner(fn, p, case.mode), case.device, timing, "interleaved")
        return Ready("ok", "", first, bool(getattr(backend, "compiles", False)), warm)
    except Exception as exc:
        return Ready("error", describe_error(exc))


class LocalSide:
    """A side in this process."""

    def __init__(self, name: str, cache: PreparedCache) -> None:
        self.name = name
        self.cache = cache

    def setup(self, case: Case, timing: TimingConfig) -> Ready:
        return setup_side(replace(case, backend=self.name or case.backend), self.cache, timing)

    def close(self) -> None:
        pass


class RemoteSide:
    """A side in a worker process (normbench.worker): another install's backend."""

    def __init__(self, worker, name: str, seed: int) -> None:
        self.worker = worker
        self.name = name
        self.seed = seed

    def setup(self, case: Case, timing: TimingConfig) -> Ready:
        fields = {"variant": case.variant, "backend": case.backend, "dtype": case.dtype,
                  "mode": case.mode,
                  "device": case.device, "dist": case.dist,
                  "shape": [case.shape.batch, case.shape.seq, case.shape.dim]}  # fmt: skip
        d = self.worker.request("setup", case=fields, seed=self.seed, timing=asdict(timing))
        if d["status"] != "ok":
            return Ready(d["status"], d.get("note", ""))
        take = lambda k: self.worker.request("block", k=k)["samples"]  # noqa: E731
        warm = Sampler(take, d["per_call"], d["inner"], d["warm_first_s"], d["warmup_calls"],
                    d["timer"] + ", worker process, first of each block dropped")  # fmt: skip
        return Ready("ok", "", d["first_call_s"], d["compiles"], warm)

    def close(self) -> None:
        self.worker.close()


class ABCase(SpeedCase):
    """Gate both sides, then time them interleaved: a SideResult per side ('A', 'B')."""

    def __init__(self, config: ABConfig, copy_gbps: float, sides: list[list]) -> None:
        super().__init__(config.speed, copy_gbps)
        self.ab = config
        self.sides = sides
        # Both sides share the time: the budget is per side.
        self.timing = replace(self.timing, budget_s=2 * config.speed.time_budget)

    def __call__(self, case: Case) -> list[SideResult]:
        from normbench.variants import get_variant

        # Every process of a side is gated and warmed up; the side's status is its first
        # failure, else the first process's.
        each = [[p.setup(case, self.timing) for p in side] for side in self.sides]
        ready = [next((r for r in rs if r.status != "ok"), rs[0]) for rs in each]
        # A side with no name (`@PATH` alone) times the case's own backend.
        cases = [replace(case, backend=side[0].name or case.backend) for side in self.sides]
        if any(r.status != "ok" for r in ready):
            # Neither side is timed alone: an A/B with one side missing says nothing.
            out = []
            for i, (label, r, c) in enumerate(zip(SIDES, ready, cases)):
                other = SIDES[1 - i]
                if r.status == "ok":
                    out.append(_untimed(c, label, "skipped", f"not timed: side {other} failed"))
                else:
                    out.append(_untimed(c, label, r.status, r.note))
            return out
        warm = [[r.warm for r in rs] for rs in each]
        timings, counts = time_sides(warm, self.timing, self.ab.min_rounds)  # type: ignore[arg-type]
        variant = get_variant(case.variant)
        out = []
        for label, c, r, timing, n in zip(SIDES, cases, ready, timings, counts):
            speed = self.timed(c, variant, timing, r.first_call_s, r.compiles)
            # Samples per process: compare's CI is then over processes.
            out.append(SideResult.of_speed(speed, label, n if len(n) > 1 else ()))
        return out


def _untimed(case: Case, side: str, status: str, note: str) -> SideResult:
    r = not_run(SideResult, case, Status(status), note, "time", "ms")
    return replace(r, side=side)


def open_sides(config: ABConfig) -> tuple[list[list], list[str]]:
    """The two sides, each a list of its processes, and a line per side saying what it runs.
    In-process sides share one PreparedCache (the same tensors); workers each prepare their own
    from the same seed."""
    seed = config.speed.selection.seed
    if not config.remote:
        cache = PreparedCache(seed)
        return [[LocalSide(config.a, cache)], [LocalSide(config.b, cache)]], []
    sides: list[list] = [[], []]
    notes = []
    try:
        n = config.processes
        installs = [i or Install(sys.executable) for i in config.installs]
        # Every worker is started and greeted before any answer is read: the torch imports
        # overlap on the cores instead of running one after another.
        for procs, label, spec, install in zip(sides, SIDES, config.specs, installs):
            for _ in range(n):
                procs.append(RemoteSide(Worker(install, f"side {label} ({spec})"), "", seed))
                procs[-1].worker.send("hello", spec=split_spec(spec)[0],
                                      plugins=list(config.plugins),
                                      threads=config.speed.threads)  # fmt: skip
        for label, spec, install, procs in zip(SIDES, config.specs, installs, sides):
            for side in procs:
                hello = side.worker.receive()
                side.name = hello["backend"]
            tree = Path(install.cwd or "")
            own = (tree / "normbench").resolve()
            if install.cwd and own.is_dir() and Path(hello["normbench_file"]) != own:
                raise UsageError(
                    f"side {label} ({spec}): {tree}'s normbench was not imported (got "
                    f"{hello['normbench_file']}); is an installed copy shadowing it?"
                )
            v = hello["env"]
            where = f"{n} worker processes" if n > 1 else "a worker process"
            notes.append(
                f"Side {label}: {hello['backend']} from {install.label} in {where} (normbench "
                f"{v['normbench']} at {hello['normbench_file']}, torch {v['torch']}, "
                f"triton {v['triton']})."
            )
    except WorkerError as exc:
        close_sides(sides)
        raise UsageError(str(exc)) from None
    except BaseException:
        close_sides(sides)
        raise
    return sides, notes


def close_sides(sides: list[list]) -> None:
    for side in sides:
        for process in side:
            process.close()


def run_ab(config: ABConfig, progress: Progress | None = None, debug: bool = False) -> ABResult:
    """Time A and B interleaved over the selected cases and compare them (B relative to A)."""
    import torch

    from normbench.compare import compare_runs
    from normbench.env import timing_env
    from normbench.results import Run

    start = time.perf_counter()
    torch.set_num_threads(config.speed.threads)
    sel = config.speed.selection
    env = timing_env(sel.device, config.speed.threads)
    cases = sel.cases()
    sides, notes = open_sides(config)
    config = replace(config, a=sides[0][0].name, b=sides[1][0].name)
    loop = CaseLoop(SUITE, progress, debug, result=SideResult)
    try:
        results = loop.run(cases, ABCase(config, env["copy_bandwidth_gbps"], sides))
    finally:
        close_sides(sides)
    wall = time.perf_counter() - start
    runs = []
    for label, name in zip(SIDES, (config.a, config.b)):
        side_results = []
        for r in results:
            if r.side == label:
                side_results.append(r)
            elif not r.side and name:  # an exception in the case: an error on both sides
                case_id = r.case_id.replace(f"/{r.backend}/", f"/{name}/", 1)
                side_results.append(replace(r, case_id=case_id, backend=name))
            elif not r.side:
                side_results.append(r)
        cfg = {**config.speed.to_dict(), "ab": config.to_dict(), "side": label}
        run = Run(SUITE, env, cfg, side_results, interrupted=loop.interrupted, wall_s=wall)
        run.add(f"Side {label} of an interleaved A/B run: {name or 'every backend'}.")
        runs.append(run)
    whole = not (config.a or config.b)  # @PATH sides: every backend, matched on the case id
    labels = (f"A {config.a}", f"B {config.b}")
    if whole:
        labels = tuple(f"{s} {i.label if i else '.'}" for s, i in zip(SIDES, config.installs))
    cmp_config = replace(config.compare, match="case" if whole else "group", labels=labels)
    comparison = compare_runs(runs[0], runs[1], cmp_config, labels)
    where = "in worker processes" if config.remote else "in one process"
    comparison.findings[1:1] = [
        Finding(
            f"Interleaved A/B {where}: B = {config.b or labels[1][2:]} relative to "
            f"A = {config.a or labels[0][2:]}" + (", every selected backend." if whole else ".")
        ),
        *(Finding(note) for note in notes),
    ]
    comparison.wall_s = wall
    return ABResult(runs[0], runs[1], comparison)
