"""Tidy CSV: one row per case and metric, readable with pandas.read_csv (docs/formats.md "The
CSV file"): the shape as whole numbers (batch, seq, heads, dim and rows), `n` and byte counts
written without a decimal point, a category (a verdict) as text in `value_text`, and each
kind's own fields (stability's `verdict` and `dist`) as columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from normbench.report.merge import row_devices
from normbench.results.files import export_frame

if TYPE_CHECKING:
    from normbench.results import Run


def render(run: Run, metrics: Sequence[str] = ()) -> str:
    """The run's tidy rows (only those of `metrics` when given) as CSV text."""
    df = export_frame(run, metrics)
    # Per row: a merged run holds several devices.
    df.insert(0, "device_name", row_devices(run, df.to_dict("records")))
    # When each row was measured: a merged run's rows keep their own run's time.
    own = df.pop("created") if "created" in df else None
    df.insert(1, "created", run.created if own is None else own.fillna(run.created))
    if not df.device.astype(bool).any():
        df = df.drop(columns="device")  # a device label is a merged run's
    return df.to_csv(index=False)
