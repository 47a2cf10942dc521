"""ab's interleaved timing: each side gated and warmed up (in this process or a worker), then
both timed in alternating blocks over the same interval (normbench.suites.ab has the method)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from normbench.backends.base import reason_from
from normbench.errors import describe_error
from normbench.machine import MachineWatch
from normbench.suites.common import PreparedCache
from normbench.suites.speed import timed_runner
from normbench.timing import Sampler, alternate, block_size, no_gc, warm_up
from normbench.worker import CLOSE_WAIT_S

if TYPE_CHECKING:
    from normbench.cases import Case
    from normbench.timing import Timing, TimingConfig


# A side ready to time: `take(k)` returns k samples (seconds per call). In-process sides come
# from timing.warm_up, worker sides from the worker's answer to `setup`.


def time_sides(
    sides: list[list[Sampler]],
    config: TimingConfig,
    min_rounds: int,
    device: str = "cpu",
    pids: tuple[int, ...] = (),
) -> tuple[list[Timing], list[list[int]]]:
    """Both sides timed alternately with one block size (from the slowest sample). A side may be
    several processes: each round visits A0 B0 A1 B1 ... Returns each side's Timing (the samples
    of its processes one after the other) and how many samples each process took."""
    block = block_size(max(w.per_sample for side in sides for w in side), config)
    takers = [w.take for pair in zip(*sides) for w in pair]
    watch = MachineWatch(device, pids)
    with no_gc():  # in-process sides; a worker disables its own collector per block
        samples, stopped = alternate(takers, block, config, min_rounds, watch)
    machine = watch.stop()  # both sides were timed over the same interval
    timings, counts = [], []
    for i, side in enumerate(sides):
        own = samples[i :: len(sides)]
        flat = [x for s in own for x in s]
        timings.append(side[0].timing(flat, block, stopped, machine))
        counts.append([len(s) for s in own])
    return timings, counts


@dataclass(frozen=True)
class Ready:
    """One side of one case after its gate: status ok (then `warm` is set), skipped, mismatch
    or error, with the note saying why."""

    status: str
    note: str = ""
    first_call_s: float = 0.0  # the gate's call: compilation included
    compiles: bool = False
    warm: Sampler | None = None
    # Input copies the side's call rotates through (1: hot); None from a worker of an install
    # older than the cache states, which always times back to back (hot).
    rotations: int | None = None
    # An in-process side's warm-up, to run again after a later side's setup reset torch.compile
    # (normbench.suites.ab.rewarm_after_resets); None for a worker's side.
    rewarm: Callable[[], Sampler] | None = field(default=None, compare=False, repr=False)

    @property
    def take(self) -> Callable[[int], list[float]] | None:
        return self.warm.take if self.warm else None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"status": self.status, "note": self.note}
        d.update(first_call_s=self.first_call_s, compiles=self.compiles)
        if self.warm:
            w = self.warm
            d.update(per_call=w.per_call, inner=w.inner, warm_first_s=w.first_call_s,
                     warmup_calls=w.warmup_calls, timer=w.timer,
                     rotations=self.rotations)  # fmt: skip
        return d


def setup_side(case: Case, cache: PreparedCache, timing: TimingConfig) -> Ready:
    """Gate `case` (its backend is the side's) against fp64 and warm it up. An exception is an
    error status: one side failing must not stop the run."""
    from normbench.gate import check, oracle
    from normbench.registry import get_backend
    from normbench.variants import get_variant

    try:
        backend = get_backend(case.backend)
        reason = reason_from(backend, "supports", case) or reason_from(
            backend, "timing_blocker", case.device
        )
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
        run, rotations, _ = timed_runner(fn, p, case.mode, timing.hot, sem.inplace)
        warm = warm_up(run, case.device, timing, "interleaved")
        compiles = bool(getattr(backend, "compiles", False))
        again = lambda: warm_up(run, case.device, timing, "interleaved")  # noqa: E731
        return Ready("ok", "", first, compiles, warm, rotations, again)
    except (Exception, SystemExit) as exc:  # a plugin's sys.exit() too: this side's error
        return Ready("error", describe_error(exc))


# The TimingConfig fields every worker knows (the protocol's first version). A newer field is
# sent only when it is not at its default, so a worker of an older install (a base checkout in
# `ab --a @../base`) still accepts the request.
WIRE_FIELDS = ("budget_s", "min_blocks", "block_size", "target_rel_ci", "warmup_s", "hot",
               "max_samples")  # fmt: skip


def timing_wire(timing: TimingConfig) -> dict[str, Any]:
    """The timing config as a worker's `setup` request carries it."""
    from dataclasses import fields

    from normbench.timing import TimingConfig

    default = TimingConfig()
    out = {}
    for f in fields(TimingConfig):
        value = getattr(timing, f.name)
        if f.name in WIRE_FIELDS or value != getattr(default, f.name):
            out[f.name] = value
    return out


class LocalSide:
    """A side in this process."""

    def __init__(self, name: str, cache: PreparedCache) -> None:
        self.name = name
        self.cache = cache

    def setup(self, case: Case, timing: TimingConfig) -> Ready:
        return setup_side(replace(case, backend=self.name or case.backend), self.cache, timing)

    def close(self, at_once: bool = False) -> None:
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
        d = self.worker.request("setup", case=fields, seed=self.seed, timing=timing_wire(timing))
        if d["status"] != "ok":
            return Ready(d["status"], d.get("note", ""))
        take = lambda k: self.worker.request("block", k=k)["samples"]  # noqa: E731
        warm = Sampler(take, d["per_call"], d["inner"], d["warm_first_s"], d["warmup_calls"],
                    d["timer"] + ", worker process, first of each block dropped")  # fmt: skip
        return Ready("ok", "", d["first_call_s"], d["compiles"], warm, d.get("rotations"))

    def close(self, at_once: bool = False) -> None:
        # at_once: nothing it did is wanted, so it is not waited for (a worker still importing
        # torch would take seconds to read its farewell).
        self.worker.close(wait_s=0 if at_once else CLOSE_WAIT_S)
