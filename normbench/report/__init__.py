"""Reporters. Each writes one format; `write_reports` writes a run's files under one name."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from normbench.errors import UsageError

if TYPE_CHECKING:
    from normbench.results import Run

FORMATS = ("csv", "md", "json", "html")
DEFAULT_FORMATS = ("csv", "md", "json")


def parse_formats(text: str) -> tuple[str, ...]:
    items = tuple(s.strip().lower() for s in text.split(",") if s.strip())
    if items == ("none",):
        return ()
    for f in items:
        if f not in FORMATS:
            raise UsageError(f"unknown report format {f!r}: choose from {', '.join(FORMATS)}, none")
    return items


def write_reports(
    run: Run,
    out_dir: str | Path,
    formats: tuple[str, ...] = DEFAULT_FORMATS,
    stem: str | None = None,
    plots: bool = False,
) -> dict[str, Path]:
    """Write the run's reports as out_dir/<suite>-<timestamp>.<ext>; never overwrite.

    With `plots`, the suite's figures are written first as <stem>.<figure>.png, then the
    Markdown (which links them) and the HTML index (which embeds them)."""
    from normbench.report import csv, html, markdown
    from normbench.results import dumps, write_run_files

    if not formats and not plots:
        return {}
    stem = stem or f"{run.suite}-{time.strftime('%Y%m%d-%H%M%S')}"
    images: dict[str, bytes] = {}
    if plots:
        from normbench.report.draw import draw
        from normbench.report.plots import figures

        images = {f"{name}.png": draw(data) for name, data in figures(run)}

    def md(name: str) -> str:
        return markdown.render(run, links={k[:-4]: f"{name}.{k}" for k in images} or None)

    renderers = {"csv": csv.render, "json": dumps}
    contents: dict = dict(images)  # the plots first: a report never links a missing file
    contents.update({f: renderers[f](run) for f in formats if f in renderers})
    if "md" in formats:
        contents["md"] = md
    if "html" in formats:
        contents["html"] = html.render(run, {k[:-4]: v for k, v in images.items()})
    written = write_run_files(Path(out_dir), stem, contents)
    return {f: written[f] for f in formats} | {k: written[k] for k in images}
