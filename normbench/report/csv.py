"""Tidy CSV: one row per case and metric, readable with pandas.read_csv."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from normbench.results import Run


def render(run: Run) -> str:
    df = run.frame()
    from normbench.report.merge import row_devices

    df.insert(0, "device_name", row_devices(run))  # per row: a merged run holds several devices
    df.insert(1, "created", run.created)
    return df.to_csv(index=False)
