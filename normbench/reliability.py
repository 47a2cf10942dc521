"""When a timing cannot support its figure: the rules, in the spirit of pyperf's warnings.

A timing is a median with a 95% CI; the CI describes the samples it was computed from and
nothing else. It cannot see that the machine was busy, that the process's speed changed half
way, or that the samples scatter so widely that "the median" is not one number. Those make a
timing *unreliable*: it is shown, with the reasons in words, and `compare` judges no unreliable
case a regression or an improvement (docs/numerics.md section 6).

Warnings (the figure stands, read it with care) and reasons (the figure is not trustworthy):
- warning: the p20-p80 spread is above SPREAD_WARN of the median ("unstable");
- warning: the budget ran out with the CI above CI_WARN;
- unreliable: the CI of the median is wider than +-CI_LIMIT;
- unreliable: the p20-p80 spread is above SPREAD_LIMIT (not one distribution);
- unreliable: the median of the second half of the samples differs from the first half's by more
  than DRIFT_LIMIT (the machine's state changed while it was timed);
- unreliable: the machine was busy (normbench.machine: other processes, steal, clock, throttle).
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import median
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from normbench.machine import MachineState
    from normbench.stats import Summary

SPREAD_WARN = 0.10
CI_WARN = 0.05
# Limits measured on this project's 2-core VM (docs/benchmarks.md "Busy machine"): over the
# quiet runs of the default sweep only a process's first case passed one of them, now and then.
CI_LIMIT = 0.10
SPREAD_LIMIT = 0.50
DRIFT_LIMIT = 0.20
MIN_DRIFT_SAMPLES = 10  # fewer samples than this: the halves' medians are noise themselves


def drift(samples: Sequence[float]) -> float | None:
    """The second half's median over the first half's, minus one (None with too few samples)."""
    if len(samples) < MIN_DRIFT_SAMPLES:
        return None
    half = len(samples) // 2
    first, second = median(samples[:half]), median(samples[half:])
    return second / first - 1 if first > 0 else None


def assess(
    samples: Sequence[float],
    summary: Summary,
    stopped: str,
    machine: MachineState | None = None,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(warnings, unreliable reasons) of one timing."""
    warnings: list[str] = []
    reasons: list[str] = []
    if summary.spread > SPREAD_LIMIT:
        reasons.append(
            f"p20-p80 spread is {summary.spread:.0%} of the median: the samples are not one "
            "distribution"
        )
    elif summary.spread > SPREAD_WARN:
        warnings.append(f"unstable: p20-p80 spread is {summary.spread:.0%} of the median")
    if summary.rel_ci > CI_LIMIT:
        reasons.append(f"the CI of the median is +-{summary.rel_ci:.0%}: raise --time-budget")
    elif stopped == "budget" and summary.rel_ci > CI_WARN:
        warnings.append(f"CI of the median is +-{summary.rel_ci:.0%}: raise --time-budget")
    d = drift(samples)
    if d is not None and abs(d) > DRIFT_LIMIT:
        word = "slower" if d > 0 else "faster"
        reasons.append(f"the second half of its samples ran {abs(d):.0%} {word} than the first")
    if machine is not None:
        reasons.extend(machine.busy_reasons())
    return tuple(warnings), tuple(reasons)
