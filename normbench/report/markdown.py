"""GitHub-renderable Markdown: environment header, the suite's tables, the summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from normbench.report.footnotes import shown

if TYPE_CHECKING:
    from normbench.report.footnotes import Shown
    from normbench.results import Run

ENV_KEYS = (
    "device_name", "torch", "triton", "python", "threads", "copy_bandwidth_gbps", "driver",
    "sm_clock_mhz", "normbench",
)  # fmt: skip


def _cell(text: object) -> str:
    # A '|' would end the cell and a newline the row: escape one, flatten the other.
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(
    cols: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool] | None = None
) -> str:
    """A GitHub table of string cells, printed as they are (tabulate's number parsing off, so
    '3000.0' stays '3000.0'); a numeric column (by default: one whose cells all read as
    numbers, normbench.report.columns) is aligned right, `---:` in the alignment row."""
    import pandas as pd

    from normbench.report.columns import numeric_column

    if numeric is None:
        numeric = [numeric_column(r[i] for r in rows) for i in range(len(cols))]
    frame = pd.DataFrame([[_cell(c) for c in r] for r in rows], columns=[_cell(c) for c in cols])
    # No rows, no alignment: tabulate 0.9 counts columns from the rows and would index past them.
    align = ["right" if n else "left" for n in numeric] if rows else None
    return frame.to_markdown(index=False, tablefmt="pipe", disable_numparse=True,
                             colalign=align)  # fmt: skip


def md_shown(t: Shown) -> str:
    """A table as shown (normbench.report.footnotes) and its footnotes as a numbered list."""
    out = md_table(t.columns, t.rows, t.numeric)
    if t.notes:
        out += "\n\n" + "\n".join(f"{k}. {_cell(note)}" for k, note in enumerate(t.notes, 1))
    return out


def render(run: Run, links: dict[str, str] | None = None, columns: Sequence[str] = ()) -> str:
    """The report; `columns` chooses the tables' columns (--columns, normbench.report.columns)."""
    out = [f"# normbench {run.suite}", "", f"Run {run.created}, {run.wall_s:.0f} s."]
    if run.interrupted:
        out.append("**Interrupted**: the tables hold the cases that finished.")
    from normbench.report.merge import environment_table

    out += ["", md_table(*environment_table(run, ENV_KEYS))]  # a column per device when merged
    for t in shown(run, columns):
        out += ["", f"## {t.title}", "", md_shown(t)]
    if run.summary:
        out += ["", "## Summary", ""] + [f"- {line}" for line in run.summary]
    if links:
        out += ["", "## Plots", ""] + [f"![{name}]({path})" for name, path in links.items()]
    return "\n".join(out) + "\n"
