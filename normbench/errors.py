"""Errors that carry an exit code, so the CLI can print one sentence instead of a traceback."""

from __future__ import annotations


class NormbenchError(Exception):
    """Base class: the message is one sentence a person can act on."""

    exit_code = 2


class UsageError(NormbenchError, ValueError):
    """Bad option or input (exit 2)."""

    exit_code = 2


class BaselineError(NormbenchError):
    """Missing, corrupt or incompatible baseline (exit 3)."""

    exit_code = 3


class CannotJudgeError(NormbenchError):
    """The measurement could not answer what was asked (exit 4): every comparison was timed
    while the machine was unreliable. Not bad input: a quieter machine answers it."""

    exit_code = 4


def describe_error(exc: BaseException) -> str:
    """One line a person can act on, for an exception raised inside a case or by a model."""
    name = type(exc).__name__
    if isinstance(exc, SystemExit):  # a plugin may not end the run (docs/plugins.md)
        return f"called sys.exit({exc.code!r}), which would have ended the run"
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if "out of memory" in msg.lower() or name in ("OutOfMemoryError", "MemoryError"):
        return f"out of memory: {msg[:160]}"
    return f"{name}: {msg[:200]}" if msg else name
