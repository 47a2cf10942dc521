"""The report formats a run can be written in, and the parsing of --format, --metrics and
`--out -` (docs/formats.md)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from normbench.errors import UsageError

# gab and gab-bigger: github-action-benchmark's customSmallerIsBetter and customBiggerIsBetter
# JSON; liger: the columns of Liger-Kernel's benchmark CSV (docs/formats.md).
FORMATS = ("csv", "md", "json", "html", "gab", "gab-bigger", "liger")
# The file name's ending per format, where it is not the format's name.
EXTENSIONS = {"gab": "gab.json", "gab-bigger": "gab-bigger.json", "liger": "liger.csv"}
DEFAULT_FORMATS = ("csv", "md", "json")  # a suite's reports
GATE_FORMATS = "md,json"  # compare, ab and calibrate: the verdicts and the run to compare again
RERENDER_FORMATS = "md,html"  # report: the saved run re-rendered to read
DEFAULT_OUT = Path("reports")
STDOUT = "-"  # --out -: one format streamed to standard output, no file written


def extension(fmt: str) -> str:
    return EXTENSIONS.get(fmt, fmt)


def is_stdout(out: str | Path | None) -> bool:
    return out is not None and str(out) == STDOUT


class Formats(tuple):
    """The chosen formats, in order: a tuple of names, as every caller reads them (`"csv" in
    formats`), carrying the export options that travel with them to the writer: the metrics the
    tidy exports keep (`--metrics`; empty: every metric)."""

    metrics: tuple[str, ...]

    def __new__(cls, names: Iterable[str] = (), metrics: Iterable[str] = ()) -> Formats:
        self = super().__new__(cls, tuple(names))
        self.metrics = tuple(metrics)
        return self

    def __reduce__(self) -> tuple[Any, ...]:  # pickled whole (a config sent to a worker)
        return (Formats, (tuple(self), self.metrics))


def metrics_of(formats: Iterable[str]) -> tuple[str, ...]:
    """The --metrics selection that `formats` carries (none for a plain tuple)."""
    return getattr(formats, "metrics", ())


def parse_formats(
    text: str,
    out: str | Path | None = None,
    plot: bool = False,
    metrics: str | None = None,
) -> Formats:
    """'csv,md' -> ('csv', 'md'); 'none' -> (); an unknown format, 'none' beside others, or
    nothing at all is refused in one sentence (an empty list never falls back to a default).
    With `out` '-' exactly one format is streamed to stdout, and no plot (a file) is written.
    `metrics` ('time,bandwidth') rides along (normbench.results.metrics.parse_metrics)."""
    from normbench.results.metrics import check_direction, parse_metrics

    choices = f"choose from {', '.join(FORMATS)}, or none for no reports"
    items = tuple(dict.fromkeys(s.strip().lower() for s in text.split(",") if s.strip()))
    if not items:
        raise UsageError(f"--format is empty: {choices}")
    if "none" in items:
        if items != ("none",):
            raise UsageError(
                f"--format {text!r}: 'none' means no reports and cannot be combined with a format"
            )
        items = ()
    for f in items:
        if f not in FORMATS:
            raise UsageError(f"unknown report format {f!r}: {choices}")
    if is_stdout(out):
        if len(items) != 1:
            raise UsageError(
                f"--out - streams one format to stdout, --format {text!r} names {len(items)}: "
                f"give one of {', '.join(FORMATS)}"
            )
        if plot:
            raise UsageError("--out - streams one report to stdout; --plot writes PNG files: "
                             "give a folder with --out")  # fmt: skip
    names = parse_metrics(metrics)
    check_direction(items, names)
    return Formats(items, names)
