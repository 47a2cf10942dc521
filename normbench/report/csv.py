"""Tidy CSV: one row per case and metric (the run's `to_frame`), readable with pandas.read_csv."""

from __future__ import annotations

from typing import TYPE_CHECKING

from normbench.report.merge import row_devices
from normbench.results import to_frame

if TYPE_CHECKING:
    from normbench.results import Run


def render(run: Run) -> str:
    df = to_frame(run)
    # Per row: a merged run holds several devices.
    df.insert(0, "device_name", row_devices(run, df.to_dict("records")))
    df.insert(1, "created", run.created)
    if not df.device.astype(bool).any():
        df = df.drop(columns="device")  # a device label is a merged run's
    return df.to_csv(index=False)
