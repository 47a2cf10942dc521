"""How a speed run reads: per case, the median and its spread, GB/s against the ideal byte
model, the share of the copy bandwidth and the speedup over eager (and with speed --memory, what
it saved for backward)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from normbench.fmt import fmt, fmt_time_ms
from normbench.report.memory_view import with_ratio
from normbench.report.tables import Table
from normbench.results import Status
from normbench.results.speed import SpeedResult
from normbench.speed_answers import not_told_apart

if TYPE_CHECKING:
    from normbench.results import Measurement, Run

COLUMNS = [
    "variant", "dtype", "shape", "mode", "backend", "status", "median", "p20-p80", "CI +-", "n",
    "GB/s", "% copy bw", "vs eager", "note",
]  # fmt: skip
# Every header the table can have (--columns checks names against it before measuring).
HEADERS = [*COLUMNS, "% SOL", "saved (x ideal)"]
TIE_TITLE = (
    "speed (~ in vs eager: not told apart from eager, its 95% CI includes 1x or a "
    "side was timed unreliable)"
)


def speed_line(r: SpeedResult, memory: bool) -> list[str]:
    t = r.time
    if t is not None:
        spread = f"{fmt_time_ms(t.p20)} - {fmt_time_ms(t.p80)}"
        half = t.half_ci
        ci, n = (f"{half:.1%}" if half is not None else "-"), str(t.n)
    else:
        spread, ci, n = "-", "-", "-"
    gbps, speedup = r.get("bandwidth"), r.get("speedup")
    # % of the case's own SOL reference; a version-1 run has % of one device-wide copy instead.
    pct = r.get("pct_sol") or r.get("pct_copy_bw")
    head = r.measurements[0]
    notes = [head.note] if head.note else []
    if pct is not None and pct.metric == "pct_sol" and pct.note:
        notes.append(pct.note)  # above 100%: why
    compile_s = r.value("compile_time")
    if compile_s is not None:
        notes.append(f"compile {compile_s:.1f} s")
    # A timing the machine spoiled says so where the eye lands first, not only in its note.
    status = "unreliable" if r.status is Status.OK and r.unreliable else r.status.value
    line = [
        r.variant_label, r.dtype, str(r.shape), r.mode, r.backend, status,
        fmt_time_ms(t.value) if t is not None else "-", spread, ci, n,
        fmt(gbps.value) if gbps else "-",
        pct_cell(pct),
        speedup_cell(speedup),
        "; ".join(notes),
    ]  # fmt: skip
    if memory:
        line[-1:-1] = [with_ratio(r, "saved_bytes")]
    return line


def pct_cell(m: Measurement | None) -> str:
    """'!' marks a share above 100% of the SOL reference (the note says why)."""
    if m is None or m.value is None:
        return "-"
    return f"{m.value:.1f}" + ("!" if m.metric == "pct_sol" and m.value > 100 else "")


def speedup_cell(m: Measurement | None) -> str:
    """'~' marks a speedup not told apart from eager (TIE_TITLE): its 95% CI includes 1, or a
    side was timed while the machine was unreliable (a tight CI of spoiled samples)."""
    if m is None or m.value is None:
        return "-"
    return f"{'~' if not_told_apart(m.ci_low, m.ci_high, m.note) else ''}{m.value:.2f}x"


def view(run: Run) -> list[Table]:
    results = run.of(SpeedResult)
    memory = any(r.get("saved_bytes") for r in results)  # speed --memory
    cols = list(COLUMNS)
    if memory:  # the peaks: in the CSV, JSON and `normbench memory`
        cols[-1:-1] = ["saved (x ideal)"]
    # The legend wherever speedups carry CIs (not only where a '~' shows), so that the devices of
    # a merged run keep one table title; version-1 runs have none and keep the old title.
    cis = any((m := r.get("speedup")) is not None and m.ci_low is not None for r in results)
    if any(r.get("pct_sol") for r in results):
        cols[cols.index("% copy bw")] = "% SOL"
    return [(TIE_TITLE if cis else "speed", cols, [speed_line(r, memory) for r in results])]
