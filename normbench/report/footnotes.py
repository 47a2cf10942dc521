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

from normbench.report.columns import EMPTY, missing_names, numeric_column, select

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


def row_status(cols: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str | None]:
    """Each row's status cell, or None per row when the table has no status column."""
    at = cols.index("status") if "status" in cols else None
    return [r[at] if at is not None else None for r in rows]


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
        status_of = row_status(cols, rows)
    numeric = tuple(
        i not in note_at and numeric_column(r[i] for r in rows) for i in range(len(cols))
    )
    return Shown(title, tuple(cols), tuple(out), tuple(numbers), numeric, note_at,
                 tuple(status_of))  # fmt: skip


def shown(
    run: Run, columns: Sequence[str] = (), built: Sequence[Table] | None = None
) -> list[Shown]:
    """The run's tables (its suite's view, or `built` when already made), with the chosen
    columns and notes as footnotes."""
    from normbench.report.tables import tables

    out = []
    for table in tables(run) if built is None else built:
        status = row_status(table[1], table[2])  # kept if the column is not chosen
        chosen = select(table, columns)
        if chosen is not None:
            out.append(footnoted(chosen, status))
    return out


def plain(table: tuple[Sequence[str], Sequence[Sequence[str]]], title: str = "") -> Shown:
    """A table that has no notes (the environment): only its alignment."""
    return footnoted((title, list(table[0]), [list(r) for r in table[1]]))


def absent(run: Run, columns: Sequence[str], built: Sequence[Table] | None = None) -> list[str]:
    """The chosen names that no table of the run (or of `built`) has (case-insensitively)."""
    if not columns:
        return []
    from normbench.report.tables import tables

    made = tables(run) if built is None else built
    return missing_names(columns, (c for _, cols, _ in made for c in cols))
