"""`normbench audit` as a run: the configurations from the options, compiled and read by
suites.audit, as typed results with a one-line summary, and --fail-on-spill's exit code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from normbench.config import Strings, parse_ints, split
from normbench.errors import UsageError
from normbench.suites.audit import ARCHS, DTYPES

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

    dtypes = [canonical(d) for d in split(dtype)] or list(DTYPES)
    dims = parse_ints(dim, "--dim") or None
    return AuditConfig(tuple(split(arch)), tuple(dtypes), dims and tuple(dims), fail_on_spill)


def run(config: AuditConfig, progress: Progress | None = None, debug: bool = False) -> Run:
    """Compile every configuration (an unknown arch, dtype or N: UsageError, exit 2)."""
    from normbench.env import fingerprint
    from normbench.results import Run
    from normbench.results.audit import summary
    from normbench.suites.audit import SUITE, run_audit

    count = 0

    def say(message: str) -> None:  # one step per message; the total is not known up front
        nonlocal count
        count += 1
        if progress is not None:
            progress(count, 0, message[:80])

    try:
        rows = run_audit(list(config.archs), list(config.dtypes),
                         list(config.dims) if config.dims else None, progress=say)  # fmt: skip
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return Run(SUITE, fingerprint("cpu"), config.to_dict(), list(rows), [summary(rows)])


def exit_code(config: AuditConfig, run: Run) -> int:
    """1 with --fail-on-spill when any configuration spills."""
    from normbench.results.audit import AuditRow, spilled

    return 1 if config.fail_on_spill and spilled(run.of(AuditRow)) else 0
