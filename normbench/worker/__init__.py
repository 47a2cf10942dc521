"""One side of `normbench ab` in its own process, so that A and B can come from two installs.

`normbench ab --a eager@../base --b eager` times the backend of another checkout (a git worktree
of the base commit) against this one, interleaved block by block like an in-process A/B: each
side runs in a worker (`python -m normbench.worker`) that gates its cases against fp64, warms
them up and takes one block of samples when asked. Only one worker runs at a time (the other
waits on its pipe), so they do not compete for the cores, and the machine's drift lands on both.

Where a side comes from (`SPEC@PATH`):

- PATH a virtual environment (it has bin/python) or a Python executable: that interpreter;
- PATH any other directory (a checkout, e.g. `git worktree add ../base main`): this interpreter,
  started in PATH with PATH first on sys.path, so PATH's `normbench` (or plugin package) is the
  one imported. SPEC's file paths (`plugin:examples/x.py`) are relative to PATH.

`@PATH` alone (no SPEC) times every selected backend (`--backend`) from PATH: the whole suite,
two installs, interleaved case by case.

The protocol is one JSON object per line (normbench.pipe): the parent writes a request on the
worker's stdin and reads one answer from its stdout (stray prints in the worker go to stderr).
Requests: `hello` (loads the plugins, resolves SPEC to a backend; answers versions and where
normbench came from), `setup` (one case: gate, warm up; answers the status, per-call time and
inner loop count), `block` (k samples of the case set up last, seconds per call), `exit`. A
failed request is answered `{"fatal": sentence}`. The wire format is kept as it is so that this
parent can drive an older checkout's worker and the other way round.

This package is the parent's end; the worker's end is `normbench/worker/__main__.py`, the program
`python -m normbench.worker` runs. Only that program imports the ab suite (for its gate and
warm-up), so the suite can import this module without an import cycle.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normbench.errors import UsageError
from normbench.pipe import BadAnswer, Child, ChildExited

PROTOCOL = 1
MODULE = "normbench.worker"  # what the child runs: `python -m normbench.worker`
CLOSE_WAIT_S = 10.0  # after `exit`, then the worker is killed


# --- where a side comes from ---------------------------------------------------------------------


@dataclass(frozen=True)
class Install:
    """How to start a worker: the interpreter, and the directory it starts in (None: ours)."""

    python: str
    cwd: str | None = None

    @property
    def label(self) -> str:
        return self.cwd or self.python


def locate(path: str, option: str) -> Install:
    """`@PATH` -> an Install; one sentence when PATH is neither a directory nor an interpreter."""
    p = Path(path).expanduser()
    if p.is_dir():
        for py in (p / "bin" / "python", p / "Scripts" / "python.exe"):
            if py.is_file():
                return Install(str(py))
        return Install(sys.executable, str(p.resolve()))
    if p.is_file() and os.access(p, os.X_OK):
        return Install(str(p))
    raise UsageError(
        f"{option} ...@{path}: not a directory (a checkout or a virtual environment) "
        "nor a Python executable"
    )


def split_spec(spec: str) -> tuple[str, str | None]:
    """'eager@../base' -> ('eager', '../base'); without '@', (spec, None)."""
    name, sep, where = spec.rpartition("@")
    if not sep:
        return spec, None
    return name, where


# --- the parent's end -------------------------------------------------------------------------

# An OpenMP runtime keeps its threads spinning after a parallel region before they sleep:
# libgomp (torch's on Linux) for GOMP_SPINCOUNT = 300000 spins by default, about 20 ms on this
# VM; Intel's for KMP_BLOCKTIME = 200 ms. Two workers take turns, so the worker that just
# answered still burns a core through most of the other's block, and the two sides share the
# 2 cores in a split that the scheduler picks and keeps: A/A of eager RMSNorm 4 x 512 x 1024
# (2 threads, eight pairs of workers) measured 0.67-1.18x with a CI of a few percent each time;
# with the spin cut to about a millisecond (10000 spins), five pairs measured 0.92-1.05x. One
# cause, not all: the 20-comparison A/A at 1 s still saw this case at 0.63-1.52x
# (docs/regression-gate.md). Calls inside a block follow each other within microseconds, so
# their threads stay awake as before. A value the user set is kept.
SPIN_LIMITS = {"GOMP_SPINCOUNT": "10000", "KMP_BLOCKTIME": "1"}


def quiet_threads(environ: dict[str, str] | os._Environ) -> dict[str, str]:
    """The OpenMP spin limits a worker starts with, except those the user set (or a wait
    policy, which decides the spinning itself)."""
    if "OMP_WAIT_POLICY" in environ:
        return {}
    return {k: v for k, v in SPIN_LIMITS.items() if k not in environ}


class WorkerError(RuntimeError):
    """The worker process died or answered nonsense; the message ends with its last stderr line."""


class Worker:
    """A running worker. `request` sends one request and returns the answer."""

    def __init__(self, install: Install, label: str) -> None:
        self.label = label
        env = {**os.environ, **quiet_threads(os.environ)}
        if install.cwd:
            env["PYTHONPATH"] = os.pathsep.join(
                x for x in (install.cwd, env.get("PYTHONPATH", "")) if x
            )
        try:
            self._child = Child(
                MODULE, python=install.python, cwd=install.cwd, env=env,
                log_prefix="normbench-worker-",
            )  # fmt: skip
        except OSError as exc:
            raise UsageError(f"{label}: cannot start {install.python}: {exc.strerror}") from None

    @property
    def proc(self) -> subprocess.Popen[str]:
        """The worker's process (its return code once closed)."""
        return self._child.proc

    def request(self, op: str, **kw: Any) -> dict[str, Any]:
        self.send(op, **kw)
        return self.receive()

    def send(self, op: str, **kw: Any) -> None:
        """Send a request without waiting (several workers can then work at once)."""
        self._child.send({"op": op, **kw})

    def receive(self) -> dict[str, Any]:
        """The answer to the request sent last."""
        try:
            answer = self._child.receive()
        except ChildExited:
            raise WorkerError(f"{self.label}: the worker exited ({self.last_error()})") from None
        except BadAnswer as exc:
            raise WorkerError(f"{self.label}: the worker answered {exc.line[:80]!r}") from None
        if "fatal" in answer:
            raise WorkerError(f"{self.label}: {answer['fatal']}")
        return answer

    def last_error(self) -> str:
        return f"{self._child.stderr_tail(200)}; exit code {self._child.returncode}"

    def close(self, wait_s: float = CLOSE_WAIT_S) -> None:
        """Ask the worker to exit and wait up to `wait_s` for it, then kill it."""
        self._child.close(wait_s, farewell={"op": "exit"})
