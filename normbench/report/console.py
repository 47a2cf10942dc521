"""Rich tables on the terminal (the only reporter that imports rich)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from normbench.report.tables import tables

if TYPE_CHECKING:
    from rich.console import Console

    from normbench.results import Run

STATUS_STYLE = {"ok": "green", "skipped": "dim", "mismatch": "bold red", "error": "red"}


def make_console() -> Console:
    """A console that does not squeeze wide tables into 80 columns when output is a file or CI
    log (a real terminal keeps its own width)."""
    import shutil

    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=max(shutil.get_terminal_size().columns, 160))
    return console


def render(run: Run, console: Console | None = None) -> None:
    from rich.table import Table

    console = console or make_console()
    for title, cols, rows in tables(run):
        table = Table(title=title, show_lines=False, header_style="bold")
        for i, c in enumerate(cols):
            # Short columns (names, verdicts, numbers) keep their width; long prose wraps.
            widest = max([len(c), *(len(r[i]) for r in rows)])
            short = widest <= 24
            table.add_column(c, overflow="fold", no_wrap=short, min_width=min(widest, 24))
        status_at = cols.index("status") if "status" in cols else None
        for r in rows:
            style = STATUS_STYLE.get(r[status_at], "") if status_at is not None else ""
            table.add_row(*r, style=style)
        console.print(table)
    for line in run.summary:
        console.print(f"[bold]{line}[/bold]")
    if run.interrupted:
        console.print("[yellow]Interrupted: the reports hold the cases that finished.[/yellow]")
