"""The regression gate's result kinds: a comparison of two timing runs (`compare`, `ab`), an A/A
calibration (`calibrate`), and one side of an interleaved A/B run.

- `CaseComparison` (kind "compare"): one case, base against new. Its one measurement is the
  `ratio` new/base with its 95% CI; its fields are the verdict (a `Verdict`), the margin, both
  medians and sample counts and the test statistics. A case that was not compared is the ratio
  without a value, its status and the reason.
- `GeomeanRatio` (kind "compare_geomean"): the geometric-mean ratio over the compared cases.
- `CaseNoise` (kind "calibrate"): one case's A/A noise floor over the repeats' comparisons.
- `SuiteNoiseFloor` (kind "calibrate_floor"), `MinMargin` (kind "calibrate_margin", with its
  false-alarm curve) and `BetweenRunNoise` (kind "calibrate_between_runs"): the calibration's
  answer for the whole run.
- `SideResult` (kind "ab_side"): a speed case timed interleaved with the other side of `ab`; a
  side's run is a speed run, so `compare` reads it as one.

The field names are the version-1 `extra` keys, so version-1 files load with no renames and
plots and CSV readers see the same columns (docs/regression-gate.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from normbench.results.model import CaseResult, Measurement, Result, plain, result_kind
from normbench.results.speed import SpeedResult
from normbench.results.v1 import v1_kind

if TYPE_CHECKING:
    from normbench.stats import RatioCI

S = TypeVar("S", bound="SuiteFigure")


class Verdict(str, Enum):
    """A case's verdict (docs/numerics.md section 7)."""

    REGRESSION = "regression"  # the whole CI above 1 + margin, significant after Holm
    BROKEN = "broken"  # ran in the baseline, now fails its correctness gate or errors
    IMPROVEMENT = "improvement"  # the whole CI below 1 - margin, significant after Holm
    INCONCLUSIVE = "inconclusive"  # anything else with a CI
    SAME = "same"  # the whole CI inside [1 - margin, 1 + margin]
    MISSING = "missing"  # only in the baseline
    NEW = "new"  # only in the new run
    NOT_COMPARED = "not compared"  # not timed on one side (skipped, an error in the base, or
    # timings that are not positive numbers: NaN, zero, negative)
    # A side was timed while the machine could not be trusted (SpeedResult.unreliable): the
    # ratio and CI are shown for information, never judged (separate runs; `ab` judges them).
    UNRELIABLE = "unreliable"

    def __str__(self) -> str:
        return self.value

    @property
    def failing(self) -> bool:
        """A verdict that fails the gate (exit 1)."""
        return self in (Verdict.REGRESSION, Verdict.BROKEN)


# --- compare -----------------------------------------------------------------------------------


@result_kind("compare")
@dataclass(frozen=True)
class CaseComparison(CaseResult):
    """One case of a comparison; its measurement is `ratio` (new/base, unit x) with the CI."""

    verdict: Verdict = Verdict.INCONCLUSIVE
    margin: float | None = None  # the margin d of the verdict (a fraction)
    base_ms: float | None = None  # the medians
    new_ms: float | None = None
    base_n: int = 0  # timing samples per side
    new_n: int = 0
    base_case: str | None = None  # the case ids on each side (they differ when matched by group)
    new_case: str | None = None
    # The tests: log(ratio) ~ center + se x t(df) (df None: normal), one-sided p-values of
    # "ratio <= 1 + d" / "ratio >= 1 - d", and the same after Holm over the compared cases.
    log_center: float | None = None
    log_se: float | None = None
    df: float | None = None
    p_regression: float | None = None
    p_improvement: float | None = None
    p_regression_holm: float | None = None
    p_improvement_holm: float | None = None
    # Processes on the smaller side when the CI is over processes (Welch); 0: block bootstrap.
    processes: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", Verdict(self.verdict))

    @property
    def ratio(self) -> Measurement:
        return self.measurements[0]

    @property
    def compared(self) -> bool:
        """Judged on a CI (not missing, new, broken, skipped on a side, or unreliable)."""
        return (
            self.ratio.ok and self.log_center is not None and self.verdict is not Verdict.UNRELIABLE
        )

    def ratio_ci(self) -> RatioCI:
        """The RatioCI the case was judged with (to judge it again at another margin)."""
        from normbench.stats import RatioCI

        m = self.ratio
        assert m.value is not None and m.ci_low is not None and m.ci_high is not None
        assert self.log_center is not None and self.log_se is not None
        return RatioCI(
            m.value, m.ci_low, m.ci_high, self.log_center, self.log_se, self.base_n,
            self.new_n, self.df if self.df is not None else math.inf, self.processes,
        )  # fmt: skip


@dataclass(frozen=True)
class SuiteFigure(Result):
    """One number about the whole run, not a case: its row has the measurement columns (metric
    and unit from the class) and empty case columns; a subclass's own fields follow."""

    metric: ClassVar[str] = ""
    unit: ClassVar[str] = ""

    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    note: str = ""

    def to_rows(self) -> list[dict[str, Any]]:
        own = {f.name: plain(getattr(self, f.name)) for f in fields(self)
               if f.name not in _FIGURE_FIELDS}  # fmt: skip
        return [{
            "kind": self.kind, "case_id": self.case_id, "variant": "", "options": "",
            "backend": "", "dtype": "", "shape": "", "mode": "", "metric": self.metric,
            "value": self.value, "unit": self.unit, "status": "ok", "note": self.note,
            "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n, "device": self.device,
            **own,
        }]  # fmt: skip

    @classmethod
    def from_rows(cls: type[S], rows: Sequence[Mapping[str, Any]]) -> S:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in rows[0].items() if k in names and v is not None}
        return cls(**kw)


_FIGURE_FIELDS = frozenset(f.name for f in fields(SuiteFigure))


def _tuples(v: Any) -> Any:
    """Lists (as JSON reads them back) to tuples, nested ones too, so results stay hashable and
    compare equal after a round trip."""
    return tuple(_tuples(x) for x in v) if isinstance(v, (list, tuple)) else v


GEOMEAN_ID = "suite/geomean"


@result_kind("compare_geomean")
@dataclass(frozen=True)
class GeomeanRatio(SuiteFigure):
    """The geometric mean of the compared cases' ratios new/base with its 95% CI; n: cases."""

    metric: ClassVar[str] = "geomean_ratio"
    unit: ClassVar[str] = "x"


@v1_kind("compare")
def _compare_kind(row: dict[str, Any]) -> str:
    return GeomeanRatio.kind if row.get("metric") == GeomeanRatio.metric else CaseComparison.kind


# --- calibrate ---------------------------------------------------------------------------------


@result_kind("calibrate")
@dataclass(frozen=True)
class CaseNoise(CaseResult):
    """One case's A/A noise: its measurement `noise_floor` (%, n = A/A comparisons) is how far
    the comparisons' CIs reach from 1 (99th percentile, or the largest with few)."""

    ratios: tuple[float, ...] = ()  # each A/A comparison's ratio
    ci: tuple[tuple[float, float], ...] = ()  # and its CI
    worst_ratio_change_pct: float | None = None  # the largest |ratio - 1|, in %

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratios", _tuples(self.ratios))
        object.__setattr__(self, "ci", _tuples(self.ci))


@result_kind("calibrate_floor")
@dataclass(frozen=True)
class SuiteNoiseFloor(SuiteFigure):
    """The noise floor over every case and pair (%); n: the CI edges it was read from."""

    metric: ClassVar[str] = "noise_floor"
    unit: ClassVar[str] = "%"


@result_kind("calibrate_margin")
@dataclass(frozen=True)
class MinMargin(SuiteFigure):
    """The smallest margin (%) with under 1% false alarms among the A/A case comparisons (n),
    and the false-alarm curve that found it."""

    metric: ClassVar[str] = "min_margin"
    unit: ClassVar[str] = "%"

    alarms_at_margin: int | None = None  # case comparisons alarmed at that margin
    comparisons_alarmed_at_margin: int | None = None  # comparisons with any alarm
    comparisons: int | None = None  # A/A comparisons (each one family of cases)
    # (margin, alarmed case comparisons, all case comparisons, comparisons with any alarm) per
    # margin of the grid, up to the first without an alarm.
    curve: tuple[tuple[float, int, int, int], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "curve", _tuples(self.curve))

    @property
    def fraction(self) -> float | None:
        """The margin as a fraction (what compare's margin is)."""
        return self.value / 100 if self.value is not None else None


@result_kind("calibrate_between_runs")
@dataclass(frozen=True)
class BetweenRunNoise(SuiteFigure):
    """The noise between two separate runs that no within-run CI sees, measured over the A/A
    case comparisons (n): value is 1 sd of the ratio in % (expm1 of `tau`), `tau` 1 sd of its
    log, what `compare --calibration` assumes when a comparison has too few cases to estimate
    it (docs/regression-gate.md). Only a calibration of separate runs records one."""

    metric: ClassVar[str] = "between_run_noise"
    unit: ClassVar[str] = "%"

    tau: float | None = None


FLOOR_ID, MARGIN_ID, BETWEEN_ID = (
    "suite/noise_floor", "suite/min_margin", "suite/between_run_noise",
)  # fmt: skip


@v1_kind("calibrate")
def _calibrate_kind(row: dict[str, Any]) -> str:
    by_id = {FLOOR_ID: SuiteNoiseFloor.kind, MARGIN_ID: MinMargin.kind}
    return by_id.get(row.get("case_id"), CaseNoise.kind)


# --- ab ----------------------------------------------------------------------------------------


@result_kind("ab_side")
@dataclass(frozen=True)
class SideResult(SpeedResult):
    """A speed case of one side of an interleaved A/B run (`normbench ab`)."""

    side: str = ""  # "A" or "B" ("" for a case that failed before its sides were known)
    # Samples per worker process, in order, when the side ran in several (--processes): compare
    # then puts its CI over the processes. Empty for one process.
    processes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "processes", _tuples(self.processes or ()))

    @classmethod
    def of_speed(cls, result: SpeedResult, side: str, processes: Sequence[int] = ()) -> SideResult:
        own = {f.name: getattr(result, f.name) for f in fields(SpeedResult)}
        return cls(**own, side=side, processes=tuple(processes))


@v1_kind("speed")
def _speed_kind(row: dict[str, Any]) -> str:
    # Version-1 `ab` sides were speed rows with extra["side"]: read them as sides, so the
    # process counts (compare's CI over processes) survive.
    return SideResult.kind if row.get("side") else SpeedResult.kind
