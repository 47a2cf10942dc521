"""How a diagnose run reads: each claim with its verdict, the numbers behind it (the summary) and
the rule applied; then each claim's source and caveat."""

from __future__ import annotations

from typing import TYPE_CHECKING

from normbench.report.tables import Table
from normbench.results.diagnose import ProbeResult

if TYPE_CHECKING:
    from normbench.results import Run


def view(run: Run) -> list[Table]:
    results = run.of(ProbeResult)
    verdicts = [[r.probe, r.verdict.value, r.claim, r.summary, r.threshold] for r in results]
    sources = [[r.probe, r.source, r.caveat] for r in results]
    return [
        ("the claims about normalization, measured",
         ["probe", "verdict", "claim", "numbers", "threshold"], verdicts),
        ("sources and caveats", ["probe", "source", "caveat"], sources),
    ]  # fmt: skip
