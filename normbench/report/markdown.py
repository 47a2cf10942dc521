"""GitHub-renderable Markdown: environment header, the suite's tables, the summary."""

from __future__ import annotations

from typing import TYPE_CHECKING

from normbench.report.tables import tables

if TYPE_CHECKING:
    from normbench.results import Run

ENV_KEYS = (
    "device_name", "torch", "triton", "python", "threads", "copy_bandwidth_gbps", "driver",
    "sm_clock_mhz", "normbench",
)  # fmt: skip


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(cols: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(_cell(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


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
