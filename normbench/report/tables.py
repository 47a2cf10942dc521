"""One table per suite, shared by the console and Markdown reporters so both show the same thing.

A view is `(title, columns, rows)` with rows as lists of strings. Suites register their own view;
any other run falls back to one line per row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from normbench.results import Row, Run

Table = tuple[str, list[str], list[list[str]]]
VIEWS: dict[str, Callable[[Run], list[Table]]] = {}
# Views registered by modules that a command may not have imported: suite -> module.
LAZY_VIEWS = {
    "compare": "normbench.report.compare_view",
    "calibrate": "normbench.report.compare_view",
    "stability": "normbench.report.stability_view",
    "memory": "normbench.report.memory_view",
    "audit": "normbench.report.audit_view",
    "diagnose": "normbench.report.diagnose_view",
}


def register_view(suite: str) -> Callable:
    def deco(fn: Callable[[Run], list[Table]]) -> Callable[[Run], list[Table]]:
        VIEWS[suite] = fn
        return fn

    return deco


def tables(run: Run) -> list[Table]:
    """The suite's view; for a run merged from several devices, the view of each device's rows
    joined under a leading `device` column."""
    from normbench.report.merge import split_by_device

    if run.suite in LAZY_VIEWS and run.suite not in VIEWS:  # a saved run read back
        import importlib

        importlib.import_module(LAZY_VIEWS[run.suite])
    view = VIEWS.get(run.suite, generic_view)
    parts = split_by_device(run)
    if len(parts) <= 1:
        return view(run)
    joined: dict[tuple[str, tuple[str, ...]], list[list[str]]] = {}
    for label, sub in parts:
        for title, cols, rows in view(sub):
            joined.setdefault((title, tuple(cols)), []).extend([label, *r] for r in rows)
    return [(title, ["device", *cols], rows) for (title, cols), rows in joined.items()]


def variant_label(r: Row) -> str:
    """The variant with its layer options, e.g. 'add_rmsnorm (w=fp32,res=fp32)'."""
    options = r.extra.get("options")
    return f"{r.variant} ({options})" if options else r.variant


def fmt_time_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms < 1e-3:
        return f"{ms * 1e6:.0f} ns"
    if ms < 1:
        return f"{ms * 1e3:.1f} us"
    if ms < 1000:
        return f"{ms:.2f} ms" if ms < 100 else f"{ms:.1f} ms"
    return f"{ms / 1e3:.2f} s"


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


def generic_view(run: Run) -> list[Table]:
    cols = ["case", "metric", "value", "unit", "status", "note"]
    rows = [[r.case_id, r.metric, fmt(r.value), r.unit, r.status, r.note] for r in run.rows]
    return [(f"{run.suite} results", cols, rows)]


def by_case(run: Run) -> dict[str, dict[str, Row]]:
    """{case_id: {metric: row}} in the order cases first appear."""
    out: dict[str, dict[str, Row]] = {}
    for r in run.rows:
        out.setdefault(r.case_id, {})[r.metric] = r
    return out


@register_view("speed")
def speed_view(run: Run) -> list[Table]:
    cols = [
        "variant", "dtype", "shape", "mode", "backend", "status", "median", "p20-p80",
        "CI +-", "n", "GB/s", "% copy bw", "vs eager", "note",
    ]  # fmt: skip
    memory = any(r.metric == "saved_bytes" for r in run.rows)  # speed --memory
    if memory:
        from normbench.report.memory_view import with_ratio

        cols[-1:-1] = ["saved (x ideal)"]  # the peaks: in the CSV, JSON and `normbench memory`
    rows = []
    for metrics in by_case(run).values():
        t = metrics.get("time") or next(iter(metrics.values()))
        if t.metric == "time" and t.status == "ok" and t.value:
            spread = f"{fmt_time_ms(t.p20)} - {fmt_time_ms(t.p80)}"
            ci = f"{(t.ci_high - t.ci_low) / 2 / t.value:.1%}" if t.ci_high is not None else "-"
            n = str(t.n)
        else:
            spread, ci, n = "-", "-", "-"
        gbps = metrics.get("bandwidth")
        pct = metrics.get("pct_copy_bw")
        speed = metrics.get("speedup")
        notes = [t.note] if t.note else []
        if "compile_time" in metrics:
            notes.append(f"compile {metrics['compile_time'].value:.1f} s")
        line = [
            variant_label(t), t.dtype, t.shape, t.mode, t.backend, t.status,
            fmt_time_ms(t.value) if t.status == "ok" else "-", spread, ci, n,
            fmt(gbps.value) if gbps else "-",
            f"{pct.value:.1f}" if pct and pct.value is not None else "-",
            f"{speed.value:.2f}x" if speed and speed.value is not None else "-",
            "; ".join(notes),
        ]  # fmt: skip
        if memory:
            line[-1:-1] = [with_ratio(metrics.get("saved_bytes"))]
        rows.append(line)
    return [("speed", cols, rows)]
