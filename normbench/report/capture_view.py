"""How a capture reads: one row per captured layer (docs/capture.md "The summary"), shown by
`normbench capture` and at the top of a `stability --inputs` run."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from normbench.fmt import fmt
from normbench.report.tables import Table
from normbench.results.capture import CapturedLayerResult

if TYPE_CHECKING:
    from normbench.results import Run

COLUMNS = ["layer", "norm", "residual", "dtype", "rows", "N", "eps", "max |x|",
           "top channels (share of sum x^2)", "|mean|/std", "nearest input (distance)"]  # fmt: skip


def _num(v: float | None, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}g}"


def layer_table(layers: list[CapturedLayerResult]) -> Table | None:
    if not layers:
        return None
    rows = []
    for r in layers:
        nonfinite = r.value("nonfinite") or 0
        top = _num(r.value("max_abs")) + (f" ({int(nonfinite)} inf/NaN)" if nonfinite else "")
        dist = r.value("nearest_distance")
        shape = r.shape
        rows.append([
            r.layer or r.case_id, r.norm, r.residual or "-", r.dtype,
            str(shape.rows) if shape else "-", str(shape.dim) if shape else "-",
            f"{r.eps:g}" if r.eps is not None else "-", top, r.top_channels or "-",
            _num(r.value("mean_std"), 3), f"{r.nearest} ({fmt(dist, 2)})" if r.nearest else "-",
        ])  # fmt: skip
    return ("captured layers: what each norm saw", COLUMNS, rows)


def view(run: Run) -> list[Table]:
    table = layer_table(run.of(CapturedLayerResult))
    return [table] if table else []
