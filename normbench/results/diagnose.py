"""The diagnose suite's result: one folk claim about norms, measured (docs/diagnostics.md).

A `ProbeResult` is the claim and its source, the `Verdict`, the summary, the numbers behind it,
the rule that turned them into the verdict (`threshold`) and the caveat. The verdict is a pure
function of the numbers (`verdict_<probe>` in each probe's module), so the numbers are saved in
full and a saved result can be judged again.

Rows: the `verdict` row carries the claim, source, rule, caveat, figure and time, with the
summary as its note and the verdict as its unit (as in version 1) and in `value_text` (the tidy
text column, docs/formats.md "The CSV file"); each number is a row of its own, its metric the
number's key: a scalar in `value`, a list in `values`, a text in `text` and `value_text`.
Every row carries the verdict. Version-1 files kept the numbers as a dict on the verdict row
(and the scalars as rows too); both read back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from normbench.results.model import Result, Status, result_kind

Number = float | int | list | str


class Verdict(str, Enum):
    """A claim's verdict (docs/diagnostics.md section 1)."""

    CONFIRMED = "confirmed"
    REFUTED = "refuted"
    INCONCLUSIVE = "inconclusive"

    def __str__(self) -> str:
        return self.value


VERDICTS = tuple(v.value for v in Verdict)


def verdict_of(value: Any) -> Verdict:
    """The verdict named by `value`; a ValueError that lists the verdicts otherwise."""
    try:
        return Verdict(value)
    except ValueError:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, got {value!r}") from None


@result_kind("diagnose")
@dataclass(frozen=True)
class ProbeResult(Result):
    """One claim, measured: the verdict with the numbers, rule and caveat behind it. The case id
    is the probe's name. A probe that raised is inconclusive with status ERROR, the error in its
    numbers."""

    claim: str
    source: str
    verdict: Verdict
    numbers: dict[str, Number]
    threshold: str
    caveat: str
    summary: str
    figure: Path | None = None
    seconds: float = 0.0
    status: Status = Status.OK

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", verdict_of(self.verdict))
        object.__setattr__(self, "status", Status(self.status))
        if self.figure is not None:
            object.__setattr__(self, "figure", Path(self.figure))

    @property
    def probe(self) -> str:
        return self.case_id

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def to_rows(self) -> list[dict[str, Any]]:
        # As in version 1: the probe is the case's variant, and its verdict the verdict row's unit.
        head = {"kind": self.kind, "case_id": self.case_id, "variant": self.case_id,
                "backend": "-", "dtype": "-", "shape": "-", "mode": "-", "device": self.device,
                "verdict": self.verdict.value, "status": self.status.value}  # fmt: skip
        verdict_row = {
            **head, "metric": "verdict", "value": None, "unit": self.verdict.value,
            "value_text": self.verdict.value, "note": self.summary,
            "claim": self.claim, "source": self.source, "threshold": self.threshold,
            "caveat": self.caveat, "figure": str(self.figure) if self.figure else None,
            "seconds": self.seconds,
        }  # fmt: skip
        return [verdict_row] + [
            {**head, "metric": key, "unit": "", **_number_columns(v)}
            for key, v in self.numbers.items()
        ]

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]]) -> ProbeResult:
        head = next((r for r in rows if r.get("metric") == "verdict"), rows[0])
        numbers = head.get("numbers")  # version 1: all of them, on the verdict row
        if isinstance(numbers, dict):
            numbers = {k: _number(v) for k, v in numbers.items()}
        else:
            numbers = {r["metric"]: _number_of_row(r) for r in rows if r is not head}
        return cls(
            head["case_id"], claim=head.get("claim") or "", source=head.get("source") or "",
            verdict=head.get("verdict") or Verdict.INCONCLUSIVE, numbers=numbers,
            threshold=head.get("threshold") or "", caveat=head.get("caveat") or "",
            summary=head.get("summary") or head.get("note") or "", figure=head.get("figure"),
            seconds=float(head.get("seconds") or 0.0), status=head.get("status") or Status.OK,
            device=head.get("device") or "",
        )  # fmt: skip


def _number_columns(v: Number) -> dict[str, Any]:
    if isinstance(v, (list, tuple)):
        return {"value": None, "values": list(v)}
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return {"value": v}
    return {"value": None, "text": str(v), "value_text": str(v)}


def _number(v: Any) -> Number:
    """A saved number back: JSON has no NaN, so the file holds null where the probe had NaN
    (a slope of a curve that is not positive, a ratio with nothing to divide)."""
    if v is None:
        return math.nan
    if isinstance(v, list):
        return [_number(x) for x in v]
    return v


def _number_of_row(r: Mapping[str, Any]) -> Number:
    if r.get("values") is not None:
        return _number(r["values"])
    if r.get("text") is not None:
        return r["text"]
    return _number(r.get("value"))
