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

The protocol is one JSON object per line: the parent writes a request on the worker's stdin and
reads one answer from its stdout (stray prints in the worker go to stderr). Requests: `hello`
(loads the plugins, resolves SPEC to a backend; answers versions and where normbench came from),
`setup` (one case: gate, warm up; answers the status, per-call time and inner loop count),
`block` (k samples of the case set up last, seconds per call), `exit`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normbench.errors import NormbenchError, UsageError

PROTOCOL = 1


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
        # The worker's stderr, read back for the one-line reason when it dies.
        self._log = tempfile.TemporaryFile(mode="w+", prefix="normbench-worker-")  # noqa: SIM115
        env = {**os.environ, **quiet_threads(os.environ)}
        if install.cwd:
            env["PYTHONPATH"] = os.pathsep.join(
                x for x in (install.cwd, env.get("PYTHONPATH", "")) if x
            )
        try:
            self.proc = subprocess.Popen(
                [install.python, "-m", "normbench.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log,
                cwd=install.cwd,
                env=env,
                text=True,
                bufsize=1,
            )
        except OSError as exc:
            raise UsageError(f"{label}: cannot start {install.python}: {exc.strerror}") from None

    def request(self, op: str, **kw: Any) -> dict[str, Any]:
        self.send(op, **kw)
        return self.receive()

    def send(self, op: str, **kw: Any) -> None:
        """Send a request without waiting (several workers can then work at once)."""
        try:
            assert self.proc.stdin
            self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # receive() reports the dead worker

    def receive(self) -> dict[str, Any]:
        """The answer to the request sent last."""
        try:
            assert self.proc.stdout
            line = self.proc.stdout.readline()
        except OSError:
            line = ""
        if not line:
            self.proc.wait(timeout=10)
            raise WorkerError(f"{self.label}: the worker exited ({self.last_error()})")
        try:
            answer = json.loads(line)
        except ValueError:
            raise WorkerError(f"{self.label}: the worker answered {line[:80]!r}") from None
        if "fatal" in answer:
            raise WorkerError(f"{self.label}: {answer['fatal']}")
        return answer

    def last_error(self) -> str:
        self._log.seek(0)
        lines = [x.strip() for x in self._log.read().splitlines() if x.strip()]
        code = self.proc.returncode
        return (lines[-1][:200] if lines else "no output") + f"; exit code {code}"

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(WorkerError):
                self.request("exit")
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


# --- the worker's end -------------------------------------------------------------------------


class Server:
    """The worker's state: its plugins, its side's backend and the case set up last."""

    def __init__(self) -> None:
        self.backend: str | None = None
        self.ready = None
        self.cache = None

    def hello(self, spec: str, plugins: list[str], threads: int) -> dict[str, Any]:
        import torch

        import normbench
        from normbench.env import fingerprint
        from normbench.plugins import load_plugins
        from normbench.suites.ab import resolve_side

        torch.set_num_threads(threads)
        if plugins:
            load_plugins(plugins)
        # An empty spec (`@PATH` alone): each case's own backend, from this install.
        self.backend = resolve_side(spec, "backend") if spec else None
        env = fingerprint("cpu", threads)
        return {
            "protocol": PROTOCOL,
            "backend": self.backend or "",
            "normbench_file": str(Path(normbench.__file__).resolve().parent),
            "env": {k: env[k] for k in ("normbench", "python", "torch", "triton")},
        }

    def setup(self, case: dict[str, Any], seed: int, timing: dict[str, Any]) -> dict[str, Any]:
        from normbench.cases import Case
        from normbench.suites.ab import setup_side
        from normbench.suites.common import PreparedCache
        from normbench.timing import TimingConfig
        from normbench.variants.base import Shape

        backend = self.backend or case["backend"]
        c = Case(**{**case, "shape": Shape(*case["shape"]), "backend": backend})
        if self.cache is None or self.cache.seed != seed:
            self.cache = PreparedCache(seed)
        self.ready = setup_side(c, self.cache, TimingConfig(**timing))
        return self.ready.to_dict()

    def block(self, k: int) -> dict[str, Any]:
        from normbench.timing import no_gc

        if self.ready is None or self.ready.take is None:
            return {"fatal": "block before a successful setup"}
        # The first sample after the other worker's turn is a re-warm-up (measured: its median
        # was 1.1 ms where the rest of the block took 0.68, eager RMSNorm 4 x 512 x 1024, 2
        # threads): caches and TLB hold the other process's data and the threads were asleep.
        # It is taken and dropped, as pyperf drops each process's warm-up values.
        with no_gc():
            return {"samples": self.ready.take(k + 1)[1:]}


def serve() -> None:
    """Answer requests on stdin until `exit` or end of input."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # a stray print must not break the protocol
    server = Server()
    for line in sys.stdin:
        req = json.loads(line)
        op = req.pop("op")
        if op == "exit":
            break
        try:
            answer = getattr(server, op)(**req) if op in ("hello", "setup", "block") else None
            if answer is None:
                answer = {"fatal": f"unknown request {op!r}"}
        except NormbenchError as exc:  # already one sentence
            answer = {"fatal": str(exc)}
        except Exception as exc:  # noqa: BLE001 - reported to the parent as one sentence
            from normbench.suites.common import describe_error

            answer = {"fatal": describe_error(exc)}
        out.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    from normbench.env import prepare_cpu_memory

    prepare_cpu_memory()
    with contextlib.suppress(KeyboardInterrupt):  # the parent's Ctrl-C reaches the group
        serve()
