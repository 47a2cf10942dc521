"""A self-contained HTML index of a run, to open in a browser and read top to bottom: what was
run, the answers (summary), the environment, the plots (embedded, so the file can be mailed or
attached to a CI job on its own), then every table.

The page is the jinja2 template templates/run.html.j2 (autoescaped: every text from the run is
escaped there); this module only gathers what it shows."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from normbench.report.footnotes import plain, shown
from normbench.report.markdown import ENV_KEYS

if TYPE_CHECKING:
    import jinja2

    from normbench.report.footnotes import Shown
    from normbench.results import Run

# One paragraph per suite on how to read the page (docs/numerics.md sections 3, 2 and 7).
READING = {
    "speed": "GB/s is the variant's ideal byte count (the fewest bytes any implementation must "
    "move) divided by the median time, so backends compare on one scale; the dashed line is this "
    "device's measured copy bandwidth, the practical ceiling. Error bars span p20-p80. Every "
    "case was checked against an fp64 reference before it was timed.",
    "stability": "Each implementation is compared with the fp64 reference of the semantics it "
    "declares. PASS: every element within 2x the error of PyTorch's own low-precision result plus "
    "atol; WARN: up to 4x that bound, or two runs differ bitwise; FAIL: anything worse, with the "
    "reason in words. The sweep scales inputs by 2^k to find where each stays PASS.",
    "compare": "Per case, the ratio of median times new/base with a block-bootstrap 95% CI. A "
    "regression needs the whole CI above 1 + margin and significance after Holm's correction "
    "over all cases; inconclusive means the data cannot tell.",
}


@dataclass(frozen=True)
class Cell:
    text: str
    numeric: bool  # right-aligned
    ref: int | None = None  # a footnote's number: the cell links to it


@dataclass(frozen=True)
class Line:
    cells: tuple[Cell, ...]
    status: str | None  # the row's status (a CSS class: skipped, mismatch, error), if it has one


@dataclass(frozen=True)
class HtmlTable:
    title: str
    columns: tuple[Cell, ...]  # the headers, aligned as their columns
    rows: tuple[Line, ...]
    anchor: str = ""  # the id of the table's heading; its footnotes are <anchor>-note-<k>
    notes: tuple[str, ...] = ()


def html_table(t: Shown, anchor: str = "") -> HtmlTable:
    """A table as shown (normbench.report.footnotes): text left, numbers right (decided per
    column from its cells), note references linked to the footnotes under it."""
    numeric = t.numeric or (False,) * len(t.columns)

    def cell(i: int, text: str) -> Cell:
        ref = text[1:-1] if i in t.note_at and text.startswith("[") else ""
        return Cell(text, numeric[i], int(ref) if ref.isdigit() else None)

    status = t.status or (None,) * len(t.rows)
    return HtmlTable(
        t.title,
        tuple(Cell(c, numeric[i]) for i, c in enumerate(t.columns)),
        tuple(Line(tuple(cell(i, v) for i, v in enumerate(r)), s) for r, s in zip(t.rows, status)),
        anchor,
        t.notes,
    )


@cache
def _template() -> jinja2.Template:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("normbench.report", "templates"),
        autoescape=True,  # the file is .html.j2: select_autoescape would not see it as HTML
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("run.html.j2")


def render(run: Run, images: dict[str, bytes] | None = None, columns: Sequence[str] = ()) -> str:
    """The page; `images` maps a figure name to its PNG bytes (embedded as data URIs) and
    `columns` chooses the tables' columns (--columns, normbench.report.columns)."""
    from normbench.report.merge import environment_table
    from normbench.results import tidy_rows

    images = images or {}
    views = [html_table(t, f"table-{i}") for i, t in enumerate(shown(run, columns))]
    sections = [("summary", "Summary")] if run.summary else []
    sections += [("environment", "Environment")]
    sections += [("plots", "Plots")] if images else []
    sections += [(t.anchor, t.title) for t in views]
    return _template().render(
        title=f"normbench {run.suite}",
        created=run.created,
        wall_s=run.wall_s,
        n_rows=len(tidy_rows(run, samples=False)),
        sections=sections,
        interrupted=run.interrupted,
        summary=run.summary,
        reading=READING.get(run.suite, ""),
        environment=html_table(plain(environment_table(run, ENV_KEYS), "Environment")),
        images=[(name, base64.b64encode(png).decode("ascii")) for name, png in images.items()],
        views=views,
    )
