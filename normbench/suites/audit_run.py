"""`normbench audit` as a run: the configurations from the options, compiled and read by
suites.audit, as typed results with a one-line summary, and --fail-on-spill's exit code."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from normbench.config import Strings, parse_ints
from normbench.errors import UsageError
from normbench.signals import measuring
from normbench.suites.audit import ARCHS, DTYPES
from normbench.validate import given

if TYPE_CHECKING:
    from normbench.results import Run
    from normbench.suites.common import Progress


@dataclass(frozen=True)
class AuditConfig:
    archs: tuple[str, ...] = ARCHS
    dtypes: tuple[str, ...] = DTYPES
    dims: tuple[int, ...] | None = None  # None: suites.audit.DEFAULT_DIMS
    fail_on_spill: bool = False  # exit 1 when a configuration spills

    def to_dict(self) -> dict:
        dims = list(self.dims) if self.dims is not None else None
        return {"archs": list(self.archs), "dtypes": list(self.dtypes), "dims": dims}


def build_audit_config(
    arch: str = ",".join(ARCHS),
    dtype: Strings = None,
    dim: Strings = None,
    fail_on_spill: bool = False,
) -> AuditConfig:
    """The options as given (comma lists; no --dtype or --dim: every one) -> AuditConfig."""
    from normbench.dtypes import canonical

    dtypes = [canonical(d) for d in given(dtype, "--dtype")] or list(DTYPES)
    dims = parse_ints(dim, "--dim") or None
    archs = tuple(given(arch, "--arch"))  # `--arch ,` is refused, repeats dropped
    return AuditConfig(archs, tuple(dtypes), dims and tuple(dims), fail_on_spill)


def run(config: AuditConfig, progress: Progress | None = None, debug: bool = False) -> Run:
    """Compile every configuration (an unknown arch, dtype or N: UsageError, exit 2)."""
    from normbench.env import fingerprint
    from normbench.results import Run
    from normbench.results.audit import summary
    from normbench.suites.audit import DEFAULT_DIMS, SUITE, _validate, run_audit

    start = time.perf_counter()
    count = 0

    def say(message: str) -> None:  # one step per message; the total is not known up front
        nonlocal count
        count += 1
        if progress is not None:
            progress(count, 0, message[:80])

    dims = list(config.dims) if config.dims else None
    try:
        _validate(config.archs, config.dtypes, dims or DEFAULT_DIMS)  # all of it, before any
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    # One arch at a time (its configurations still compile in parallel): a stop signal (Ctrl-C,
    # TERM, HUP) keeps the archs that finished and marks the run interrupted (exit 130).
    rows: list = []
    interrupted = False
    for arch in config.archs:
        try:
            with measuring():
                rows += run_audit([arch], list(config.dtypes), dims, progress=say)
        except KeyboardInterrupt:
            interrupted = True
            break
    return Run(SUITE, fingerprint("cpu"), config.to_dict(), rows, [summary(rows)],
               interrupted=interrupted, wall_s=time.perf_counter() - start)  # fmt: skip


def exit_code(config: AuditConfig, run: Run) -> int:
    """130 when interrupted (the finished archs are reported); else 1 with --fail-on-spill when
    any configuration spills."""
    from normbench.results.audit import AuditRow, spilled

    if run.interrupted:
        return 130
    return 1 if config.fail_on_spill and spilled(run.of(AuditRow)) else 0
