"""What every suite shares: the case loop with progress, error rows and Ctrl-C, and the
selection-to-cases plumbing."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from normbench.plugins import label_plugin_rows
from normbench.results import Row

if TYPE_CHECKING:
    from normbench.cases import Case
    from normbench.gate import Prepared

Progress = Callable[[int, int, str], None]


def case_row(case: Case, suite: str, metric: str, value: float | None, unit: str, **kw) -> Row:
    suffix = case.options.suffix()
    if suffix:  # the layer options, for the tables (the case id carries them too)
        kw["extra"] = {**kw.get("extra", {}), "options": suffix}
    return Row(
        case_id=case.id,
        suite=suite,
        variant=case.variant,
        backend=case.backend,
        dtype=case.dtype,
        shape=str(case.shape),
        mode=case.mode,
        metric=metric,
        value=value,
        unit=unit,
        **kw,
    )


def describe_error(exc: BaseException) -> str:
    """One line a person can act on, for an exception raised inside a case."""
    name = type(exc).__name__
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if "out of memory" in msg.lower() or name == "OutOfMemoryError":
        return f"out of memory: {msg[:160]}"
    return f"{name}: {msg[:200]}" if msg else name


def too_big(case: Case) -> str | None:
    """Why `case` cannot fit in its device's memory now, or None: `config.check_fits`'s
    estimate, per case (that check refuses a run only when no selected case fits)."""
    from normbench.config import case_bytes
    from normbench.env import available_memory
    from normbench.report.tables import fmt_bytes

    need = case_bytes(case.shape, case.dtype)
    avail = available_memory(case.device)
    if need <= 0.9 * avail:
        return None
    return (
        f"too big for {case.device}: shape {case.shape} needs about {fmt_bytes(need)}, "
        f"{fmt_bytes(avail)} available"
    )


@dataclass
class CaseLoop:
    """Runs `work(case)` for each case; an exception becomes an error row, Ctrl-C stops the loop
    and keeps what finished."""

    suite: str
    progress: Progress | None = None
    debug: bool = False
    rows: list[Row] = field(default_factory=list)
    interrupted: bool = False
    # The metric and unit of the loop's own rows (error, too big for the device).
    metric: str = "time"
    unit: str = "ms"

    def run(self, cases: list[Case], work: Callable[[Case], list[Row]]) -> list[Row]:
        total = len(cases)
        for i, case in enumerate(cases):
            if self.progress:
                self.progress(i, total, case.id)
            try:
                reason = too_big(case)  # a sweep skips the shapes that cannot fit, runs the rest
                if reason:
                    rows = [case_row(case, self.suite, self.metric, None, self.unit,
                                     status="skipped", note=reason)]  # fmt: skip
                else:
                    rows = work(case)
            except KeyboardInterrupt:
                self.interrupted = True
                break
            except Exception as exc:  # one failing case must not lose the run
                if self.debug:
                    traceback.print_exc()
                rows = [case_row(case, self.suite, self.metric, None, self.unit, status="error",
                                 note=describe_error(exc))]  # fmt: skip
            # A plugin's failure names the plugin and where it came from.
            self.rows.extend(label_plugin_rows(rows))
        if self.progress:
            self.progress(total if not self.interrupted else i, total, "done")
        return self.rows


class PreparedCache:
    """Keeps the tensors and oracle of the current variant/dtype/shape while its backends run;
    cases are ordered so those sit together, and only one set is held at a time."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._key: tuple | None = None
        self._value: Prepared | None = None

    def get(self, case: Case) -> Prepared:
        from normbench.gate import prepare
        from normbench.variants import get_variant

        key = (
            case.variant,
            case.dtype,
            case.shape,
            case.device,
            case.dist,
            case.mode,
            case.options,
        )
        if key != self._key:
            self._value = None  # free the previous tensors before making new ones
            self._value = prepare(get_variant(case.variant), case, self.seed)
            self._key = key
        assert self._value is not None
        return self._value
