"""The files the regression gate reads besides the two runs' own: the baseline (its problems are
exit 3) and a `normbench calibrate` run (its margin, and the between-run noise it measured)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from normbench.errors import BaselineError
from normbench.results import Run, load_run
from normbench.results.compare import BetweenRunNoise, MinMargin
from normbench.results.files import finite_number

# A calibration's between-run noise stands in for the stated floor only when it was measured
# over this many A/A case comparisons: one comparison once gave tau 0 and, replacing the 10% CPU
# floor, turned a 12% slowdown the floor left inconclusive into confirmed regressions.
MIN_CALIBRATION_COMPARISONS = 20
# A margin the gate accepts (--threshold is under 50%), and a noise that is one: tau 1 is a
# factor e between runs, beyond any machine worth gating on.
MAX_MARGIN_PCT, MAX_TAU = 50.0, 1.0


def _calibration(path: str | Path) -> tuple[Run, float]:
    """The calibration run and its margin (%), checked to be one the gate could use."""
    run = load_run(path)
    rows = run.of(MinMargin)
    margin = next((r for r in rows if r.value is not None), None)
    if run.suite == "calibrate" and rows and margin is None:
        raise BaselineError(
            f"{path}: that calibration found no margin under 50% with under 1% A/A false "
            "alarms: separate runs on its machine cannot be gated (use normbench ab)"
        )
    if run.suite != "calibrate" or margin is None:
        raise BaselineError(f"{path}: not a `normbench calibrate` run (no min_margin row)")
    value = finite_number(margin.value)
    if value is None or not 0 <= value <= MAX_MARGIN_PCT:
        raise BaselineError(
            f"{path}: min_margin {margin.value!r} is not a margin the gate takes (0 to "
            f"{MAX_MARGIN_PCT:g}%, as --threshold); re-run normbench calibrate"
        )
    return run, value


@dataclass(frozen=True)
class Calibration:
    """What compare takes from a `normbench calibrate` run, read once."""

    path: str
    margin: float  # the smallest margin with under 1% A/A false alarms, a fraction
    noise: float | None  # the between-run noise (tau) that may stand for the floor, or None
    env: dict  # its device fingerprint: it must be the new run's (check_calibration_setup)


def read_calibration(path: str | Path) -> Calibration:
    """The calibration at `path`, its margin and noise checked (BaselineError, exit 3)."""
    run, margin = _calibration(path)
    return Calibration(str(path), margin / 100, _noise(run, path), dict(run.env))


def load_calibration(path: str | Path) -> float:
    """The margin a `normbench calibrate` run recommends (a fraction)."""
    return read_calibration(path).margin


def load_calibrated_noise(path: str | Path) -> float | None:
    """The between-run noise (1 sd of log ratio) a `normbench calibrate` run of separate runs
    measured; None when it recorded none (--interleaved, or a file from before it did) or too
    few comparisons to stand for the floor (MIN_CALIBRATION_COMPARISONS)."""
    return read_calibration(path).noise


def _noise(run: Run, path: str | Path) -> float | None:
    row = next((r for r in run.of(BetweenRunNoise) if r.tau is not None), None)
    if row is None:
        return None
    tau = finite_number(row.tau)
    if tau is None or not 0 <= tau <= MAX_TAU:
        raise BaselineError(
            f"{path}: between-run noise tau {row.tau!r} is not a noise (a number from 0 to "
            f"{MAX_TAU:g}); re-run normbench calibrate"
        )
    if not isinstance(row.n, int) or row.n < MIN_CALIBRATION_COMPARISONS:
        return None
    return tau


def check_calibration_setup(calibration: Calibration, new_env: dict, force: bool) -> None:
    """A calibration measured on another device, driver, torch, triton or thread count says
    nothing of this run's noise: refused like such a baseline (exit 3), unless `force`."""
    from normbench.compare_pairs import check_compatible

    check_compatible(calibration.env, new_env, force, f"calibration {calibration.path}")


def load_baseline(path: str | Path) -> Run:
    """load_run, with 'baseline' in front of any problem (BaselineError: exit 3)."""
    try:
        return load_run(path)
    except BaselineError as exc:
        raise BaselineError(f"baseline {exc}") from None
