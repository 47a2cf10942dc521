"""The report formats a run can be written in, and the parsing of --format."""

from __future__ import annotations

from pathlib import Path

from normbench.errors import UsageError

FORMATS = ("csv", "md", "json", "html")
DEFAULT_FORMATS = ("csv", "md", "json")  # a suite's reports
GATE_FORMATS = "md,json"  # compare, ab and calibrate: the verdicts and the run to compare again
RERENDER_FORMATS = "md,html"  # report: the saved run re-rendered to read
DEFAULT_OUT = Path("reports")


def parse_formats(text: str) -> tuple[str, ...]:
    """'csv,md' -> ('csv', 'md'); 'none' -> (); an unknown format is refused in one sentence."""
    items = tuple(s.strip().lower() for s in text.split(",") if s.strip())
    if items == ("none",):
        return ()
    for f in items:
        if f not in FORMATS:
            raise UsageError(f"unknown report format {f!r}: choose from {', '.join(FORMATS)}, none")
    return items
