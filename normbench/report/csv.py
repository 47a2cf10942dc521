"""Tidy CSV: one row per case and metric, readable with pandas.read_csv."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from normbench.results import Run


def render(run: Run) -> str:
    df = run.frame()
    df.insert(0, "device_name", run.env.get("device_name", ""))
    df.insert(1, "created", run.created)
    return df.to_csv(index=False)
