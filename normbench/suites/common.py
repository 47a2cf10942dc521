"""What every suite shares: the case loop with progress, error results and Ctrl-C, and the
selection-to-cases plumbing."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from normbench.env import device_scope
from normbench.errors import describe_error
from normbench.fmt import fmt_bytes
from normbench.plugins import label_plugin_result
from normbench.results import CaseResult, Finding, GenericCase, Level, Measurement, Status
from normbench.results.partial import record_finished
from normbench.signals import measuring

if TYPE_CHECKING:
    from normbench.cases import Case
    from normbench.gate import Prepared

Progress = Callable[[int, int, str], None]


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count while the block runs, the caller's again after: a suite
    called as a library (a test, calibrate's repeats) must not leave the process on one thread
    for the work that follows (input generation on CPU for a GPU case is most of it)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def not_run(
    cls: type[CaseResult], case: Case, status: Status, note: str, metric: str, unit: str
) -> CaseResult:
    """A case that did not run (skipped, mismatch, error): its headline metric without a value,
    the status and the reason."""
    return cls.of_case(case, [Measurement(metric, None, unit, status=status, note=note)])


def case_counts(
    results: list[CaseResult], verb: str, exits: str = "the command exits 4"
) -> Finding:
    """'Cases: 16 ok, 4 skipped' (and that mismatches were never `verb`, e.g. timed, and what
    the command then exits with)."""
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    line = "Cases: " + ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
    if n := counts[Status.MISMATCH]:
        line += (
            f" ({'a mismatch' if n == 1 else 'mismatches'}: wrong numbers, never {verb}; {exits})"
        )
        return Finding(line, Level.WARNING)
    return Finding(line)


def too_big(case: Case) -> str | None:
    """Why `case` cannot fit in its device's memory now, or None: `config.check_fits`'s
    estimate, per case (that check refuses a run only when no selected case fits)."""
    from normbench.config import case_bytes
    from normbench.env import available_memory

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
    """Runs `work(case)` for each case; an exception becomes an error result, Ctrl-C stops the
    loop and keeps what finished."""

    suite: str
    progress: Progress | None = None
    debug: bool = False
    results: list[CaseResult] = field(default_factory=list)
    interrupted: bool = False
    # The result type, metric and unit of the loop's own results (error, too big for the device).
    result: type[CaseResult] = GenericCase
    metric: str = "time"
    unit: str = "ms"

    def not_run(self, case: Case, status: Status, note: str) -> CaseResult:
        return not_run(self.result, case, status, note, self.metric, self.unit)

    def run(
        self, cases: list[Case], work: Callable[[Case], CaseResult | list[CaseResult]]
    ) -> list[CaseResult]:
        total = len(cases)
        for i, case in enumerate(cases):
            if self.progress:
                self.progress(i, total, case.id)
            try:
                # A stop signal interrupts the case; one between cases waits for the next
                # (normbench.signals.measuring), so it never lands in the bookkeeping below.
                with measuring(), device_scope(case.device):  # cuda:N current while it runs
                    reason = too_big(case)  # a sweep skips the shapes that cannot fit
                    done = self.not_run(case, Status.SKIPPED, reason) if reason else work(case)
            except KeyboardInterrupt:
                self.interrupted = True
                break
            # Any BaseException too (a plugin's sys.exit(), its own BaseException subclass): only
            # the user's stop ends the run; one failing case must not lose it.
            except BaseException as exc:
                if self.debug:
                    traceback.print_exc()
                done = self.not_run(case, Status.ERROR, describe_error(exc))
            # A plugin's failure names the plugin and where it came from.
            for result in done if isinstance(done, list) else [done]:
                self.results.append(label_plugin_result(result))
                record_finished(self.suite, self.results[-1])  # on disk now: a crash keeps it
        if self.progress:
            self.progress(total if not self.interrupted else i, total, "done")
        return self.results


class PreparedCache:
    """Keeps the tensors and oracle of the current variant/dtype/shape while its backends run;
    cases are ordered so those sit together, and only one set is held at a time. `build` makes
    a case's set (default: the gate's synthetic tensors at `seed`); the replay's builder may
    return a str instead, why the layer cannot run in the case's dtype, and that is kept too."""

    def __init__(
        self, seed: int = 0, build: Callable[[Case], Prepared | str] | None = None
    ) -> None:
        self.seed = seed
        self.build = build or self._synthetic
        # The synthetic set does not depend on the mode (a case's fwd and bwd share it, which
        # halves the inputs made, fp64 on the CPU, a GPU case's longest wait); a builder's may.
        self._by_mode = build is not None
        self._key: tuple | None = None
        self._value: Prepared | str | None = None

    def _synthetic(self, case: Case) -> Prepared:
        from normbench.gate import prepare
        from normbench.variants import get_variant

        return prepare(get_variant(case.variant), case, self.seed)

    def get(self, case: Case) -> Prepared | str:
        key = (
            case.variant,
            case.dtype,
            case.shape,
            case.device,
            case.dist,
            case.mode if self._by_mode else "",
            case.options,
        )
        if key != self._key:
            self._value = None  # free the previous tensors before making new ones
            self._value = self.build(case)
            self._key = key
        assert self._value is not None
        if isinstance(self._value, str) or self._value.case == case:
            return self._value
        return replace(self._value, case=case)  # the same tensors (and oracles), this case
