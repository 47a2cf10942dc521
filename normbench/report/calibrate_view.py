"""How an A/A calibration reads: each case's noise floor over its A/A comparisons, then the
run's noise floor and the smallest margin that keeps false alarms under 1%."""

from __future__ import annotations

from typing import TYPE_CHECKING

from normbench.report.tables import Table
from normbench.results.compare import CaseNoise, MinMargin, SuiteNoiseFloor

if TYPE_CHECKING:
    from normbench.results import Run


CASE_COLUMNS = ["case", "A/A comparisons", "noise floor", "worst change"]
# No comma in a header: --columns separates names by commas.
CALIBRATION_COLUMNS = ["noise floor (p99)", "smallest margin (< 1% false alarms)",
                       "case comparisons"]  # fmt: skip
HEADERS = [*CASE_COLUMNS, *CALIBRATION_COLUMNS]  # what --columns may name


def _pct(value: float | None) -> str:
    return f"{value:.1f}%" if value is not None else "-"


def view(run: Run) -> list[Table]:
    rows = []
    for r in run.of(CaseNoise):
        floor = r.measurements[0]
        rows.append([r.case_id, str(floor.n), _pct(floor.value), _pct(r.worst_ratio_change_pct)])
    out = [("A/A noise per case", list(CASE_COLUMNS), rows)]
    floor = next(iter(run.of(SuiteNoiseFloor)), None)
    margin = next(iter(run.of(MinMargin)), None)
    if floor or margin:
        out.append((
            "calibration",
            list(CALIBRATION_COLUMNS),
            [[
                _pct(floor.value) if floor else "-",
                _pct(margin.value) if margin else "-",
                str(margin.n) if margin else "-",
            ]],
        ))  # fmt: skip
    return out
