"""One JSON object per line between a parent process and a Python child (`python -m MODULE`).

The parent (`Child`) writes one request per line on the child's stdin and reads one answer per
line from its stdout. The child (`serve`) answers each request with a handler until the end of its
input. The child's stderr goes to a temporary file, read back for the one-line reason when it
dies. `serve` points the child's stdout at its stderr before the first answer, so a stray print,
whether Python's, a C library's or a subprocess's, lands in that file instead of breaking the
protocol.

Used by the `ab` workers (normbench.worker) and the audit's compile workers
(normbench.kernels.aot). Standard library only: a child imports it before anything heavy.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Callable, Mapping
from typing import Any

# How long a child whose stdout has closed may take to exit before it is killed: it is already on
# its way out (its answer channel is gone), so this only bounds a child stuck in its shutdown.
EXIT_WAIT_S = 10.0


# The children not yet closed: a forced exit (normbench.signals.force_exit) kills them, since
# os._exit runs no `close`, and a child stuck in a plugin's call would outlive the command.
_LIVE: weakref.WeakSet[Child] = weakref.WeakSet()


def kill_children() -> None:
    """Kill every child still running and whatever processes they started (torch.compile's
    compile workers, a plugin's own): the parent is about to end without closing them. The
    whole tree is listed before anything is killed, since a killed process's children are
    handed to init and can no longer be found by their parent."""
    pids = []
    for child in list(_LIVE):
        if child.proc.poll() is None:
            pids += [child.proc.pid, *descendants(child.proc.pid)]
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, read from /proc (empty where there is no /proc)."""
    parents: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
            except OSError:  # it ended while we looked
                continue
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses
            ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for kid in parents.get(todo.pop(), ()):
            found.append(kid)
            todo.append(kid)
    return found


class PipeError(RuntimeError):
    """The child died or broke the protocol."""


class ChildExited(PipeError):
    """The child's stdout closed before an answer: it exited or crashed (it has been reaped)."""


class BadAnswer(PipeError):
    """The child wrote a line that is not a JSON object."""

    def __init__(self, line: str) -> None:
        super().__init__(f"not a JSON object: {line[:80]!r}")
        self.line = line


class Child:
    """A running `python -m module`; `request` sends one request and returns its answer.

    Raises OSError when the interpreter cannot be started.
    """

    def __init__(
        self,
        module: str,
        *,
        python: str | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        log_prefix: str = "normbench-child-",
    ) -> None:
        self.module = module
        self._log = tempfile.TemporaryFile(mode="w+", prefix=log_prefix)  # noqa: SIM115 (close())
        try:
            self.proc = subprocess.Popen(
                [python or sys.executable, "-m", module],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log,
                cwd=cwd,
                env=None if env is None else dict(env),
                text=True,
                bufsize=1,
            )
        except OSError:
            self._log.close()
            raise
        _LIVE.add(self)

    def request(self, message: Mapping[str, Any]) -> dict[str, Any]:
        self.send(message)
        return self.receive()

    def send(self, message: Mapping[str, Any]) -> None:
        """Write one request without waiting for its answer (several children can then work at
        once). A dead child is not an error here: `receive` reports it."""
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(dict(message)) + "\n")
            self.proc.stdin.flush()
        except OSError:  # BrokenPipeError included
            pass

    def receive(self) -> dict[str, Any]:
        """The answer to the oldest request not yet answered; ChildExited or BadAnswer."""
        try:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
        except (OSError, ValueError):  # ValueError: the pipe was closed here already
            line = ""
        if not line:
            self._reap(EXIT_WAIT_S)
            raise ChildExited(
                f"{self.module} exited ({self.stderr_tail()}; exit code {self.returncode})"
            )
        try:
            answer = json.loads(line)
        except ValueError:
            raise BadAnswer(line) from None
        if not isinstance(answer, dict):
            raise BadAnswer(line)
        return answer

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def stderr_tail(self, limit: int = 200) -> str:
        """The child's last non-blank stderr line (cut to `limit` characters), or 'no output'."""
        self._log.seek(0)
        lines = [x.strip() for x in self._log.read().splitlines() if x.strip()]
        return lines[-1][:limit] if lines else "no output"

    def close(self, timeout_s: float, farewell: Mapping[str, Any] | None = None) -> None:
        """Send `farewell` (if any), end the child's input (`serve` then returns), wait up to
        `timeout_s` for it to exit, else kill it. Safe to call twice."""
        if self.proc.poll() is None:
            if farewell is not None:
                self.send(farewell)
            self._close_pipe(self.proc.stdin)
            self._reap(timeout_s)
        self._close_pipe(self.proc.stdin)
        self._close_pipe(self.proc.stdout)
        self._log.close()
        _LIVE.discard(self)

    def _reap(self, timeout_s: float) -> None:
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    @staticmethod
    def _close_pipe(pipe: Any) -> None:
        if pipe is not None:
            with contextlib.suppress(OSError):  # a dead child's stdin: nothing left to flush to
                pipe.close()


def serve(handle: Callable[[dict[str, Any]], Mapping[str, Any] | None]) -> None:
    """The child's end: answer each request line on stdin with `handle(request)`, one JSON line on
    the real stdout, until the end of input or until `handle` returns None (a request to stop).
    An exception in `handle` ends the child (its traceback goes to stderr, the parent gets
    ChildExited); a handler that must go on catches its own errors."""
    sys.stdout.flush()
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    # From here on fd 1 is stderr too: a stray print, from Python or from C code (compilers,
    # OpenMP runtimes, subprocesses inheriting fd 1), cannot land in the answer channel.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    for line in sys.stdin:
        if not line.strip():
            continue
        answer = handle(json.loads(line))
        if answer is None:
            break
        out.write(json.dumps(dict(answer)) + "\n")
        out.flush()
