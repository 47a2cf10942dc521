"""The metrics each suite's tidy rows carry, which way each is better, and `--metrics`: which of
them go into the CSV, github-action-benchmark and Liger exports (docs/formats.md "Choosing
the metrics").

A selection is a list of metric names or shell-style patterns (`*_max_ulp`). It is checked
against the suite's catalogue before anything is measured (a typo costs no run), and against
the run's own metrics when the exports are written (a suite without a catalogue, such as
diagnose, whose metrics are its probes' numbers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from normbench.errors import UsageError
from normbench.results.audit import METRICS as AUDIT_METRICS
from normbench.results.memory import IDEAL_OF

# What one forward and backward save and peak at (the memory suite; speed --memory adds them).
MEMORY = ("saved_bytes", "saved_param_bytes", "peak_fwd_bytes", "peak_bytes", *IDEAL_OF.values())
# speed's measurements (normbench.results.speed); pct_copy_bw is a version-1 run's (LEGACY).
SPEED = ("time", "bandwidth", "sol_time", "pct_sol", "speedup", "compile_time", "pct_copy_bw",
         *MEMORY)  # fmt: skip
# Metrics only a saved version-1 run has: `report` of one selects them; a new run never has them.
LEGACY: dict[str, tuple[str, ...]] = {"speed": ("pct_copy_bw",)}
# stability: the verdict, each output's and gradient's measures (<tensor>_<measure>: y, dx,
# dweight, ... as the variant has them), the two-run check and the 2^k sweep.
TENSOR_MEASURES = ("max_abs", "rel", "max_ulp", "tol_ratio", "scale_error", "channel_error",
                   "nonfinite", "silent_zero_rows", "lost_propagation")  # fmt: skip
STABILITY = ("verdict", *(f"*_{m}" for m in TENSOR_MEASURES), "deterministic", "sweep_verdict",
             "safe_scale_max", "safe_scale_min")  # fmt: skip
# The outputs and gradients the built-in variants have (their `outputs` and "d" + each tensor
# argument; a test keeps it so): a pattern such as `dx_*` is matched against their measures,
# which the catalogue's `<tensor>_max_ulp` form alone cannot match.
TENSORS = ("y", "residual_out", "dx", "dresidual", "dweight", "dbias", "dalpha")
COMPARE = ("ratio", "geomean_ratio")
CATALOGUE: dict[str, tuple[str, ...]] = {
    "speed": SPEED,
    "memory": MEMORY,
    "stability": STABILITY,
    "compare": COMPARE,
    "ab": COMPARE,  # ab's report is its comparison
    "calibrate": ("noise_floor", "min_margin", "between_run_noise"),
    "audit": tuple(name for name, _ in AUDIT_METRICS),
}

# Bigger is better for these; for every other metric (times, bytes, errors, ratios new/base,
# noise) smaller is.
BIGGER_IS_BETTER = frozenset({"bandwidth", "pct_sol", "pct_copy_bw", "speedup", "safe_scale_max",
                              "deterministic", "occupancy_pct", "load_width_bytes",
                              "store_width_bytes"})  # fmt: skip


def bigger_is_better(metric: str) -> bool:
    return metric in BIGGER_IS_BETTER


def parse_metrics(text: str | None) -> tuple[str, ...]:
    """'time, bandwidth' -> ('time', 'bandwidth'), repeats dropped; None -> () (all metrics).
    A list that names nothing is refused in one sentence."""
    if text is None:
        return ()
    names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if not names:
        raise UsageError("--metrics: it names no metric: give names, e.g. --metrics time,bandwidth")
    return names


def _readable(catalogue: Iterable[str]) -> str:
    return ", ".join(c.replace("*", "<tensor>") for c in catalogue)


def _known(name: str, known: Iterable[str]) -> bool:
    """A name or pattern is known when it matches a metric (or a metric pattern) of `known`."""
    return any(fnmatchcase(k, name) or fnmatchcase(name, k) for k in known)


def _matchable(catalogue: Sequence[str]) -> tuple[str, ...]:
    """The catalogue with each `*_<measure>` also spelt out for every built-in tensor."""
    spelt = (f"{t}{k[1:]}" for k in catalogue if k.startswith("*_") for t in TENSORS)
    return (*catalogue, *spelt)


def _matched(names: Sequence[str], catalogue: Sequence[str]) -> list[str]:
    """The metrics of `catalogue` (spelt out) that one of `names` matches."""
    return [k for k in _matchable(catalogue) if any(_known(n, [k]) for n in names)]


def check_metrics(suite: str, names: Sequence[str]) -> None:
    """Refuse (UsageError, exit 2) a name no metric of `suite` can match; a suite without a
    catalogue is checked against its run instead (`select_rows`)."""
    catalogue = CATALOGUE.get(suite)
    if not names or catalogue is None:
        return
    unknown = [n for n in names if not _known(n, _matchable(catalogue))]
    if unknown:
        raise UsageError(
            f"--metrics: unknown metric {', '.join(map(repr, unknown))} for {suite}: its "
            f"metrics are {_readable(catalogue)}"
        )


def select_rows(
    rows: Sequence[Mapping[str, Any]], suite: str, names: Sequence[str]
) -> list[Mapping[str, Any]]:
    """The rows whose metric matches one of `names` (all rows when none is given). A name that
    matches none of the run's metrics and is not in the suite's catalogue is refused, naming the
    run's metrics."""
    if not names:
        return list(rows)
    present = list(dict.fromkeys(str(r.get("metric")) for r in rows if r.get("metric")))
    known = (*_matchable(CATALOGUE.get(suite, ())), *present)
    unknown = [n for n in names if not _known(n, known)]
    if unknown:
        raise UsageError(
            f"--metrics: unknown metric {', '.join(map(repr, unknown))} for {suite}: this "
            f"run's metrics are {_readable(present) or 'none'}"
        )
    return [r for r in rows if any(fnmatchcase(str(r.get("metric") or ""), n) for n in names)]


# The metrics github-action-benchmark's files get when --metrics is not given: each suite's
# headline numbers (the file's direction picks among them); a suite not named here gives all.
GAB_DEFAULTS: dict[str, tuple[str, ...]] = {
    "speed": ("time", "bandwidth"),
    "memory": ("saved_bytes", "peak_bytes"),
    "stability": ("*_max_ulp", "safe_scale_max"),
    "compare": ("ratio", "geomean_ratio"),
    "ab": ("ratio", "geomean_ratio"),
    "calibrate": ("noise_floor", "min_margin"),
    "audit": ("registers", "spill_bytes", "occupancy_pct"),
}


def check_direction(formats: Sequence[str], names: Sequence[str]) -> None:
    """`--format gab` holds smaller-is-better metrics and `gab-bigger` bigger-is-better ones: a
    selection of plain names that has none for a gab file asked for is refused in one sentence
    (patterns are judged by the run's rows when the file is written)."""
    if not names or any(ch in n for n in names for ch in "*?["):
        return
    bigger = [n for n in names if bigger_is_better(n)]
    smaller = [n for n in names if not bigger_is_better(n)]
    if "gab" in formats and not smaller:
        raise UsageError(
            f"--format gab holds smaller-is-better metrics and {', '.join(bigger)} "
            "bigger-is-better: add --format gab-bigger for them"
        )
    if "gab-bigger" in formats and not bigger:
        raise UsageError(
            f"--format gab-bigger holds bigger-is-better metrics (bandwidth, speedup, pct_sol) "
            f"and {', '.join(smaller)} smaller-is-better: use --format gab for them"
        )


# Suites whose metrics carry no direction: a gab file of them is refused.
NO_DIRECTION = ("diagnose",)
# stability's metrics that only a --sweep-range run has.
SWEEP_METRICS = ("sweep_verdict", "safe_scale_max", "safe_scale_min")


def check_run_metrics(
    suite: str,
    formats: Sequence[str],
    names: Sequence[str],
    lacking: Sequence[str] = (),
    added_by: str = "",
) -> None:
    """The exports this run can fill, refused before anything is measured where they could only
    be empty. `lacking`: the metrics of the suite's catalogue this run will not have, which the
    option `added_by` adds (speed's memory metrics without --memory, stability's sweep without
    --sweep-range). A --metrics name that only they match is refused; and, with no --metrics,
    a gab file of the suite's default metrics with none of its direction: memory, compare, ab
    and calibrate have no bigger-is-better metric for gab-bigger, stability none without
    --sweep-range."""
    check_metrics(suite, names)  # a typo: one sentence naming the suite's metrics
    legacy = LEGACY.get(suite, ())
    present = [m for m in CATALOGUE.get(suite, ()) if m not in lacking and m not in legacy]
    matchable = _matchable(present)
    for n in names:
        if _known(n, legacy) and not _known(n, matchable):
            raise UsageError(
                f"--metrics {n!r}: only a version-1 {suite} file has it (normbench report of "
                f"one keeps it); a new run has {_readable(present)}"
            )
        if _known(n, lacking) and not _known(n, matchable):
            raise UsageError(
                f"--metrics {n!r}: {suite} has it only with {added_by}: add {added_by}, or "
                f"choose from {_readable(present)}"
            )
    check_export_files(suite, formats, names, (*lacking, *legacy), added_by)


def not_in_run(suite: str, metrics: Iterable[str]) -> tuple[str, ...]:
    """The metrics of `suite`'s catalogue that none of a saved run's `metrics` is (a stability
    run without a sweep lacks the sweep's): what `check_export_files` takes as `lacking`."""
    have = set(metrics)
    return tuple(m for m in CATALOGUE.get(suite, ()) if not any(fnmatchcase(h, m) for h in have))


# Suites whose rows are no cases of one hidden size: Liger's CSV (a row per kernel, mode and
# hidden size) could hold none of them.
NO_LIGER = {"audit": "compiled kernel configurations", "diagnose": "the probes' findings"}


def check_export_files(
    suite: str,
    formats: Sequence[str],
    names: Sequence[str] = (),
    lacking: Sequence[str] = (),
    added_by: str = "",
) -> None:
    """The exports a run of `suite` could never fill (a saved run's too, `report`), refused:
    Liger's CSV of a suite without cases of one hidden size (its file was the header); gab
    files for a suite whose numbers have no direction; and a gab file of a direction that the
    metrics it will have (less `lacking`) lack: with no --metrics `names` its default metrics,
    else those of its catalogue that the names and patterns match (plain names alone:
    check_direction)."""
    if "liger" in formats and suite in NO_LIGER:
        raise UsageError(
            f"--format liger: Liger's benchmark CSV holds cases of one hidden size, and "
            f"{suite}'s rows are {NO_LIGER[suite]}: use --format csv or json"
        )
    if suite in NO_DIRECTION and (gab := [f for f in formats if f in ("gab", "gab-bigger")]):
        raise UsageError(
            f"--format {gab[0]}: {suite}'s numbers (each probe's ratios, slopes and scales) "
            "have no better direction, so a github-action-benchmark file would chart some "
            "upside down: use --format csv or json"
        )
    defaults, catalogue = GAB_DEFAULTS.get(suite), CATALOGUE.get(suite)
    if defaults is None or catalogue is None:
        return  # a suite without a catalogue: judged by its run's rows when written
    catalogue = tuple(m for m in catalogue if m not in lacking)
    metrics = _matched(names, catalogue) if names else [m for m in defaults if m in catalogue]
    for fmt, bigger, other in (("gab", False, "gab-bigger"), ("gab-bigger", True, "gab")):
        if fmt in formats and not any(bigger_is_better(m) == bigger for m in metrics):
            why = f" without {added_by}" if lacking and added_by else ""
            chosen = f"--metrics {','.join(names)}" if names else f"{suite}{why}"
            want, have = ("bigger", "smaller") if bigger else ("smaller", "bigger")
            raise UsageError(
                f"--format {fmt}: {chosen} has no {want}-is-better metric ("
                f"{_readable([m for m in metrics if m in catalogue] or metrics) or 'none'}: "
                f"{have}-is-better), so the "
                f"file would be empty: use --format {other}"
            )
