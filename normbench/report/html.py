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

from normbench.report.markdown import ENV_KEYS
from normbench.report.tables import tables

if TYPE_CHECKING:
    import jinja2

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


@dataclass(frozen=True)
class Line:
    cells: tuple[Cell, ...]
    status: str | None  # the row's status (a CSS class: skipped, mismatch, error), if it has one


@dataclass(frozen=True)
class HtmlTable:
    title: str
    columns: tuple[str, ...]
    rows: tuple[Line, ...]


def _numeric(text: str) -> bool:
    t = text.replace(",", "").replace("x", "").replace("%", "").split(" ")[0]
    try:
        float(t)
    except ValueError:
        return False
    return True


def html_table(title: str, cols: Sequence[str], rows: Sequence[Sequence[str]]) -> HtmlTable:
    status_at = list(cols).index("status") if "status" in cols else None
    return HtmlTable(
        title,
        tuple(cols),
        tuple(
            Line(
                tuple(Cell(v, _numeric(v)) for v in r),
                r[status_at] if status_at is not None else None,
            )
            for r in rows
        ),
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


def render(run: Run, images: dict[str, bytes] | None = None) -> str:
    """The page; `images` maps a figure name to its PNG bytes (embedded as data URIs)."""
    from normbench.report.merge import environment_table
    from normbench.results import tidy_rows

    images = images or {}
    views = [html_table(*t) for t in tables(run)]
    sections = [("summary", "Summary")] if run.summary else []
    sections += [("environment", "Environment")]
    sections += [("plots", "Plots")] if images else []
    sections += [(f"table-{i}", t.title) for i, t in enumerate(views)]
    return _template().render(
        title=f"normbench {run.suite}",
        created=run.created,
        wall_s=run.wall_s,
        n_rows=len(tidy_rows(run, samples=False)),
        sections=sections,
        interrupted=run.interrupted,
        summary=run.summary,
        reading=READING.get(run.suite, ""),
        environment=html_table("Environment", *environment_table(run, ENV_KEYS)),
        images=[(name, base64.b64encode(png).decode("ascii")) for name, png in images.items()],
        views=views,
    )
