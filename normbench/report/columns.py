"""Which table columns are shown (`--columns`) and which hold numbers (aligned right).

`--columns` names headers, case-insensitively. The columns that name a case (IDENTIFYING:
variant, dtype, shape, backend, ...) are kept in every table so a row still says what it is; a
table that holds none of the chosen columns is left out. A name no table of the suite has is
one sentence listing the ones it has, exit 2, checked before anything is measured where the
suite's headers are known in advance (a view module's HEADERS, or its `headers(config)` where
some depend on the selection, as the stability matrix's one column per backend).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from normbench.errors import UsageError
from normbench.report.tables import VIEWS

if TYPE_CHECKING:
    from normbench.report.tables import Table

# Exact (case-sensitive) headers: speed's `n` is a sample count, stability's `N` the dim.
IDENTIFYING = frozenset({
    "device", "variant", "dtype", "shape", "mode", "backend", "case", "implementation", "N",
    "input", "kernel", "arch", "probe",
})  # fmt: skip
# A cell that holds numbers: '11.59 ms', '8.46 ms - 13.01 ms', '16.8%', '~1.02x', '189.6!',
# '48 MiB (3.00x)', '+3.5%', '1.000-1.050', '2^-24 (sweep edge)'; never '4x512x4096' or 'fp32'.
_NUM = r"[~+-]?(?:\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?|inf|nan|2\^-?\d+)"
_UNIT = r"(?:\s?(?:ns|us|ms|s|%|x|!|B|KiB|MiB|GiB|GB/s))?!?"
_VALUE = f"{_NUM}{_UNIT}"
NUMERIC = re.compile(rf"{_VALUE}(?:\s?-\s?{_VALUE})?(?:\s\([^()]*\))?", re.IGNORECASE)
EMPTY = ("", "-")


def numeric_column(cells: Iterable[str]) -> bool:
    """True when every cell that holds something ('-' is nothing) reads as a number."""
    held = [c.strip() for c in cells if c.strip() not in EMPTY]
    return bool(held) and all(NUMERIC.fullmatch(c) for c in held)


def parse_columns(given: str | Sequence[str] | None) -> tuple[str, ...]:
    """`--columns a,b` (or repeated) -> the names as given; commas only separate, since
    headers hold spaces ('vs eager'). A value that names nothing is refused."""
    if given is None:
        return ()
    parts = [given] if isinstance(given, str) else list(given)
    if not parts:
        return ()
    names = [s.strip() for p in parts for s in p.split(",") if s.strip()]
    if not names:
        raise UsageError(f"--columns {','.join(parts)!r} names nothing: give header names, "
                         "comma-separated")  # fmt: skip
    return tuple(dict.fromkeys(names))


def known_headers(suite: str, config: Any = None) -> list[str] | None:
    """Every header the suite's tables can have, or None where its view does not say."""
    name = VIEWS.get(suite)
    if name is None:
        return None
    module = importlib.import_module(name)
    headers = getattr(module, "headers", None)
    if headers is not None and config is not None:
        return list(headers(config))
    listed = getattr(module, "HEADERS", None)
    return list(listed) if listed is not None else None


def missing_names(names: Sequence[str], available: Iterable[str]) -> list[str]:
    """The names that are none of `available` (case-insensitively), in their order."""
    lower = {h.lower() for h in available}
    return [n for n in names if n.lower() not in lower]


def check_columns(names: Sequence[str], available: Iterable[str], what: str) -> tuple[str, ...]:
    """The names, each of which must be one of `available` (case-insensitively)."""
    have = list(dict.fromkeys(available))
    unknown = missing_names(names, have)
    if unknown:
        listed = ", ".join(have)
        raise UsageError(
            f"--columns: no column named {', '.join(map(repr, unknown))} in {what}; "
            f"the columns are: {listed}"
        )
    return tuple(names)


def check_for_suites(names: Sequence[str], suites: Sequence[str], config: Any = None) -> None:
    """Refuse an unknown name before measuring, where the suites' headers are known."""
    if not names:
        return
    known: list[str] = []
    for suite in suites:
        headers = known_headers(suite, config)
        if headers is None:
            return  # a view that does not list its headers: checked against the tables shown
        known += headers
    check_columns(names, known, f"the {' and '.join(suites)} tables")


def select(table: Table, names: Sequence[str]) -> Table | None:
    """The table with its identifying columns and the chosen ones, in its own order; None when
    it holds none of the chosen ones. No names: the table as it is."""
    if not names:
        return table
    title, cols, rows = table
    wanted = {n.lower() for n in names}
    if not any(c.lower() in wanted for c in cols):
        return None
    keep = [i for i, c in enumerate(cols) if c in IDENTIFYING or c.lower() in wanted]
    return title, [cols[i] for i in keep], [[r[i] for i in keep] for r in rows]
