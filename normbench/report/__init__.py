"""Reporters. Each writes one format; `write_reports` writes a run's files under one name."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from normbench.formats import DEFAULT_FORMATS, FORMATS, parse_formats  # noqa: F401

if TYPE_CHECKING:
    from normbench.results import Run


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
        from normbench.canvas import png_bytes
        from normbench.report.plots import figures

        images = {f"{name}.png": png_bytes(fig) for name, fig in figures(run)}

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
