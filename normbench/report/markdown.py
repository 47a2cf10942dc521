"""GitHub-renderable Markdown: environment header, the suite's tables, the summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from normbench.report.tables import tables

if TYPE_CHECKING:
    from normbench.results import Run

ENV_KEYS = (
    "device_name", "torch", "triton", "python", "threads", "copy_bandwidth_gbps", "driver",
    "sm_clock_mhz", "normbench",
)  # fmt: skip


def _cell(text: object) -> str:
    # A '|' would end the cell and a newline the row: escape one, flatten the other.
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(cols: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub table of string cells, printed as they are (tabulate's number parsing off, so
    '3000.0' stays '3000.0')."""
    import pandas as pd

    frame = pd.DataFrame([[_cell(c) for c in r] for r in rows], columns=[_cell(c) for c in cols])
    return frame.to_markdown(index=False, tablefmt="github", disable_numparse=True)


def render(run: Run, links: dict[str, str] | None = None) -> str:
    out = [f"# normbench {run.suite}", "", f"Run {run.created}, {run.wall_s:.0f} s."]
    if run.interrupted:
        out.append("**Interrupted**: the tables hold the cases that finished.")
    from normbench.report.merge import environment_table

    out += ["", md_table(*environment_table(run, ENV_KEYS))]  # a column per device when merged
    for title, cols, rows in tables(run):
        out += ["", f"## {title}", "", md_table(cols, rows)]
    if run.summary:
        out += ["", "## Summary", ""] + [f"- {line}" for line in run.summary]
    if links:
        out += ["", "## Plots", ""] + [f"![{name}]({path})" for name, path in links.items()]
    return "\n".join(out) + "\n"
