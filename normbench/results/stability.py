"""The stability suite's results: a verdict per case, and the 2^k range sweep.

A case (`StabilityResult`) is one implementation on one input distribution, judged against the
fp64 oracle (normbench.verdicts). Its headline measurement is `verdict` (value 0/1/2 for
PASS/WARN/FAIL, the reason as its note); then, per output and gradient, the tensor's measures
(`y_max_abs`, `y_rel`, `y_max_ulp`, `y_tol_ratio`, `y_scale_error`, `y_channel_error`,
`y_nonfinite`, `y_silent_zero_rows`, `y_lost_propagation`, the same for dx, dweight, ...) and,
where checked, `deterministic` (1/0). The fields say which tensor was worst and by how much, and
what the declared semantics changed.

The sweep scales `unit-max` inputs by 2^k: each scale is a `SweepPointResult` (measurement
`sweep_verdict`, case id `<case>/x2^k`), and each implementation's safe range a
`SweepRangeResult` (measurements `safe_scale_max` and `safe_scale_min`, the scales at the ends
of the PASS run, their notes the first failure beyond each end).

Every row carries its input distribution (`dist`, `unit-max` for the sweep) and a verdict row
its verdict as text in `value_text` (docs/formats.md "The CSV file"). Field names are the keys
version-1 files kept in `extra`, so those files read back unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from normbench.results.model import CaseResult, Measurement, result_kind
from normbench.results.v1 import v1_kind
from normbench.verdicts import RANK

if TYPE_CHECKING:
    from normbench.cases import Case


class Verdict(str, Enum):
    """A case's verdict (docs/numerics.md section 2): PASS, WARN (marginal, or two runs differ
    bitwise), FAIL; SKIPPED where the case does not apply (the reason says why)."""

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value

    @property
    def rank(self) -> int:
        """0/1/2 for PASS/WARN/FAIL (the verdict measurement's value); -1 for SKIPPED."""
        return _RANK[self]

    @property
    def judged(self) -> bool:
        return self is not Verdict.SKIPPED


_RANK = {Verdict.SKIPPED: -1, **{Verdict(v): rank for v, rank in RANK.items()}}
_RANK_NAME = {rank: v.value for v, rank in _RANK.items() if v.judged}


def _verdict(v: Any) -> Verdict | None:
    return None if v is None else Verdict(v)


@dataclass(frozen=True)
class OnInput(CaseResult):
    """A stability result knows the input distribution it was judged on: a column of every row,
    so a tidy reader can group by it (the sweep's cases are all on `unit-max`)."""

    dist: str | None = None  # the input distribution (normbench.inputs)

    @classmethod
    def of_case(cls, case: Case, measurements: Iterable[Measurement], **kw: Any) -> Any:
        # Every case knows its input, also one the harness could not run (suites.common.not_run).
        kw.setdefault("dist", case.dist)
        return super().of_case(case, measurements, **kw)

    def value_text(self, m: Measurement) -> str | None:
        """A verdict measurement's value is its rank (0/1/2); its name is the text. Whether two
        runs were bitwise identical is yes or no."""
        if m.value is None:
            return None
        if m.metric in VERDICT_METRICS:
            return _RANK_NAME.get(int(m.value))
        if m.metric == "deterministic":
            return "yes" if m.value else "no"
        return None


# The measurements whose value is a verdict's rank (Verdict.rank).
VERDICT_METRICS = ("verdict", "sweep_verdict")


@result_kind("stability")
@dataclass(frozen=True)
class StabilityResult(OnInput):
    """One stability case; the first measurement is `verdict`. `verdict` is None only where the
    harness itself failed on the case (status error, the exception as the note)."""

    verdict: Verdict | None = None
    tensor: str | None = None  # the worst output or gradient
    max_ulp: float | None = None  # ... its largest error in output ulps
    rel: float | None = None  # ... its norm-wise relative error
    tol_ratio: float | None = None  # ... its error as a multiple of the tolerance
    semantics: str | None = None  # how the declared semantics differ from the contract
    semantic_ratio: float | None = None  # ... and how far y is from the contract's reference
    deterministic: bool | None = None  # two runs bitwise identical (None: not checked)

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", _verdict(self.verdict))  # read back as text

    @property
    def reason(self) -> str:
        """The verdict in words (why it failed, why it did not run)."""
        return self.note

    @property
    def dim(self) -> int | None:
        """The hidden size N (the shape's; a column of every row)."""
        return self.shape.dim if self.shape else None


@result_kind("stability_sweep_point")
@dataclass(frozen=True)
class SweepPointResult(OnInput):
    """One scale 2^k of a sweep; the measurement is `sweep_verdict` (0/1/2, the reason as its
    note; skipped where the scaled input is not representable or the case does not apply)."""

    k: int | None = None
    verdict: Verdict | None = None
    tol_ratio: float | None = None  # the worst tensor's error / tolerance at this scale
    max_ulp: float | None = None  # ... and its error in output ulps

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", _verdict(self.verdict))

    @property
    def scale(self) -> float | None:
        return None if self.k is None else 2.0**self.k


@result_kind("stability_sweep_range")
@dataclass(frozen=True)
class SweepRangeResult(OnInput):
    """One implementation's dynamic range: the measurements `safe_scale_max` (the headline: a
    sweep that could not run is this metric without a value) and `safe_scale_min`, the largest
    and smallest scale of the PASS run. The edges are True where the run reaches the end of the
    sweep (the true limit lies beyond)."""

    low_k: int | None = None
    high_k: int | None = None
    low_edge: bool | None = None
    high_edge: bool | None = None

    @property
    def high(self) -> Measurement | None:
        return self.get("safe_scale_max")

    @property
    def low(self) -> Measurement | None:
        return self.get("safe_scale_min")

    @property
    def span(self) -> str:
        """'2^-4 .. 2^8', or 'no scale passes'."""
        return "no scale passes" if self.low_k is None else f"2^{self.low_k} .. 2^{self.high_k}"

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]]) -> SweepRangeResult:
        # Version-1 files wrote safe_scale_min first: the headline goes first, whose status and
        # note the case's are.
        order = sorted(rows, key=lambda r: r.get("metric") != "safe_scale_max")
        return super().from_rows(order)


# Version-1 stability files kept the sweep as rows of the suite with these metrics.
_V1_SWEEP = {
    "sweep_verdict": "stability_sweep_point",
    "safe_scale_min": "stability_sweep_range",
    "safe_scale_max": "stability_sweep_range",
}


@v1_kind("stability")
def v1_stability_kind(row: dict[str, Any]) -> str:
    return _V1_SWEEP.get(row.get("metric") or "", "stability")
