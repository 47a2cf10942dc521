"""github-action-benchmark's custom JSON (docs/formats.md "github-action-benchmark").

The action (benchmark-action/github-action-benchmark, tools `customSmallerIsBetter` and
`customBiggerIsBetter`) reads a JSON array of entries {name, unit, value, range?, extra?}:
name, unit, range and extra are strings, value a number. `--format gab` writes the
smaller-is-better metrics (a time, bytes, an error), `--format gab-bigger` the bigger-is-better
ones (GB/s, a speedup): one file per tool, since the action reads one direction per step.

Each entry is one case and metric. Its name is the case in words, stable from run to run so the
action draws one line per name: "layernorm bf16 4x4096 fwd triton" for a time, with the metric
appended for any other ("... triton bandwidth"). Only measured values are written: a skipped,
failed or mismatched case has no number to chart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from normbench.report.merge import row_devices
from normbench.results.files import tidy_rows
from normbench.results.metrics import GAB_DEFAULTS, bigger_is_better, select_rows

if TYPE_CHECKING:
    from normbench.results import Run

# arch: an audit row's target GPU, so a run of several archs draws one line per arch.
NAME_PARTS = ("variant", "dtype", "shape", "mode", "backend", "arch", "dist")
UNNAMED_METRIC = "time"  # the speed suite's headline: its entries are named by the case alone


def entries(run: Run, bigger: bool = False, metrics: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The run's entries for one direction: the metrics of `metrics` (the suite's headline
    metrics, GAB_DEFAULTS, when none is given) whose direction is `bigger`."""
    rows = tidy_rows(run, samples=False)
    chosen = select_rows(rows, run.suite, metrics or GAB_DEFAULTS.get(run.suite, ()))
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for r, device_name in zip(chosen, row_devices(run, chosen), strict=True):
        metric = str(r.get("metric") or "")
        value = r.get("value")
        if bigger_is_better(metric) != bigger or r.get("status", "ok") != "ok":
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if not math.isfinite(value):
            continue
        name = entry_name(r, metric)
        if name in seen:  # two results of one case and metric (never in one suite's run)
            name = f"{name} [{r.get('case_id')}]"
        seen.add(name)
        entry: dict[str, Any] = {"name": name, "unit": str(r.get("unit") or ""),
                                 "value": value}  # fmt: skip
        spread = _range(r)
        if spread:
            entry["range"] = spread
        entry["extra"] = _extra(r, device_name)
        out.append(entry)
    return out


def entry_name(row: Mapping[str, Any], metric: str) -> str:
    """The case in words: variant (with its layer options), dtype, shape, mode, backend, the
    input distribution where there is one, the metric unless it is a time, the device label of
    a merged run; a result with no case columns is named by its id."""
    words = []
    for key in NAME_PARTS:
        v = row.get(key)
        if v and v != "-":
            words.append(f"{v} ({row['options']})" if key == "variant" and row.get("options")
                         else str(v))  # fmt: skip
    if not words:
        words = [str(row.get("case_id") or "")]
    if metric and metric != UNNAMED_METRIC:
        words.append(metric)
    if row.get("device"):
        words.append(f"[{row['device']}]")
    return " ".join(words)


def _num(v: float) -> str:
    return f"{v:.4g}"


def _range(row: Mapping[str, Any]) -> str | None:
    """The 95% CI as the action shows a range: '± half its width', in the value's unit."""
    lo, hi = row.get("ci_low"), row.get("ci_high")
    if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and hi >= lo:
        return f"± {_num((hi - lo) / 2)}"
    return None


def _extra(row: Mapping[str, Any], device_name: str) -> str:
    """The tooltip's lines: the distribution, the CI, the conditions and any warning."""
    unit = f" {row['unit']}" if row.get("unit") else ""
    lines = []
    if row.get("p20") is not None and row.get("p80") is not None:
        lines.append(f"p20-p80: {_num(row['p20'])}-{_num(row['p80'])}{unit}")
    if row.get("ci_low") is not None and row.get("ci_high") is not None:
        lines.append(f"95% CI: {_num(row['ci_low'])}-{_num(row['ci_high'])}{unit}")
    if row.get("n"):
        lines.append(f"samples: {row['n']}")
    for key in ("cache", "value_text", "note"):
        if row.get(key):
            lines.append(f"{key}: {row[key]}")
    why = row.get("unreliable")
    if why and why not in str(row.get("note") or ""):  # a timing's note says it already
        lines.append(f"unreliable: {why}")
    if device_name:
        lines.append(f"device: {device_name}")
    return "\n".join(lines)


def render(run: Run, bigger: bool = False, metrics: Sequence[str] = ()) -> str:
    """The JSON array github-action-benchmark reads (customBiggerIsBetter with `bigger`)."""
    return json.dumps(entries(run, bigger, metrics), indent=2, ensure_ascii=False) + "\n"
