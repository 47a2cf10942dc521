"""Progress while a command measures, on stderr (stdout holds only the results): rich's bar with
an ETA on an interactive terminal, and otherwise (a pipe, a CI log, TERM=dumb) plain lines a
person can grep, without ANSI codes, a few per run:

    normbench speed: 12/48 cases (25%), 0:15 elapsed, ETA 0:45, last: rmsnorm/eager/fp32/...

The library calls `update(done, total, label)` before each case (`done` finished so far,
`label` the case starting) and once more at the end (`label` "done"); a total of 0 means the
total is not known (audit's compile steps)."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Lines per run when the total is known: a 48-case sweep prints 8 lines, not 48, and a 4-case
# one still prints each case.
LINES = 8
# Slow cases still show life: a line at the first update at least this long after the last one.
EVERY_S = 15.0
# What each suite counts, where it is not cases: diagnose reports thousandths of its probes
# (a percentage, no count), audit its compile steps (no total).
UNITS: dict[str, str | None] = {"diagnose": None, "audit": "steps"}


def clock_text(seconds: float) -> str:
    """0:05, 12:34, 1:02:03 (whole seconds, cut down as rich's own columns do)."""
    s = max(0, int(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class PlainProgress:
    """The plain-lines form of the progress bar: a context manager (as rich's bar is) whose
    `update` is the library's callback. A line is printed every `total / LINES` cases, at the
    first update EVERY_S or more after the last line, and for the last case (or, interrupted,
    the state it stopped at, when the bar is closed)."""

    suite: str
    unit: str | None = "cases"
    write: Callable[[str], None] = _stderr
    clock: Callable[[], float] = time.monotonic
    every_s: float = EVERY_S
    start: float = field(init=False)
    done: int = field(init=False, default=0)
    total: int = field(init=False, default=0)
    last: str = field(init=False, default="")  # the label of the last finished case
    current: str = field(init=False, default="")  # the label of the case under way
    printed_done: int = field(init=False, default=0)
    printed_at: float = field(init=False)
    broken: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.start = self.printed_at = self.clock()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.done > self.printed_done:  # interrupted between two lines: where it stopped
            self._print()

    def step(self) -> int:
        """Cases between two lines: a ceiling, so no run prints more than LINES count lines."""
        return max(1, math.ceil(self.total / LINES)) if self.total > 0 else 0

    def update(self, done: int, total: int, label: str) -> None:
        now = self.clock()
        advanced = done > self.done
        if self.unit != "cases":
            self.last = label  # audit's and diagnose's messages say what was just done
        elif advanced:  # a case loop's label names the case starting: the one before finished
            self.last = self.current
        if label != "done":
            self.current = label
        self.done, self.total = done, total
        if not advanced:
            return
        finished = total > 0 and done >= total
        step = self.step()
        milestone = step and done - self.printed_done >= step
        first = not step and not self.printed_done  # no total: show life at once
        if finished or milestone or first or now - self.printed_at >= self.every_s:
            self._print(now)

    def line(self, now: float | None = None) -> str:
        """The progress line for the state now."""
        now = self.clock() if now is None else now
        elapsed = now - self.start
        parts = []
        if self.total > 0:
            pct = f"{100 * self.done // self.total}%"  # cut down: 100% only when all done
            parts.append(f"{self.done}/{self.total} {self.unit} ({pct})" if self.unit else pct)
        else:
            noun = self.unit or "steps"
            parts.append(f"{self.done} {noun[:-1] if self.done == 1 else noun}")  # 1 step
        parts.append(f"{clock_text(elapsed)} elapsed")
        if self.total > 0 and 0 < self.done < self.total:  # an estimate needs a finished case
            parts.append(f"ETA {clock_text(elapsed / self.done * (self.total - self.done))}")
        if self.last:
            parts.append(f"last: {self.last}")
        return f"normbench {self.suite}: " + ", ".join(parts)

    def _print(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        self.printed_done, self.printed_at = self.done, now
        if self.broken:
            return
        try:
            self.write(self.line(now))
        except (OSError, ValueError):  # stderr closed (`2>&1 | head -1`): the run goes on
            self.broken = True


def unit_of(description: str) -> str | None:
    """What the progress of the command described counts (its first word names the suite)."""
    return UNITS.get(description.split(" ", 1)[0], "cases")
