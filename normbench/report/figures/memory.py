"""The memory figure: what each case saves for backward and its peaks, against the ideal byte
model, per hidden size N (normbench memory, and speed --memory). Measured / ideal is often the
same whole number for many backends, so every series is dodged sideways around its N and has a
marker of its own: none hides behind another."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from normbench.report.figures import style
from normbench.report.figures.data import (
    Context,
    device_rank,
    dtype_rank,
    mode_rank,
    not_plotted,
    ok_points,
    series_labels,
)
from normbench.results.memory import IDEAL_OF

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# The measurements drawn (normbench.results.memory; bytes), each with its ideal as the metric
# IDEAL_OF[metric] of the same case. With every ideal present the figure shows measured / ideal
# (1x = nothing beyond what must exist), else MiB.
MEMORY_METRICS = (
    ("saved_bytes", "saved for backward"),
    ("peak_fwd_bytes", "peak, training forward"),
    ("peak_bytes", "peak"),
)
# What a training forward saves and peaks at does not depend on the case's mode: one panel per
# dtype, one point per shape, for these.
MODE_FREE = ("saved_bytes", "peak_fwd_bytes")


def points(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """One row per point: its panel (measure, dtype, mode where it matters, device and row count
    M when there are several), line label, N and y (measured / ideal, or MiB)."""
    ideals = frame[frame.metric.isin(IDEAL_OF.values())]
    ideal_of = {(r.case_id, r.device, r.metric): r.value for r in ideals.itertuples()}
    parts = []
    for i, (metric, what) in enumerate(MEMORY_METRICS):
        pts = ok_points(frame, metric)
        if pts.empty:
            continue
        free = metric in MODE_FREE
        # Panels by device, then measure; points by dtype, then mode (in run order within).
        pts["order"] = [
            (device_rank(ctx, d), i, dtype_rank(t), mode_rank(m))
            for d, t, m in zip(pts.device, pts.dtype, pts["mode"])
        ]
        pts = pts.sort_values("order", kind="stable")
        # A mode-free measure appears once per shape, whatever the case's mode.
        pts = pts.drop_duplicates(["device", "variant", "backend", "dtype", "shape"]
                                  + ([] if free else ["mode"]))  # fmt: skip
        several_m = pts.groupby("device")["rows"].transform("nunique") > 1
        pts["panel"] = [
            ctx.panel(r.device, what, r.dtype if free else f"{r.dtype} {r.mode}",
                      f"M={int(r.rows)}" if many else "")
            for r, many in zip(pts.itertuples(), several_m)
        ]  # fmt: skip
        pts["ideal"] = [
            ideal_of.get((c, d, IDEAL_OF[metric])) for c, d in zip(pts.case_id, pts.device)
        ]
        parts.append(pts)
    if not parts:
        return pd.DataFrame()
    pts = pd.concat(parts).sort_values("order", kind="stable", ignore_index=True)
    pts["label"] = series_labels(pts)
    pts["N"] = pts["dim"].astype(int)
    ratio = bool((pts.ideal.notna() & (pts.ideal > 0)).all())
    pts["y"] = pts.value / pts.ideal if ratio else pts.value / 2**20
    return pts.assign(ratio=ratio)


def memory(frame: pd.DataFrame, ctx: Context) -> Figure | None:
    """Measured bytes against the ideal byte model per N, a line per variant and backend, a
    panel per measure (saved for backward, peak of a training forward, peak of the case's mode),
    dtype, mode where it matters (and device, and row count M when several)."""
    pts = points(frame, ctx)
    if pts.empty:
        return None
    ratio = bool(pts.ratio.iloc[0])
    panels = list(dict.fromkeys(pts.panel))
    fig, axes = style.panel_grid(len(panels), min(4, len(panels)), style.LINE_SIZE)
    looks = style.series_looks(pts)
    handles: dict[str, Any] = {}
    ylabel = "measured / ideal bytes" if ratio else "MiB"
    for ax, panel in zip(axes, panels):
        here = pts[pts.panel == panel]
        series = list(here.groupby("label", sort=False))
        for (label, s), f in zip(series, style.dodge(len(series), here.N)):
            s = s.sort_values("N", kind="stable")
            color, ls, marker = looks[label]
            h = ax.errorbar(s.N * f, s.y, color=color, linestyle=ls, marker=marker, markersize=5,
                            capsize=3, linewidth=1.5, elinewidth=1, label=label)  # fmt: skip
            handles.setdefault(label, h)
        style.log2_x(ax, here.N)
        if ratio:
            ax.set_ylim(bottom=0)
            style.unity(ax, "ideal (1x)", handles)
            ax.yaxis.set_major_formatter(style.FuncFormatter(lambda v, _: style.ratio_text(v)))
        else:
            ax.set_yscale("log")
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("hidden size N")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
    title = ctx.title("memory against the ideal byte model (lower is better)")
    notes = not_plotted(frame, "saved_bytes")
    if pts.label.nunique() > 1:
        notes += ("The series are set side by side around each N, so equal values all show.",)
    return style.finish(fig, title, handles, notes)
