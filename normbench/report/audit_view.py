"""The audit as a Run (tidy rows: one per configuration and metric) and its table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from normbench.report.tables import Table, by_case, register_view
from normbench.results import Row, Run

if TYPE_CHECKING:
    from normbench.suites.audit import AuditRow

SUITE = "audit"
METRICS = (
    ("registers", "regs/thread"),
    ("spill_bytes", "B/thread"),
    ("shared_bytes", "B/block"),
    ("load_width_bytes", "B"),
    ("store_width_bytes", "B"),
    ("occupancy_pct", "%"),
)


def audit_rows(rows: list[AuditRow]) -> list[Row]:
    out = []
    for a in rows:
        family, _, mode = a.kernel.partition("_")
        case_id = f"{a.kernel}/{a.arch}/{a.dtype}/N={a.n}"
        for metric, unit in METRICS:
            value = getattr(a, metric) if a.status == "ok" else None
            out.append(
                Row(
                    case_id=case_id, suite=SUITE, variant=family, backend="triton",
                    dtype=a.dtype, shape=f"N={a.n}", mode=mode, metric=metric,
                    value=None if value is None else float(value), unit=unit,
                    status="ok" if a.status == "ok" else "error", note=a.note,
                    extra=a.to_dict() if metric == "registers" else {},
                )
            )  # fmt: skip
    return out


def spills(run: Run) -> list[str]:
    return [r.case_id for r in run.metric("spill_bytes") if r.value]


@register_view(SUITE)
def audit_view(run: Run) -> list[Table]:
    cols = ["kernel", "arch", "dtype", "N", "block", "warps", "regs", "spill B", "smem B",
            "load B", "store B", "16-byte", "occupancy", "status", "note"]  # fmt: skip
    rows = []
    for metrics in by_case(run).values():
        e = metrics["registers"].extra or {}
        ok = metrics["registers"].status == "ok"

        def g(k: str, e: dict = e, ok: bool = ok) -> str:
            return str(e.get(k, "-")) if ok else "-"

        rows.append(
            [
                e.get("kernel", metrics["registers"].case_id), e.get("arch", "-"),
                metrics["registers"].dtype, str(e.get("n", "-")), g("block"), g("num_warps"),
                g("registers"), g("spill_bytes"), g("shared_bytes"), g("load_width_bytes"),
                g("store_width_bytes"), ("yes" if e.get("vector16") else "no") if ok else "-",
                f"{e.get('occupancy_pct', 0):.0f}%" if ok else "-",
                metrics["registers"].status, metrics["registers"].note,
            ]
        )  # fmt: skip
    return [("triton kernels, compiled ahead of time", cols, rows)]
