"""How an audit run reads: one line per compiled kernel configuration (registers, spills, shared
memory, access widths, occupancy); a configuration that failed to compile shows its reason."""

from __future__ import annotations

from typing import TYPE_CHECKING

from normbench.report.tables import Table
from normbench.results.audit import AuditRow

if TYPE_CHECKING:
    from normbench.results import Run

COLUMNS = [
    "kernel", "arch", "dtype", "N", "block", "warps", "regs", "spill B", "smem B", "load B",
    "store B", "16-byte", "occupancy", "status", "note",
]  # fmt: skip
HEADERS = COLUMNS  # every header the table can have (--columns checks names against it)


def audit_line(a: AuditRow) -> list[str]:
    def g(value: object) -> str:
        return str(value) if a.ok else "-"  # a failed compile has no numbers, only its reason

    return [
        a.kernel, a.arch, a.dtype, str(a.dim), g(a.block), g(a.num_warps), g(a.registers),
        g(a.spill_bytes), g(a.shared_bytes), g(a.load_width_bytes), g(a.store_width_bytes),
        ("yes" if a.vector16 else "no") if a.ok else "-",
        f"{a.occupancy_pct:.0f}%" if a.ok else "-", a.status.value, a.note,
    ]  # fmt: skip


def view(run: Run) -> list[Table]:
    rows = [audit_line(a) for a in run.of(AuditRow)]
    return [("triton kernels, compiled ahead of time", list(COLUMNS), rows)]
