"""The typed result model: what a suite returns and what a report reads.

A `Run` is one suite's answer: its environment and configuration, a list of typed results and
its findings (the summary lines, each with a level). Every result type is a frozen dataclass
registered under a `kind`; `to_rows()` is its one way to tidy rows (the CSV, JSON, plots and
`report` all read those rows, see normbench.results.files) and `from_rows()` reads them back.

A case result (`CaseResult`) is one case's measurements: the case as numbers (its Shape, not a
string), each metric as a `Measurement` with its status, and the suite's own typed fields
declared on its subclass. Those fields are columns of every row of the case. A row carries the
case's shape as numbers, `rows` (the normalized rows M) among them, and, where a measurement's
value is a category (a verdict, yes/no), that category as text in `value_text`
(docs/formats.md "The CSV file").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from normbench.provenance import command_line, git_info
from normbench.variants.base import Shape

if TYPE_CHECKING:
    from normbench.cases import Case

SCHEMA_VERSION = 2
R = TypeVar("R", bound="Result")


class Status(str, Enum):
    """What happened to a case (or one of its measurements)."""

    OK = "ok"
    SKIPPED = "skipped"  # could not run here (unavailable, too big, interpreter): with the reason
    MISMATCH = "mismatch"  # wrong numbers: never timed
    ERROR = "error"  # raised: with the exception in one line

    def __str__(self) -> str:
        return self.value


STATUSES = tuple(s.value for s in Status)


class Level(str, Enum):
    """A finding's weight: a result (the run's answer), a warning (the answer may be wrong: a
    throttled clock, a different machine) or a note (how to read it)."""

    RESULT = "result"
    WARNING = "warning"
    NOTE = "note"


PREFIX = {Level.WARNING: "Warning: ", Level.NOTE: "Note: "}


@dataclass(frozen=True)
class Finding:
    """One summary line of a run."""

    text: str
    level: Level = Level.RESULT

    @property
    def line(self) -> str:
        """As printed: warnings and notes say so first."""
        return PREFIX.get(self.level, "") + self.text

    @classmethod
    def parse(cls, line: str) -> Finding:
        """A printed line back to its finding (version-1 files kept only the lines)."""
        for level, prefix in PREFIX.items():
            if line.startswith(prefix):
                return cls(line[len(prefix) :], level)
        return cls(line)

    def to_dict(self) -> dict[str, str]:
        return {"level": self.level.value, "text": self.text}


@dataclass(frozen=True)
class Measurement:
    """One metric of a case. A timing also carries its distribution and raw samples."""

    metric: str
    value: float | None
    unit: str
    status: Status = Status.OK
    note: str = ""
    p20: float | None = None
    p80: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    samples: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))  # a ValueError names the value

    @property
    def ok(self) -> bool:
        return self.status is Status.OK and self.value is not None

    @property
    def half_ci(self) -> float | None:
        """Half the CI's width relative to the value (None without a CI)."""
        if self.ci_low is None or self.ci_high is None or not self.value:
            return None
        return (self.ci_high - self.ci_low) / 2 / self.value


MEASUREMENT_FIELDS = tuple(f.name for f in fields(Measurement))

KINDS: dict[str, type[Result]] = {}


def result_kind(name: str) -> Callable[[type[R]], type[R]]:
    """Register a result type under the `kind` its rows carry (how a file is read back)."""

    def deco(cls: type[R]) -> type[R]:
        if name in KINDS and KINDS[name] is not cls:
            raise ValueError(f"result kind {name!r} registered twice")
        cls.kind = name
        KINDS[name] = cls
        return cls

    return deco


def _value(rows: Sequence[Mapping[str, Any]], name: str) -> Any:
    """A detail column's value for the case: the first row that has one."""
    for r in rows:
        v = r.get(name)
        if v is not None and v == v:  # NaN (a pandas gap) is no value
            return v
    return None


@dataclass(frozen=True)
class Result:
    """A typed result. Subclasses are frozen dataclasses registered with `result_kind`."""

    kind: ClassVar[str] = ""

    case_id: str
    # The device label of a run merged from several machines ("" for a plain run).
    device: str = field(default="", kw_only=True)
    # When the run that measured it was made, in a merged run ("" in a plain run: the run's).
    created: str = field(default="", kw_only=True)

    def to_rows(self) -> list[dict[str, Any]]:
        """One tidy row (a plain dict) per field set: the default is the dataclass as one row."""
        return [{"kind": self.kind, **{f.name: plain(getattr(self, f.name)) for f in fields(self)}}]

    @classmethod
    def from_rows(cls: type[R], rows: Sequence[Mapping[str, Any]]) -> R:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in rows[0].items() if k in names})

    def with_device(self: R, label: str, created: str = "") -> R:
        """The result as a merged run holds it: its device label and, unless it has one from an
        earlier merge, when its own run was made."""
        return replace(self, device=label, created=self.created or created)


def plain(v: Any) -> Any:
    """A field as JSON writes it: an enum as its value, tuples (nested too) as lists."""
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, tuple):
        return [plain(x) for x in v]
    return v


@dataclass(frozen=True)
class CaseResult(Result):
    """One case and its measurements; the first measurement is the suite's headline metric (for
    a case that did not run, that metric without a value, its status and the reason).

    Subclasses declare the suite's own typed fields; to_rows writes them on every row of the
    case and from_rows reads them back."""

    variant: str = ""
    backend: str = ""
    dtype: str = ""
    shape: Shape | None = None
    mode: str = ""
    options: str = ""  # the layer options' suffix, e.g. "w=fp32,res=fp32" (case ids carry it too)
    measurements: tuple[Measurement, ...] = ()

    # --- building ---------------------------------------------------------------------------

    @classmethod
    def of_case(cls: type[R], case: Case, measurements: Iterable[Measurement], **kw: Any) -> R:
        return cls(
            case_id=case.id, variant=case.variant, backend=case.backend, dtype=case.dtype,
            shape=case.shape, mode=case.mode, options=case.options.suffix(),
            measurements=tuple(measurements), **kw,
        )  # fmt: skip

    def replace_measurements(self: R, measurements: Iterable[Measurement]) -> R:
        return replace(self, measurements=tuple(measurements))

    # --- reading ----------------------------------------------------------------------------

    @property
    def status(self) -> Status:
        return self.measurements[0].status if self.measurements else Status.OK

    @property
    def note(self) -> str:
        return self.measurements[0].note if self.measurements else ""

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    @property
    def variant_label(self) -> str:
        """The variant with its layer options, e.g. 'add_rmsnorm (w=fp32,res=fp32)'."""
        return f"{self.variant} ({self.options})" if self.options else self.variant

    def get(self, metric: str) -> Measurement | None:
        return next((m for m in self.measurements if m.metric == metric), None)

    def value(self, metric: str) -> float | None:
        m = self.get(metric)
        return m.value if m is not None else None

    # --- rows -------------------------------------------------------------------------------

    def detail_names(self) -> tuple[str, ...]:
        """The subclass's own fields: columns on every row of the case."""
        return tuple(f.name for f in fields(self) if f.name not in _CASE_RESULT_FIELDS)

    def to_rows(self) -> list[dict[str, Any]]:
        shape = self.shape
        head = {
            "kind": self.kind, "case_id": self.case_id, "variant": self.variant,
            "options": self.options, "backend": self.backend, "dtype": self.dtype,
            "shape": str(shape) if shape else "", "mode": self.mode,
            "batch": shape.batch if shape else None, "seq": shape.seq if shape else None,
            "heads": shape.heads if shape else None, "dim": shape.dim if shape else None,
            "rows": shape.rows if shape else None, "device": self.device,
        }  # fmt: skip
        details = {name: plain(getattr(self, name)) for name in self.detail_names()}
        out = []
        for m in self.measurements:
            row = {**head, **{k: plain(getattr(m, k)) for k in MEASUREMENT_FIELDS}}
            text = self.value_text(m)
            if text is not None:  # most rows hold a quantity: the JSON stays lean
                row["value_text"] = text
            out.append({**row, **details})
        return out

    def value_text(self, m: Measurement) -> str | None:
        """The measurement's value in words where it is a category, not a quantity (a verdict:
        its rank is `value`, its name this); None for a quantity. A subclass names its own."""
        return None

    @classmethod
    def from_rows(cls: type[R], rows: Sequence[Mapping[str, Any]]) -> R:
        first = rows[0]
        shape = None
        if _value(rows, "dim") is not None:
            shape = Shape(*(int(_value(rows, k) or 1) for k in ("batch", "seq", "dim", "heads")))
        measurements = tuple(
            Measurement(
                **{k: r[k] for k in MEASUREMENT_FIELDS if k in r and k != "samples"},
                samples=tuple(r.get("samples") or ()),
            )  # fmt: skip
            for r in rows
        )
        details = {}
        for f in fields(cls):
            if f.name in _CASE_RESULT_FIELDS:
                continue
            v = _value(rows, f.name)
            details[f.name] = tuple(v) if isinstance(v, list) else v
        details = {k: v for k, v in details.items() if v is not None}
        return cls(
            case_id=first["case_id"], variant=first.get("variant") or "",
            backend=first.get("backend") or "", dtype=first.get("dtype") or "", shape=shape,
            mode=first.get("mode") or "", options=first.get("options") or "",
            measurements=measurements, device=first.get("device") or "", **details,
        )  # fmt: skip


_CASE_RESULT_FIELDS = frozenset(f.name for f in fields(CaseResult))


@result_kind("case")
@dataclass(frozen=True)
class GenericCase(CaseResult):
    """A case result with no fields of its own."""


@dataclass(frozen=True)
class UnknownResult(Result):
    """Rows of a kind this normbench does not know (a newer normbench's, or a plugin suite's):
    kept as they were read, so a re-saved or merged file loses nothing."""

    rows: tuple[Mapping[str, Any], ...] = ()

    @property
    def kind_name(self) -> str:
        return str(self.rows[0].get("kind") or "") if self.rows else ""

    def to_rows(self) -> list[dict[str, Any]]:
        return [{**r, "device": self.device} for r in self.rows]

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]]) -> UnknownResult:
        clean = tuple({k: v for k, v in r.items() if k != "suite"} for r in rows)
        return cls(rows[0]["case_id"], rows=clean, device=rows[0].get("device") or "")


@dataclass
class Run:
    """One suite's answer, and the file format (saved as JSON by normbench.results.files)."""

    suite: str
    env: dict[str, Any]
    config: dict[str, Any]
    results: list[Result] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    interrupted: bool = False
    wall_s: float = 0.0
    # Where the run came from (normbench.provenance), stamped when it is made like `created`: the
    # command line and the git checkouts. None where a saved run did not record them (older
    # files), never guessed afterwards.
    argv: list[str] | None = field(default_factory=command_line)
    git: dict[str, Any] | None = field(default_factory=git_info)

    def of(self, cls: type[R]) -> list[R]:
        """The results of one type, in run order."""
        return [r for r in self.results if isinstance(r, cls)]

    def cases(self) -> list[CaseResult]:
        return self.of(CaseResult)

    def add(self, text: str, level: Level = Level.RESULT) -> None:
        self.findings.append(Finding(text, level))

    @property
    def summary(self) -> list[str]:
        """The findings as printed lines."""
        return [f.line for f in self.findings]
