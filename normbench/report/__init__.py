"""Reporters. Each writes one format; `write_reports` writes a run's files under one name, and
`render_one` gives one format's text for `--out -` (docs/formats.md)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from normbench.formats import (  # noqa: F401
    DEFAULT_FORMATS,
    FORMATS,
    extension,
    metrics_of,
    parse_formats,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from normbench.results import Run

# The formats made of the tidy rows (--metrics chooses their rows; JSON keeps every one).
EXPORTS = ("csv", "json", "gab", "gab-bigger", "liger")


def export(run: Run, fmt: str, metrics: Sequence[str] = ()) -> str:
    """One of EXPORTS as text."""
    from normbench.report import csv, gab, liger
    from normbench.results import dumps

    if fmt == "json":
        return dumps(run)
    if fmt in ("gab", "gab-bigger"):
        return gab.render(run, bigger=fmt == "gab-bigger", metrics=metrics)
    return {"csv": csv.render, "liger": liger.render}[fmt](run, metrics)


def render_one(
    run: Run, fmt: str, metrics: Sequence[str] = (), columns: tuple[str, ...] = ()
) -> str:
    """One format's text, with no file beside it (`--out -`: the Markdown links no plot)."""
    from normbench.report import html, markdown

    if fmt == "md":
        return markdown.render(run, columns=columns)
    if fmt == "html":
        return html.render(run, {}, columns)
    return export(run, fmt, metrics)


def write_reports(
    run: Run,
    out_dir: str | Path,
    formats: tuple[str, ...] = DEFAULT_FORMATS,
    stem: str | None = None,
    plots: bool = False,
    columns: tuple[str, ...] = (),
) -> dict[str, Path]:
    """Write the run's reports as out_dir/<suite>-<timestamp>.<ext>; never overwrite.

    With `plots`, the suite's figures are written first as <stem>.<figure>.png, then the
    Markdown (which links them) and the HTML index (which embeds them). `columns` chooses the
    columns of the Markdown and HTML tables (--columns); the CSV and JSON keep every one.
    The --metrics that `formats` carries choose the rows of the CSV, gab and liger files."""
    from normbench.report import html, markdown
    from normbench.results import write_run_files

    if not formats and not plots:
        return {}
    stem = stem or f"{run.suite}-{time.strftime('%Y%m%d-%H%M%S')}"
    images: dict[str, bytes] = {}
    if plots:
        from normbench.canvas import png_bytes
        from normbench.report.plots import figures

        images = {f"{name}.png": png_bytes(fig) for name, fig in figures(run)}

    def md(name: str) -> str:
        links = {k[:-4]: f"{name}.{k}" for k in images} or None
        return markdown.render(run, links=links, columns=columns)

    metrics = metrics_of(formats)
    contents: dict = dict(images)  # the plots first: a report never links a missing file
    contents.update({extension(f): export(run, f, metrics) for f in formats if f in EXPORTS})
    if "md" in formats:
        contents["md"] = md
    if "html" in formats:
        contents["html"] = html.render(run, {k[:-4]: v for k, v in images.items()}, columns)
    written = write_run_files(Path(out_dir), stem, contents)
    return {f: written[extension(f)] for f in formats} | {k: written[k] for k in images}
