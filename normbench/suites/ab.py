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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from normbench.errors import BaselineError, UsageError
from normbench.results import Finding, Level, Status
from normbench.results.compare import SideResult
from normbench.suites.ab_timing import LocalSide, Ready, RemoteSide, time_sides
from normbench.suites.common import CaseLoop, PreparedCache, Progress, not_run, torch_threads
from normbench.suites.speed import SpeedCase
from normbench.worker import Install, Worker, WorkerError, split_spec

if TYPE_CHECKING:
    from normbench.cases import Case
    from normbench.compare import CompareConfig
    from normbench.config import SpeedConfig
    from normbench.results import Run

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


# --- the suite -----------------------------------------------------------------------------------


class ABCase(SpeedCase):
    """Gate both sides, then time them interleaved: a SideResult per side ('A', 'B')."""

    def __init__(self, config: ABConfig, sides: list[list]) -> None:
        super().__init__(config.speed)
        self.ab = config
        self.sides = sides
        # Both sides share the time: the budget is per side.
        self.timing = replace(self.timing, budget_s=2 * config.speed.time_budget)

    def worker_pids(self) -> tuple[int, ...]:
        """The worker processes of the sides: their CPU time is this run's, not a neighbour's."""
        return tuple(p.worker.proc.pid for side in self.sides for p in side
                     if isinstance(p, RemoteSide))  # fmt: skip

    def __call__(self, case: Case) -> list[SideResult]:
        from normbench.variants import get_variant

        # Every process of a side is gated and warmed up; the side's status is its first
        # failure, else the first process's.
        timing, cold_note = self.timing, None
        each = [[_setup(p, case, timing) for p in side] for side in self.sides]
        if not timing.hot and any(r.status == "ok" and r.rotations is None
                                  for rs in each for r in rs):  # fmt: skip
            # A worker of an older install times back to back whatever it is asked: time every
            # side hot, so that A and B are timed alike, and say so in the rows.
            timing = replace(timing, hot=True)
            cold_note = "timed hot: an install of a side cannot rotate its inputs (cold)"
            each = [[_setup(p, case, timing) for p in side] for side in self.sides]
        each = rewarm_after_resets(each)
        ready = [next((r for r in rs if r.status != "ok"), rs[0]) for rs in each]
        # A side with no name (`@PATH` alone) times the case's own backend.
        cases = [replace(case, backend=side[0].name or case.backend) for side in self.sides]
        if any(r.status != "ok" for r in ready):
            # Neither side is timed alone: an A/B with one side missing says nothing.
            out = []
            for i, (label, r, c) in enumerate(zip(SIDES, ready, cases)):
                other = SIDES[1 - i]
                if r.status == "ok":  # it passed its gate: ok, untimed (compare: B is broken)
                    out.append(_untimed(c, label, "ok", f"not timed: side {other} failed"))
                else:
                    out.append(_untimed(c, label, r.status, r.note))
            return out
        warm = [[r.warm for r in rs] for rs in each]
        timings, counts = time_sides(
            warm, timing, self.ab.min_rounds, case.device, self.worker_pids()
        )  # type: ignore[arg-type]
        variant = get_variant(case.variant)
        out = []
        hot = timing.hot and not self.timing.hot  # both sides fell back to hot (cold_note)
        for label, c, r, t, n in zip(SIDES, cases, ready, timings, counts):
            speed = self.timed(c, variant, t, r.first_call_s, r.compiles, r.rotations, cold_note,
                               hot=hot)  # fmt: skip
            # Samples per process: compare's CI is then over processes.
            out.append(SideResult.of_speed(speed, label, n if len(n) > 1 else ()))
        return out


def rewarm_after_resets(each: list[list[Ready]]) -> list[list[Ready]]:
    """Each side's processes after setup, with every in-process side that a later side's
    setup may have disturbed warmed up again. A compiling backend's build resets torch.compile
    (torch._dynamo.reset(), normbench.backends.compile): an earlier side's compiled code is
    dropped and it would recompile inside its first timed block (issue 21). The warm-up runs
    again after every setup, so that recompile happens there, never in a timed block."""
    out = []
    for i, rs in enumerate(each):
        later = any(r.compiles for side in each[i + 1 :] for r in side)
        out.append([replace(r, warm=r.rewarm()) if later and r.status == "ok" and r.rewarm
                    else r for r in rs])  # fmt: skip
    return out


def _setup(side: LocalSide | RemoteSide, case: Case, timing: Any) -> Ready:
    """A side's gate and warm-up; a worker that died in it (a plugin's os._exit or crash) is an
    error of that side alone, so the healthy side stays ok and compare calls the case broken."""
    try:
        return side.setup(case, timing)
    except WorkerError as exc:
        return Ready("error", f"the worker process died: {exc}")


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
        close_sides(sides, at_once=True)
        raise UsageError(str(exc)) from None
    except BaseException:
        close_sides(sides, at_once=True)
        raise
    return sides, notes


def close_sides(sides: list[list], at_once: bool = False) -> None:
    """Close every process of both sides; `at_once` kills the workers without waiting (a side
    that failed to start: the others' work is not wanted)."""
    for side in sides:
        for process in side:
            process.close(at_once)


def run_ab(config: ABConfig, progress: Progress | None = None, debug: bool = False) -> ABResult:
    """Time A and B interleaved over the selected cases and compare them (B relative to A)."""
    from normbench.compare import compare_runs
    from normbench.env import timing_env
    from normbench.results import Run

    start = time.perf_counter()
    sel = config.speed.selection
    with torch_threads(config.speed.threads):  # the copy bandwidth, cached per thread count
        env = timing_env(sel.device, config.speed.threads)
    cases = sel.cases()
    sides, notes = open_sides(config)
    config = replace(config, a=sides[0][0].name, b=sides[1][0].name)
    loop = CaseLoop(SUITE, progress, debug, result=SideResult)
    try:
        with torch_threads(config.speed.threads):
            results = loop.run(cases, ABCase(config, sides))
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
    # Both sides share the machine's state block by block: a busy moment cannot bias the ratio,
    # so unreliable cases are judged (with a warning) and no between-run floor is assumed.
    cmp_config = replace(config.compare, match="case" if whole else "group", labels=labels,
                         judge_unreliable=True, between_run_floor=False)  # fmt: skip
    try:
        comparison = compare_runs(runs[0], runs[1], cmp_config, labels)
    except BaselineError:
        if not loop.interrupted:
            raise
        # Stopped before a case was timed on both sides: nothing to compare (it was exit 3,
        # "has no timing rows"), an interrupted comparison of no case.
        comparison = Run("compare", env, {"labels": list(labels)}, [], interrupted=True)
        comparison.add("Interrupted before any case was timed on both sides: nothing was "
                       "compared.", Level.WARNING)  # fmt: skip
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
