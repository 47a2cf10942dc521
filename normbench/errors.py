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
