"""One table per suite, shared by the console, Markdown and HTML reporters so all show the same
thing.

A view is `(title, columns, rows)` with rows as lists of strings, built from the run's typed
results. VIEWS names each suite's view module (imported when a run of that suite is shown); the
module's `view(run)` builds the tables. Any other run falls back to one line per measurement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from normbench.fmt import fmt
from normbench.results import UnknownResult

if TYPE_CHECKING:
    from normbench.results import Run

Table = tuple[str, list[str], list[list[str]]]
VIEWS: dict[str, str] = {
    "speed": "normbench.report.speed_view",
    "memory": "normbench.report.memory_view",
    "stability": "normbench.report.stability_view",
    "compare": "normbench.report.compare_view",
    "calibrate": "normbench.report.calibrate_view",
    "audit": "normbench.report.audit_view",
    "diagnose": "normbench.report.diagnose_view",
    "capture": "normbench.report.capture_view",
}


def view_of(suite: str) -> Callable[[Run], list[Table]]:
    import importlib

    module = VIEWS.get(suite)
    return importlib.import_module(module).view if module else generic_view


def tables(run: Run) -> list[Table]:
    """The suite's view; for a run merged from several devices, the view of each device's rows
    joined under a leading `device` column."""
    from normbench.report.merge import split_by_device

    view = view_of(run.suite)
    parts = split_by_device(run)
    if len(parts) <= 1:
        return view(run)
    joined: dict[tuple[str, tuple[str, ...]], list[list[str]]] = {}
    for label, sub in parts:
        for title, cols, rows in view(sub):
            joined.setdefault((title, tuple(cols)), []).extend([label, *r] for r in rows)
    return [(title, ["device", *cols], rows) for (title, cols), rows in joined.items()]


def generic_view(run: Run) -> list[Table]:
    cols = ["case", "metric", "value", "unit", "status", "note"]
    rows = [
        [r.case_id, m.metric, fmt(m.value), m.unit, m.status.value, m.note]
        for r in run.cases()
        for m in r.measurements
    ]
    rows += [  # a kind this normbench does not know: its rows as they were read
        [r.case_id, str(row.get("metric", "")), _number(row.get("value")), str(row.get("unit", "")),
         str(row.get("status", "")), str(row.get("note", ""))]
        for r in run.of(UnknownResult)
        for row in r.rows
    ]  # fmt: skip
    return [(f"{run.suite} results", cols, rows)]


def _number(v: object) -> str:
    return fmt(float(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"
