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
    """'csv,md' -> ('csv', 'md'); 'none' -> (); an unknown format, 'none' beside others, or
    nothing at all is refused in one sentence (an empty list never falls back to a default)."""
    choices = f"choose from {', '.join(FORMATS)}, or none for no reports"
    items = tuple(s.strip().lower() for s in text.split(",") if s.strip())
    if not items:
        raise UsageError(f"--format is empty: {choices}")
    if "none" in items:
        if items != ("none",):
            raise UsageError(
                f"--format {text!r}: 'none' means no reports and cannot be combined with a format"
            )
        return ()
    for f in items:
        if f not in FORMATS:
            raise UsageError(f"unknown report format {f!r}: {choices}")
    return items
