"""One signal policy for every command: SIGTERM and SIGHUP (what CI cancellation and `timeout`
send) stop a run exactly as Ctrl-C does, and the first of them is the only one that counts.

The first INT, TERM or HUP raises KeyboardInterrupt in the main thread, the path the case loop
(normbench.suites.common.CaseLoop) already takes: stop at the case boundary, keep the finished
cases. Once a command has begun measuring (`measuring`), it raises only inside a case; between
cases, and after the last one while the reports are made, it is held until the next case starts
or the command ends (exit 130). From the first signal until the command returns, further
signals are ignored for FORCE_AFTER_S, so that a reflexive second Ctrl-C cannot abort the
writing of the reports of the finished cases: exit 130, the reports written (docs/design.md
"Exit codes"). One that comes later, while the process is still running (a phase outside any
case that hangs, such as a worker that never answers), ends it at once: exit 130, no report,
the finished cases in the run's partial file.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from types import FrameType

# A further stop signal this long after the first ends the process at once: writing the
# reports takes seconds (`normbench report` of an 88-row speed run with its plots, csv, md,
# json and html, took 3.6 s on 2 shared CPU cores, torch's import included, 2026-12-03), so a
# run that has not ended by then is stuck somewhere, and SIGKILL would be the only way out.
FORCE_AFTER_S = 10.0
FORCED_EXIT = "normbench: stopped at once by a second signal {:.0f} s after the first{}\n"

# Where a platform lacks one (Windows has no SIGHUP), it is left out.
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@dataclass
class StopRequest:
    """The first stop signal received under `stop_on_signals`, or None."""

    signum: int | None = None
    at: float = 0.0  # when it came (time.monotonic)
    active: bool = False  # its handlers are installed
    # Once the command has started measuring (`measuring`), a stop raises only inside a
    # measuring block; elsewhere (between cases, while the results are put together and the
    # reports written) it is held, so that it cannot cut that short.
    holding: bool = False
    open: bool = False  # inside a measuring block

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""


_current = StopRequest()


def stop_requested() -> bool:
    """True once a stop signal arrived under the standing `stop_on_signals`: a loop that runs
    several measuring passes (calibrate's repeats) must not start another one."""
    return _current.requested


@contextmanager
def stop_on_signals(exiting: bool = False) -> Iterator[StopRequest]:
    """Within it, INT, TERM and HUP all raise one KeyboardInterrupt (the first; once measuring
    has begun, only inside a `measuring` block, held elsewhere), the later ones are ignored;
    the previous handlers are restored on the way out. A signal the process inherited as
    ignored (`nohup`, a background job's INT) stays ignored. `exiting`: the process ends right
    after (the command line), so after a stop the signals stay ignored while it exits: a late
    Ctrl-C must not turn exit 130 into a traceback. Outside the main thread (where Python
    cannot install handlers) it changes nothing."""
    global _current
    if threading.current_thread() is not threading.main_thread() or _current.active:
        yield _current  # a policy already stands (nested commands): it keeps its handlers
        return
    state = StopRequest(active=True)

    def handler(signum: int, frame: FrameType | None) -> None:
        if state.requested:
            waited = time.monotonic() - state.at
            if waited < FORCE_AFTER_S:
                return  # already stopping: the reports of the finished cases are being written
            force_exit(waited)
        state.signum = signum
        state.at = time.monotonic()
        if state.open or not state.holding:
            raise KeyboardInterrupt
        # Held: the next measuring block raises it, or the command ends with exit 130.

    outer = _current
    previous = {}
    for s in STOP_SIGNALS:
        if signal.getsignal(s) is not signal.SIG_IGN:
            previous[s] = signal.signal(s, handler)
    _current = state
    try:
        yield state
    finally:
        for s, old in previous.items():
            # None: a handler not set from Python; the default is the closest we can restore.
            restore = old if old is not None else signal.SIG_DFL
            signal.signal(s, signal.SIG_IGN if exiting and state.requested else restore)
        state.active = False
        _current = outer


def force_exit(waited: float) -> None:
    """End the process now, exit 130: no cleanup can run, so none can hang (the partial file,
    written case by case, keeps what finished). Worker processes (ab's, the audit's) are
    killed first: one stuck in a call is often what the stop waited on."""
    with suppress(Exception):
        from normbench.pipe import kill_children

        kill_children()
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):  # a console that is gone: nothing left to say there
            stream.flush()
    kept = ""
    with suppress(Exception):  # the run's partial file, where one is open and still there
        from normbench.results.partial import open_partial

        partial = open_partial()
        if partial is not None and partial.path.is_file():
            kept = f"; the cases that finished are in {partial.path}"
    with suppress(OSError):
        os.write(2, FORCED_EXIT.format(waited, kept).encode())
    os._exit(130)


@contextmanager
def measuring() -> Iterator[None]:
    """Around the measuring of one case (an arch of the audit, a probe of diagnose): the only
    place a stop signal interrupts once a command has begun measuring. A stop that arrived
    before it (held between cases) raises KeyboardInterrupt on entry, so the loop around it
    stops as if the signal had come during the case. Outside `stop_on_signals` (a worker
    process, a library call) it changes nothing."""
    state = _current
    if not state.active:
        yield
        return
    state.holding = True
    state.open = True  # before the check: a signal between the two must not be held
    try:
        if state.requested:
            raise KeyboardInterrupt
        yield
    finally:
        state.open = False
