"""How a memory run reads: per case, what it saves for backward against the ideal (x plus fp32
statistics per row), the parameters it saves besides, and its peaks against the ideal peaks.
The speed table's `saved` and `peak` columns (speed --memory) use the same cells."""

from __future__ import annotations

from typing import TYPE_CHECKING

from normbench.report.tables import Table, by_case, register_view, variant_label

if TYPE_CHECKING:
    from normbench.results import Row, Run

HEAD = "saved_bytes"  # the row that carries a case's status (skipped, mismatch, error)


def fmt_size(n: float | None) -> str:
    """Three significant digits, so the table fits a terminal: '48 MiB', '1.03 KiB' (the CSV and
    JSON keep every byte)."""
    if n is None:
        return "-"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}" if abs(n) < 1000 * size else f"{n / size:.0f} {unit}"
    return f"{n:.0f} B"


def ratio(r: Row | None) -> str:
    if r is None or r.status != "ok" or not isinstance(r.extra.get("ratio"), (int, float)):
        return "-"
    return f"{r.extra['ratio']:.2f}x"


def with_ratio(r: Row | None) -> str:
    """'48 MiB (3.00x)': bytes and the ratio to the ideal, or '-'."""
    if r is None or r.status != "ok" or r.value is None:
        return "-"
    x = ratio(r)
    return fmt_size(r.value) if x == "-" else f"{fmt_size(r.value)} ({x})"


def _value(r: Row | None) -> str:
    return fmt_size(r.value) if r is not None and r.status == "ok" else "-"


@register_view("memory")
def memory_view(run: Run) -> list[Table]:
    cols = [
        "variant", "dtype", "shape", "mode", "backend", "status", "saved", "x ideal",
        "params", "peak fwd", "x ideal", "peak", "x ideal", "note",
    ]  # fmt: skip
    rows = []
    for metrics in by_case(run).values():
        head = metrics.get(HEAD) or next(iter(metrics.values()))
        notes = [head.note] if head.note else []
        for name in ("peak_fwd_bytes", "peak_bytes"):
            r = metrics.get(name)
            if r is not None and r.status != "ok" and r.note and r.note not in notes:
                notes.append(r.note)
        saved, fwd, peak = (metrics.get(m) for m in ("saved_bytes", "peak_fwd_bytes", "peak_bytes"))
        rows.append(
            [
                variant_label(head), head.dtype, head.shape, head.mode, head.backend, head.status,
                _value(saved), ratio(saved), _value(metrics.get("saved_param_bytes")),
                _value(fwd), ratio(fwd), _value(peak), ratio(peak), "; ".join(notes),
            ]
        )  # fmt: skip
    title = "memory: saved for backward and peaks (peak: of the mode), x ideal = measured / ideal"
    return [(title, cols, rows)]
