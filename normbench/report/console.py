"""Rich tables on the terminal (the only reporter that imports rich).

The console fits the width it is given: a terminal's own, COLUMNS when set, and WIDE for a
file or a CI log without COLUMNS. Each table takes the roomiest of LAYOUTS in which every row
stays one line; else the roomiest in which every word fits its column, the widest columns
narrowed first and cells wrapped at words, a rule around each row that wraps; else the columns
that hold one value in every row are said once above the table ('Every row: dtype = bf16') and
only a word longer than its column is folded. A column is never cropped or dropped. Notes are
numbered footnotes under their table (normbench.report.footnotes)."""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from normbench.report.footnotes import absent, ref, shown

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from normbench.report.footnotes import Shown
    from normbench.results import Run

STATUS_STYLE = {"ok": "green", "unreliable": "yellow", "skipped": "dim", "mismatch": "bold red",
                "error": "red"}  # fmt: skip
WIDE = 160  # a file or CI log without COLUMNS: wide rows read better than wrapped ones
# Narrower than this (COLUMNS=5), a table's columns had no room left and rich printed them
# empty: the console is never narrower; the terminal wraps what does not fit it.
MIN_WIDTH = 40
Layout = tuple[str, int, bool]  # rich box, cell padding left and right, outer edges drawn
# From roomiest to tightest: each inner border costs 3 columns, then 3 with a thin line, then 1.
LAYOUTS: tuple[Layout, ...] = (
    ("HEAVY_HEAD", 1, True),
    ("MINIMAL", 1, False),
    ("MINIMAL", 0, False),
)


def _columns_env() -> int | None:
    text = os.environ.get("COLUMNS", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def make_console(stderr: bool = False) -> Console:
    """A console (on stderr with `stderr`) as wide as its terminal, or COLUMNS when set; WIDE
    for a file or CI log."""
    from rich.console import Console

    console = Console(stderr=stderr)  # rich reads COLUMNS itself, and a terminal's size
    if not console.is_terminal and _columns_env() is None:
        console = Console(stderr=stderr, width=WIDE)
    elif console.width < MIN_WIDTH:
        console = Console(stderr=stderr, width=MIN_WIDTH)
    return console


def _cells(t: Shown, i: int) -> list[str]:
    return [t.columns[i], *(r[i] for r in t.rows)]


def natural(t: Shown) -> list[int]:
    """Each column's width with every cell on one line."""
    from rich.cells import cell_len

    return [max(map(cell_len, _cells(t, i))) for i in range(len(t.columns))]


def least(t: Shown) -> list[int]:
    """Each column's width with its cells wrapped at words: its longest word."""
    from rich.cells import cell_len

    return [max(cell_len(w) for c in _cells(t, i) for w in [*c.split(), ""])
            for i in range(len(t.columns))]  # fmt: skip


def border(layout: Layout, n: int) -> int:
    """The columns a layout's borders and padding take for n columns."""
    _, pad, edge = layout
    return (n - 1) + 2 * pad * n + (2 if edge else 0)


def narrowed(high: list[int], low: list[int], room: int) -> list[int]:
    """Widths between low and high that fit `room`: the widest cut first (each to a common
    level, none below its low), then what is left over given back to the cut ones."""
    level = max(high, default=0)
    while level > 0 and sum(max(lo, min(hi, level)) for hi, lo in zip(high, low)) > room:
        level -= 1
    widths = [max(lo, min(hi, level)) for hi, lo in zip(high, low)]
    spare = room - sum(widths)
    for i in sorted(range(len(widths)), key=lambda i: widths[i] - high[i]):
        give = min(spare, high[i] - widths[i])
        widths[i] += give
        spare -= give
    return widths


def rich_table(t: Shown, layout: Layout, widths: Sequence[int] | None = None) -> Table:
    """`t` in `layout`; with `widths` (the cells' widths), a rule around each row that wraps."""
    from rich import box
    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    name, pad, edge = layout
    table = Table(box=getattr(box, name), padding=(0, pad), show_edge=edge, header_style="bold")
    for i, c in enumerate(t.columns):
        right = bool(t.numeric) and t.numeric[i]
        table.add_column(Text(c), overflow="fold", justify="right" if right else "left",
                         width=widths[i] if widths else None)  # fmt: skip
    wraps = [any(cell_len(c) > w for c, w in zip(r, widths)) for r in t.rows] if widths else []
    status = t.status or (None,) * len(t.rows)
    for i, (r, s) in enumerate(zip(t.rows, status)):
        # A rule under a row that wraps and under the row above one, never under the last.
        rule = bool(wraps) and i + 1 < len(t.rows) and (wraps[i] or wraps[i + 1])
        # Text, not markup: a cell such as 'E[x^2]' is printed as it is.
        table.add_row(*(Text(c) for c in r), style=STATUS_STYLE.get(s or "", ""),
                      end_section=rule)  # fmt: skip
    return table


def fit(t: Shown, width: int) -> Table | None:
    """The roomiest layout whose rows stay one line, else the roomiest whose words fit; None
    when no layout fits the words."""
    high, low, n = natural(t), least(t), len(t.columns)
    for layout in LAYOUTS:
        if sum(high) + border(layout, n) <= width:
            return rich_table(t, layout)
    for layout in LAYOUTS:
        if sum(low) + border(layout, n) <= width:
            return rich_table(t, layout, narrowed(high, low, width - border(layout, n)))
    return None


# Words up to this long are never folded while the long ones can give room: a verdict
# ("inconclusive"), a status or a number split mid-word ("regressio|n") is lost to a reader and
# to a grep of a CI log; a case id or a path is not.
KEEP_WORD = 12


def folded(t: Shown, width: int) -> Table:
    """The tightest layout, the longest words folded first: the columns of short words keep
    theirs whole where the others can make the room, else every column keeps one character."""
    n = len(t.columns)
    room = max(width - border(LAYOUTS[-1], n), n)
    words = least(t)
    keep = [w if w <= KEEP_WORD else 1 for w in words]
    low = keep if sum(keep) <= room else [1] * n
    return rich_table(t, LAYOUTS[-1], narrowed(words, low, room))


def constant_columns(t: Shown) -> list[int]:
    """The columns that hold one value in every row (of two or more), notes aside."""
    if len(t.rows) < 2:
        return []
    return [i for i in range(len(t.columns)) if i not in t.note_at
            and len({r[i] for r in t.rows}) == 1 and t.rows[0][i].strip()]  # fmt: skip


def without(t: Shown, drop: Collection[int]) -> Shown:
    keep = [i for i in range(len(t.columns)) if i not in drop]
    at = {old: new for new, old in enumerate(keep)}
    return replace(
        t,
        columns=tuple(t.columns[i] for i in keep),
        rows=tuple(tuple(r[i] for i in keep) for r in t.rows),
        numeric=tuple(t.numeric[i] for i in keep) if t.numeric else (),
        note_at=tuple(at[i] for i in t.note_at if i in at),
    )


def fitted(t: Shown, width: int) -> tuple[Table, str]:
    """The table drawn to fit `width`, and a line to print above it: when not even the tightest
    layout fits its words, the columns with one value in every row, said once."""
    table = fit(t, width)
    if table is not None:
        return table, ""
    same = constant_columns(t)
    if not same or len(same) == len(t.columns):
        return folded(t, width), ""
    rest = without(t, same)
    line = "Every row: " + "; ".join(f"{t.columns[i]} = {t.rows[0][i]}" for i in same)
    return fit(rest, width) or folded(rest, width), line


def footnote_grid(notes: Sequence[str]) -> Any:
    """'[1] text', the text wrapped under itself."""
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, justify="right")
    grid.add_column(overflow="fold")
    for k, note in enumerate(notes, 1):
        grid.add_row(ref(k), Text(note))
    return grid


def render(run: Run, console: Console | None = None, columns: Sequence[str] = ()) -> None:
    from rich.text import Text

    from normbench.report.tables import tables

    console = console or make_console()
    built = tables(run)
    missing = absent(run, columns, built)
    if missing:  # a header this run's tables lack (% SOL of a version-1 run, saved without
        # speed --memory): said, since a table holding only those is left out
        console.print(Text(f"--columns: no table of this run has {', '.join(missing)}."))
    for t in shown(run, columns, built):
        # The title on a line of its own: as a rich title it would wrap to the table's width.
        console.print(Text(t.title, style="table.title"))
        table, same = fitted(t, console.width)
        if same:
            console.print(Text(same))
        console.print(table)
        if t.notes:
            console.print(footnote_grid(t.notes))
    for line in run.summary:
        console.print(Text(line, style="bold"))
    if run.interrupted:
        console.print("[yellow]Interrupted: the reports hold the cases that finished.[/yellow]")
