"""Reporters. Each writes one format; `write_reports` writes a run's files under one name."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from normbench.errors import UsageError

if TYPE_CHECKING:
    from normbench.results import Run

FORMATS = ("csv", "md", "json")


def parse_formats(text: str) -> tuple[str, ...]:
    items = tuple(s.strip().lower() for s in text.split(",") if s.strip())
    if items == ("none",):
        return ()
    for f in items:
        if f not in FORMATS:
            raise UsageError(f"unknown report format {f!r}: choose from {', '.join(FORMATS)}, none")
    return items


def write_reports(
    run: Run, out_dir: str | Path, formats: tuple[str, ...] = FORMATS, stem: str | None = None
) -> dict[str, Path]:
    """Write the run's reports as out_dir/<suite>-<timestamp>.<ext>; never overwrite."""
    from normbench.report import csv, markdown
    from normbench.results import dumps

    if not formats:
        return {}
    stem = stem or f"{run.suite}-{time.strftime('%Y%m%d-%H%M%S')}"
    renderers = {"csv": csv.render, "md": markdown.render, "json": dumps}
    from normbench.results import write_run_files

    return write_run_files(Path(out_dir), stem, {f: renderers[f](run) for f in formats})
