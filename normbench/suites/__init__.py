"""The suites by name: what one command runs (`get_suite("speed").run(config, progress)`).

Each suite module exposes its run function (and the exit code its results call for); the
registry names them, imported on first use since the suites import torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from normbench.errors import UsageError


@dataclass(frozen=True)
class Lazy:
    """`module:function`, imported at the first call."""

    path: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        module, _, name = self.path.partition(":")
        return getattr(importlib.import_module(module), name)(*args, **kwargs)


def interrupted(config: Any, run: Any) -> int:
    """130 when Ctrl-C stopped the run (what finished was still reported), else 0."""
    return 130 if run.interrupted else 0


def timed(config: Any, run: Any) -> int:
    """speed and memory: 130 when Ctrl-C stopped the run; 4 when a backend gave wrong numbers
    (a mismatch is never timed, so the measurement asked for could not be made: a CI job timing
    a broken kernel must not pass); else 0. With --baseline the gate's code replaces it."""
    from normbench.results import Status

    mismatch = any(getattr(r, "status", None) is Status.MISMATCH for r in run.results)
    return interrupted(config, run) or (4 if mismatch else 0)


def no_exit_code(config: Any, run: Any) -> int:
    return 0


@dataclass(frozen=True)
class Suite:
    name: str
    # (config, progress=None, debug=False) -> the suite's Run (ab: suites.ab.ABResult);
    # progress(done, total, label) as the cases go by
    run: Callable[..., Any]
    # (config, run) -> the exit code, once the run's reports are written
    exit_code: Callable[[Any, Any], int] = no_exit_code


def _in(path: str) -> Lazy:
    return Lazy(f"normbench.suites.{path}")


SUITES: dict[str, Suite] = {
    s.name: s
    for s in (
        Suite("speed", _in("speed:run_speed"), timed),
        Suite("memory", _in("memory:run_memory"), timed),
        Suite("stability", _in("stability:run_stability"), _in("stability:exit_code")),
        Suite("calibrate", _in("calibrate:run_calibrate"), interrupted),
        Suite("ab", _in("ab_sides:run"), _in("ab_sides:exit_code")),
        Suite("audit", _in("audit_run:run"), _in("audit_run:exit_code")),
        Suite("diagnose", _in("diagnose_run:run"), interrupted),
    )
}


def get_suite(name: str) -> Suite:
    try:
        return SUITES[name]
    except KeyError:
        raise UsageError(f"unknown suite {name!r}: choose from {', '.join(SUITES)}") from None
