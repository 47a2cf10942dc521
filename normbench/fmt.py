"""Formatting numbers for tables and messages. Stands alone: any layer may import it."""

from __future__ import annotations


def fmt_time_ms(ms: float | None) -> str:
    """A time in milliseconds, in the unit that reads best: '322.1 us', '1.95 ms', '2.10 s'."""
    if ms is None:
        return "-"
    if ms < 1e-3:
        return f"{ms * 1e6:.0f} ns"
    if ms < 1:
        return f"{ms * 1e3:.1f} us"
    if ms < 1000:
        return f"{ms:.2f} ms" if ms < 100 else f"{ms:.1f} ms"
    return f"{ms / 1e3:.2f} s"


def fmt(value: float | None, digits: int = 3) -> str:
    """Three significant digits; thousands grouped from 1000 on."""
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def fmt_bytes(n: float | None) -> str:
    """Three significant digits in binary units, so a table fits a terminal: '48 MiB',
    '1.03 KiB' (the CSV and JSON keep every byte)."""
    if n is None:
        return "-"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}" if abs(n) < 1000 * size else f"{n / size:.0f} {unit}"
    return f"{n:.0f} B"


def a_type(obj: object) -> str:
    """'a NoneType', 'an ellipsis': the type of `obj` named with its article, for messages."""
    name = type(obj).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"
