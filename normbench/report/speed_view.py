"""How a speed run reads: per case, the median and its spread, GB/s against the ideal byte
model, the share of the copy bandwidth and the speedup over eager (and with speed --memory, what
it saved for backward)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from normbench.fmt import fmt, fmt_time_ms
from normbench.report.memory_view import with_ratio
from normbench.report.tables import Table
from normbench.results.speed import SpeedResult

if TYPE_CHECKING:
    from normbench.results import Run

COLUMNS = [
    "variant", "dtype", "shape", "mode", "backend", "status", "median", "p20-p80", "CI +-", "n",
    "GB/s", "% copy bw", "vs eager", "note",
]  # fmt: skip


def speed_line(r: SpeedResult, memory: bool) -> list[str]:
    t = r.time
    if t is not None:
        spread = f"{fmt_time_ms(t.p20)} - {fmt_time_ms(t.p80)}"
        half = t.half_ci
        ci, n = (f"{half:.1%}" if half is not None else "-"), str(t.n)
    else:
        spread, ci, n = "-", "-", "-"
    gbps, pct, speedup = (r.get(m) for m in ("bandwidth", "pct_copy_bw", "speedup"))
    head = r.measurements[0]
    notes = [head.note] if head.note else []
    compile_s = r.value("compile_time")
    if compile_s is not None:
        notes.append(f"compile {compile_s:.1f} s")
    line = [
        r.variant_label, r.dtype, str(r.shape), r.mode, r.backend, r.status.value,
        fmt_time_ms(t.value) if t is not None else "-", spread, ci, n,
        fmt(gbps.value) if gbps else "-",
        f"{pct.value:.1f}" if pct and pct.value is not None else "-",
        f"{speedup.value:.2f}x" if speedup and speedup.value is not None else "-",
        "; ".join(notes),
    ]  # fmt: skip
    if memory:
        line[-1:-1] = [with_ratio(r, "saved_bytes")]
    return line


def view(run: Run) -> list[Table]:
    results = run.of(SpeedResult)
    memory = any(r.get("saved_bytes") for r in results)  # speed --memory
    cols = list(COLUMNS)
    if memory:  # the peaks: in the CSV, JSON and `normbench memory`
        cols[-1:-1] = ["saved (x ideal)"]
    return [("speed", cols, [speed_line(r, memory) for r in results])]
