"""How a diagnose run reads: each claim with its verdict, the numbers behind it (the summary) and
the rule applied; then each claim's source and caveat."""

from __future__ import annotations

from typing import TYPE_CHECKING

from normbench.report.tables import Table
from normbench.results.diagnose import ProbeResult

if TYPE_CHECKING:
    from normbench.results import Run


VERDICT_COLUMNS = ["probe", "verdict", "claim", "numbers", "threshold"]
SOURCE_COLUMNS = ["probe", "source", "caveat"]
HEADERS = [*VERDICT_COLUMNS, *SOURCE_COLUMNS[1:]]  # what --columns may name


def view(run: Run) -> list[Table]:
    results = run.of(ProbeResult)
    verdicts = [[r.probe, r.verdict.value, r.claim, r.summary, r.threshold] for r in results]
    sources = [[r.probe, r.source, r.caveat] for r in results]
    return [
        ("the claims about normalization, measured", list(VERDICT_COLUMNS), verdicts),
        ("sources and caveats", list(SOURCE_COLUMNS), sources),
    ]  # fmt: skip
