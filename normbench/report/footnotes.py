"""The tables as every renderer shows them (console, Markdown, HTML): the chosen columns
(`--columns`, normbench.report.columns), and each long note as a numbered footnote under its
table, so a row stays one line high and a note that many rows share is printed once.

A note column (NOTE_COLUMNS: `note`, `reason`) holds a reference such as `[1]`; identical notes
in one table share a number, numbered in the order they first appear. The CSV and JSON keep
the full note on every row (normbench.results.files)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from normbench.report.columns import EMPTY, numeric_column, select

if TYPE_CHECKING:
    from normbench.report.tables import Table
    from normbench.results import Run

NOTE_COLUMNS = frozenset({"note", "reason"})


@dataclass(frozen=True)
class Shown:
    """One table as shown: string cells, its footnotes (footnote k is notes[k - 1])."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()
    numeric: tuple[bool, ...] = ()  # per column: every cell a number (aligned right)
    note_at: tuple[int, ...] = ()  # the columns whose cells are references to `notes`
    status: tuple[str | None, ...] = ()  # per row: its status cell (ok, skipped, ...), if any


def ref(k: int) -> str:
    return f"[{k}]"


def footnoted(table: Table, status_of: Sequence[str | None] | None = None) -> Shown:
    """`table` with its note columns as references and the notes as its footnotes."""
    title, cols, rows = table
    note_at = tuple(i for i, c in enumerate(cols) if c in NOTE_COLUMNS)
    numbers: dict[str, int] = {}
    out = []
    for r in rows:
        cells = list(r)
        for i in note_at:
            text = " ".join(cells[i].split())  # one line: a renderer wraps it
            if text not in EMPTY:
                cells[i] = ref(numbers.setdefault(text, len(numbers) + 1))
        out.append(tuple(cells))
    if status_of is None:
        at = cols.index("status") if "status" in cols else None
        status_of = [r[at] if at is not None else None for r in rows]
    numeric = tuple(
        i not in note_at and numeric_column(r[i] for r in rows) for i in range(len(cols))
    )
    return Shown(title, tuple(cols), tuple(out), tuple(numbers), numeric, note_at,
                 tuple(status_of))  # fmt: skip


def shown(run: Run, columns: Sequence[str] = ()) -> list[Shown]:
    """The run's tables (its suite's view), with the chosen columns and notes as footnotes."""
    from normbench.report.tables import tables

    out = []
    for table in tables(run):
        cols, rows = table[1], table[2]
        at = cols.index("status") if "status" in cols else None
        status = [r[at] if at is not None else None for r in rows]  # kept if the column is not
        chosen = select(table, columns)
        if chosen is not None:
            out.append(footnoted(chosen, status))
    return out


def plain(table: tuple[Sequence[str], Sequence[Sequence[str]]], title: str = "") -> Shown:
    """A table that has no notes (the environment): only its alignment."""
    return footnoted((title, list(table[0]), [list(r) for r in table[1]]))


def absent(run: Run, columns: Sequence[str]) -> list[str]:
    """The chosen names that no table of the run has (case-insensitively)."""
    from normbench.report.tables import tables

    have = {c.lower() for _, cols, _ in tables(run) for c in cols}
    return [n for n in columns if n.lower() not in have]
