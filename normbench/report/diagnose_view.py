"""`normbench diagnose` results as a Run (one row per probe and key number) and its table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from normbench.report.tables import Table, by_case, register_view
from normbench.results import Row, Run

if TYPE_CHECKING:
    from normbench.suites.diagnose import ProbeResult

SUITE = "diagnose"


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def diagnose_rows(results: list[ProbeResult]) -> list[Row]:
    """The verdict row of each probe carries the claim, source, threshold and caveat; each scalar
    key number is a row of its own so the CSV stays tidy."""
    rows = []
    for r in results:
        base = dict(case_id=r.probe, suite=SUITE, variant=r.probe, backend="-", dtype="-",
                    shape="-", mode="-")  # fmt: skip
        status = "error" if r.verdict == "inconclusive" and "failed" in r.summary else "ok"
        extra = {k: v for k, v in r.to_dict().items() if k not in ("probe",)}
        rows.append(Row(**base, metric="verdict", value=None, unit=r.verdict, status=status,
                        note=r.summary, extra=extra))  # fmt: skip
        for key, value in r.numbers.items():
            num = _number(value)
            if num is not None:
                rows.append(Row(**base, metric=key, value=num, unit=""))
    return rows


@register_view(SUITE)
def diagnose_view(run: Run) -> list[Table]:
    verdicts, sources = [], []
    for metrics in by_case(run).values():
        v = metrics["verdict"]
        e = v.extra
        verdicts.append([v.case_id, v.unit, e.get("claim", ""), v.note, e.get("threshold", "")])
        sources.append([v.case_id, e.get("source", ""), e.get("caveat", "")])
    return [
        ("the claims about normalization, measured",
         ["probe", "verdict", "claim", "numbers", "threshold"], verdicts),
        ("sources and caveats", ["probe", "source", "caveat"], sources),
    ]  # fmt: skip
