"""The files the regression gate reads besides the two runs' own: the baseline (its problems are
exit 3) and a `normbench calibrate` run (its margin, and the between-run noise it measured)."""

from __future__ import annotations

import math
from pathlib import Path

from normbench.errors import BaselineError
from normbench.results import Run, load_run
from normbench.results.compare import BetweenRunNoise, MinMargin


def _calibration(path: str | Path) -> tuple[Run, MinMargin]:
    run = load_run(path)
    margin = next((r for r in run.of(MinMargin) if r.value is not None), None)
    if run.suite != "calibrate" or margin is None:
        raise BaselineError(f"{path}: not a `normbench calibrate` run (no min_margin row)")
    return run, margin


def load_calibration(path: str | Path) -> float:
    """The margin a `normbench calibrate` run recommends (a fraction)."""
    return float(_calibration(path)[1].value) / 100  # type: ignore[arg-type]


def load_calibrated_noise(path: str | Path) -> float | None:
    """The between-run noise (1 sd of log ratio) a `normbench calibrate` run of separate runs
    measured; None when it recorded none (--interleaved, or a file from before it did)."""
    run, _ = _calibration(path)
    row = next((r for r in run.of(BetweenRunNoise) if r.tau is not None), None)
    if row is None or not math.isfinite(row.tau) or row.tau < 0:  # type: ignore[arg-type]
        return None
    return float(row.tau)  # type: ignore[arg-type]


def load_baseline(path: str | Path) -> Run:
    """load_run, with 'baseline' in front of any problem (BaselineError: exit 3)."""
    try:
        return load_run(path)
    except BaselineError as exc:
        raise BaselineError(f"baseline {exc}") from None
