"""What `compare` reads: the two runs' fingerprints checked, and their timed cases (speed
results with a `time`, normbench.results.speed) matched by case id or by the id without the
backend (`ab`), with the samples, blocks and worker processes the CIs are built from, and why a
pair cannot be judged (timings that are not positive numbers, a side timed while unreliable);
and each pair's result row, judged or not (`case_comparison`, `unpaired_verdict`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from normbench.errors import BaselineError, UsageError
from normbench.results import Measurement, Status
from normbench.results.compare import CaseComparison, SideResult, Verdict
from normbench.results.speed import SpeedResult

if TYPE_CHECKING:
    from normbench.compare_judge import Judgement
    from normbench.results import Run
    from normbench.stats import RatioCI


# --- fingerprints ------------------------------------------------------------------------------


def fingerprint_diffs(base_env: dict, new_env: dict) -> list[str]:
    """'torch: 2.4.0 vs 2.5.1' for each fingerprint key on which two runs differ."""
    from normbench.env import FINGERPRINT_KEYS

    out = []
    for key in FINGERPRINT_KEYS:
        a, b = base_env.get(key), new_env.get(key)
        if str(a) != str(b):
            out.append(f"{key}: {_show(a)} vs {_show(b)}")
    return out


def _show(v: Any) -> str:
    return "missing" if v is None else str(v)


def check_compatible(
    base_env: dict, new_env: dict, force: bool, base_name: str = "baseline"
) -> list[str]:
    """The fingerprint differences; raises BaselineError (exit 3) when there are any, unless
    `force`."""
    diffs = fingerprint_diffs(base_env, new_env)
    if diffs and not force:
        raise BaselineError(
            f"{base_name} was measured on a different setup ({'; '.join(diffs)}): its timings "
            "are not comparable; re-measure it here, or pass --force"
        )
    return diffs


def cache_states(run: Run) -> set[str]:
    """The cache states a run's timed cases were measured in. Runs from before the cache states
    (no `cache` on their rows) were hot on a CPU (nothing flushed, nothing rotated) and cold on
    CUDA unless --hot (the L2 flushed)."""
    states = {r.cache for r in run.of(SpeedResult) if r.time is not None and r.cache}
    if states:
        return states
    if run.config.get("cache"):
        return {run.config["cache"]}
    hot = run.config.get("hot") or not str(run.env.get("device", "cpu")).startswith("cuda")
    return {"hot" if hot else "cold"}


def check_cache_states(
    base: Run, new: Run | set[str], force: bool, base_name: str = "baseline"
) -> list[str]:
    """The difference of cache states, as a fingerprint difference: a cold and a hot timing of
    the same code differ by the cache alone (1.5x on this project's CPU, docs/benchmarks.md
    "Cold and hot"). `new`: the new run, or the states it will be timed in (`speed --baseline`
    checks before measuring). Raises BaselineError (exit 3) unless `force`."""
    b, n = cache_states(base), new if isinstance(new, set) else cache_states(new)
    if b == n:
        return []
    diff = f"cache state {'/'.join(sorted(b))} vs {'/'.join(sorted(n))}"
    if not force:
        raise BaselineError(
            f"{base_name} was timed with a {'/'.join(sorted(b))} cache and the new run "
            f"{'/'.join(sorted(n))}: their times differ for that reason alone; time both with "
            "the same --cache, or pass --force"
        )
    return [diff]


# --- matching cases ----------------------------------------------------------------------------


def _group_id(r: SpeedResult) -> str:
    return r.case_id.replace(f"/{r.backend}/", "/", 1)


def timing_results(
    run: Run, key: Callable[[SpeedResult], str], name: str
) -> dict[str, SpeedResult]:
    """The run's timed cases (speed results with a `time`) by key; a run with none (another
    suite) is refused."""
    found: dict[str, SpeedResult] = {}
    for r in run.of(SpeedResult):
        if r.get("time") is not None:
            if key(r) in found:  # normbench writes each case once; which copy would be judged?
                raise BaselineError(
                    f"{name} holds case {key(r)} twice (a file edited or joined by hand?): "
                    "each case must be one row"
                )
            found[key(r)] = r
    if not found:
        raise BaselineError(
            f"{name} has no timing rows (suite {run.suite!r}): compare reads runs of "
            "`normbench speed` or `normbench ab`"
        )
    ok = [r for r in found.values() if r.ok and r.value("time") is not None]  # timed ones
    if ok and not any(samples_of(r) for r in ok):
        raise BaselineError(
            f"{name} holds no raw timing samples (saved without them?): the bootstrap needs "
            "them; re-run `normbench speed` with --format json"
        )
    return found


def samples_of(r: SpeedResult) -> tuple[float, ...]:
    m = r.get("time")
    return m.samples if m is not None else ()


@dataclass(frozen=True)
class Pair:
    """One case on both sides (None: not in that run), under the key it was matched by."""

    key: str
    base: SpeedResult | None
    new: SpeedResult | None


def one_backend_each(base: Run, new: Run) -> tuple[str, str] | None:
    """The backends of the two side files of one `ab --a eager --b composite` (config "side";
    one backend each, a different one on each side); None otherwise. They share no case id:
    they are matched on the id without the backend, as ab matched them, not as all missing and
    all new. Two speed runs of different backends are not: a gate must not compare other code
    by accident."""
    if "side" not in base.config or "side" not in new.config:
        return None
    a, b = ({r.backend for r in run.of(SpeedResult)} for run in (base, new))
    if len(a) == 1 and len(b) == 1 and a != b:
        return a.pop(), b.pop()
    return None


def pair_results(base: Run, new: Run, match: str, names: tuple[str, str]) -> list[Pair]:
    key = (lambda r: r.case_id) if match == "case" else _group_id
    b = timing_results(base, key, names[0])
    try:
        n = timing_results(new, key, names[1])
    except BaselineError as exc:  # the new run is input, not a baseline: a usage error (exit 2)
        raise UsageError(str(exc)) from None
    keys = list(b) + [k for k in n if k not in b]
    return [Pair(k, b.get(k), n.get(k)) for k in keys]


def block_of(r: SpeedResult) -> int:
    """The timer's block: consecutive samples taken between two synchronizations."""
    try:
        return max(1, int(r.block_size or 1))
    except (TypeError, ValueError):
        return 1


def process_groups_of(r: SpeedResult) -> list[list[float]] | None:
    """The case's samples split by process (a SideResult's `processes`: how many samples each
    worker took, in order, as `ab` writes with --processes 2 or more); None for one process or
    counts that do not add up to the samples."""
    from normbench.stats import process_groups

    counts = r.processes if isinstance(r, SideResult) else ()
    samples = samples_of(r)
    if not isinstance(counts, tuple) or len(counts) < 2:
        return None
    if not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in counts):
        return None
    if sum(counts) != len(samples):
        return None
    return process_groups(samples, counts)


def timing_problem(r: SpeedResult) -> str | None:
    """Why an ok case's timing cannot be compared: a median or samples that are not positive
    numbers (NaN, infinite, zero, negative: a broken or hand-edited file); None when fine."""
    m = r.get("time")
    if m is None:
        return None
    bad = [s for s in m.samples if not (math.isfinite(s) and s > 0)]
    if bad:
        return (
            f"{len(bad)} of {len(m.samples)} timing samples are not positive numbers "
            f"(e.g. {bad[0]!r})"
        )
    if m.samples and (m.value is None or not math.isfinite(m.value) or m.value <= 0):
        return f"its median time is {m.value!r}, not a positive number"
    from normbench.stats import MIN_FOR_MEDIAN_CI

    if 0 < len(m.samples) < MIN_FOR_MEDIAN_CI:  # normbench never stops short of it
        return (
            f"{len(m.samples)} timing sample{'s' if len(m.samples) > 1 else ''}, fewer than "
            f"the {MIN_FOR_MEDIAN_CI} a 95% CI of the median needs"
        )
    return None


def median_ms(r: SpeedResult | None) -> float | None:
    """The median time shown for one side: of the samples the CI is built from, so the row
    cannot contradict its own ratio (a hand-edited `value` once showed 120 us against 60 us at
    ratio 1.003x); the stored median where there are no samples."""
    if r is None:
        return None
    samples = samples_of(r)
    if samples and timing_problem(r) is None:
        import statistics

        return statistics.median(samples)
    return r.value("time")


def unreliable_sides(p: Pair, labels: tuple[str, str]) -> list[str]:
    """'new: <why>' for each side whose timing was marked unreliable (SpeedResult.unreliable)."""
    sides = ((labels[0], p.base), (labels[1], p.new))
    return [f"{name}: {r.unreliable}" for name, r in sides if r is not None and r.unreliable]


def comparable(p: Pair) -> bool:
    return bool(
        p.base and p.new and p.base.ok and p.new.ok
        and len(samples_of(p.base)) > 0 and len(samples_of(p.new)) > 0
        and timing_problem(p.base) is None and timing_problem(p.new) is None
    )  # fmt: skip


def unpaired_verdict(p: Pair, names: tuple[str, str]) -> tuple[Verdict, str]:
    """The verdict and reason of a pair that cannot be compared (`names`: the two sides')."""
    if p.new is None:
        return Verdict.MISSING, f"only in {names[0]}: not measured in {names[1]}"
    if p.base is None:
        return Verdict.NEW, f"not in {names[0]}: nothing to compare with"
    b, n = p.base, p.new
    # b.ok includes ab's side A that passed its gate and was left untimed because B failed.
    if b.ok and n.status in (Status.MISMATCH, Status.ERROR):
        why = f"ok in {names[0]}, {n.status.value} in {names[1]}: {n.note}"
        return Verdict.BROKEN, why.rstrip(": ")
    for name, r in ((names[0], b), (names[1], n)):
        if not r.ok:
            return Verdict.NOT_COMPARED, f"{name}: {r.status.value}" + (
                f" ({r.note})" if r.note else "")  # fmt: skip
    for name, r in ((names[0], b), (names[1], n)):
        if problem := timing_problem(r):
            return Verdict.NOT_COMPARED, f"{name}: {problem}"
    return Verdict.INCONCLUSIVE, "no raw samples to bootstrap"


def case_comparison(p: Pair, j: Judgement, d: float, ci: RatioCI | None) -> CaseComparison:
    """The pair's result row: its judgement `j` at margin `d`, on the CI it was judged with."""
    ref = p.base or p.new
    assert ref is not None
    if ci is not None:
        status = Status.OK
    elif j.verdict is Verdict.BROKEN:
        status = p.new.status  # type: ignore[union-attr]
    else:
        status = Status.SKIPPED
    backend = ref.backend
    if p.base is not None and p.new is not None and p.base.backend != p.new.backend:
        backend = f"{p.base.backend}->{p.new.backend}"
    ratio = Measurement(
        "ratio", ci.ratio if ci else None, "x", status=status, note=j.note,
        ci_low=ci.low if ci else None, ci_high=ci.high if ci else None,
        n=min(ci.n_base, ci.n_new) if ci else None,
    )  # fmt: skip
    return CaseComparison(
        case_id=p.key, variant=ref.variant, backend=backend, dtype=ref.dtype, shape=ref.shape,
        mode=ref.mode, options=ref.options, measurements=(ratio,), verdict=j.verdict, margin=d,
        base_ms=median_ms(p.base),
        new_ms=median_ms(p.new),
        base_n=len(samples_of(p.base)) if p.base else 0,
        new_n=len(samples_of(p.new)) if p.new else 0,
        base_case=p.base.case_id if p.base else None,
        new_case=p.new.case_id if p.new else None,
        **j.tests,
    )  # fmt: skip
