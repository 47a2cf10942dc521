"""How a memory run reads: per case, what it saves for backward against the ideal (x plus fp32
statistics per row), the parameters it saves besides, and its peaks against the ideal peaks.
The speed table's `saved` column (speed --memory) uses the same cells."""

from __future__ import annotations

from typing import TYPE_CHECKING

from normbench.fmt import fmt_bytes
from normbench.report.tables import Table
from normbench.results import Status
from normbench.results.memory import MemoryFields, MemoryResult

if TYPE_CHECKING:
    from normbench.results import Run

COLUMNS = [
    "variant", "dtype", "shape", "mode", "backend", "status", "saved", "x ideal", "params",
    "peak fwd", "x ideal", "peak", "x ideal", "note",
]  # fmt: skip
HEADERS = COLUMNS  # every header the table can have (--columns checks names against it)


def ratio(r: MemoryFields, metric: str) -> str:
    x = r.ratio(metric)
    return "-" if x is None else f"{x:.2f}x"


def size(r: MemoryFields, metric: str) -> str:
    m = r.get(metric)
    return fmt_bytes(m.value) if m is not None and m.ok else "-"


def with_ratio(r: MemoryFields, metric: str) -> str:
    """'48 MiB (3.00x)': bytes and the ratio to the ideal, or '-'."""
    bytes_, x = size(r, metric), ratio(r, metric)
    return bytes_ if x == "-" or bytes_ == "-" else f"{bytes_} ({x})"


def memory_line(r: MemoryResult) -> list[str]:
    notes = [r.note] if r.note else []
    for name in ("peak_fwd_bytes", "peak_bytes"):
        m = r.get(name)
        if m is not None and m.status is not Status.OK and m.note and m.note not in notes:
            notes.append(m.note)
    return [
        r.variant_label, r.dtype, str(r.shape), r.mode, r.backend, r.status.value,
        size(r, "saved_bytes"), ratio(r, "saved_bytes"), size(r, "saved_param_bytes"),
        size(r, "peak_fwd_bytes"), ratio(r, "peak_fwd_bytes"), size(r, "peak_bytes"),
        ratio(r, "peak_bytes"), "; ".join(notes),
    ]  # fmt: skip


def view(run: Run) -> list[Table]:
    title = "memory: saved for backward and peaks (peak: of the mode), x ideal = measured / ideal"
    return [(title, list(COLUMNS), [memory_line(r) for r in run.of(MemoryResult)])]
