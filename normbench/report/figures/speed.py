"""The speed figures: achieved bandwidth against hidden size N (with the device's copy bandwidth
as the ceiling; the headline, after Triton's tutorials), and the speedup over eager as bars with
their 95% CIs (docs/numerics.md section 6)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
from normbench.speed_answers import not_told_apart

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def points(frame: pd.DataFrame, ctx: Context, metric: str) -> pd.DataFrame:
    """The ok rows of `metric` with their panel (device, dtype and mode, and the row count M when
    a device has several) and line label, panels in order (device, dtype, mode, M)."""
    pts = ok_points(frame, metric)
    if pts.empty:
        return pts.assign(panel=[], label=[])
    several_m = pts.groupby("device")["rows"].transform("nunique") > 1
    pts["panel"] = [
        ctx.panel(r.device, f"{r.dtype} {r.mode}", f"M={int(r.rows)}" if many else "")
        for r, many in zip(pts.itertuples(), several_m)
    ]
    pts["label"] = series_labels(pts)
    pts["N"] = pts["dim"].astype(int)
    order = sorted(
        set(zip(pts.panel, pts.device, pts.dtype, pts["mode"], pts.rows)),
        key=lambda p: (device_rank(ctx, p[1]), dtype_rank(p[2]), p[2], mode_rank(p[3]), p[3], p[4]),
    )
    rank = {p[0]: i for i, p in enumerate(dict.fromkeys(order))}
    return pts.assign(panel_rank=pts.panel.map(rank))


def _ncols(pts: pd.DataFrame) -> int:
    """One column per mode (rows then read as dtypes), or up to three panels a row."""
    modes = pts["mode"].nunique()
    return modes if 1 < modes <= 3 else min(3, max(1, pts["panel"].nunique()))


def _panels(pts: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(pts.sort_values("panel_rank", kind="stable")["panel"]))


def bandwidth(frame: pd.DataFrame, ctx: Context) -> Figure | None:
    """GB/s (ideal bytes / median time) against hidden size N on log axes, a line per variant and
    backend, a panel per dtype and mode (and device, and row count M, when there are several),
    p20-p80 as error bars, the device's measured copy bandwidth as a dashed line and a right-hand
    axis in % of it. A panel of one N dodges its series sideways, so each one shows."""
    pts = points(frame, ctx, "bandwidth")
    if pts.empty:
        return None
    panels = _panels(pts)
    fig, axes = style.panel_grid(len(panels), _ncols(pts), style.LINE_SIZE)
    looks = style.series_looks(pts)
    handles: dict[str, Any] = {}
    dodged = False
    for ax, panel in zip(axes, panels):
        here = pts[pts.panel == panel]
        ax.set_yscale("log")  # before anything is drawn, so the autoscaled limits are positive
        series = list(here.groupby("label", sort=False))
        # Several Ns: the lines tell the series apart. One N: every series sits on one x.
        one_n = here.N.nunique() == 1
        dodged |= one_n and len(series) > 1
        shift = style.dodge(len(series), here.N) if one_n else [1.0] * len(series)
        for (label, s), f in zip(series, shift):
            s = s.sort_values("N", kind="stable")
            color, ls, marker = looks[label]
            h = ax.errorbar(
                s.N * f, s.value, yerr=style.error_lengths(list(s.value), list(s.p20), list(s.p80)),
                color=color, linestyle=ls, marker=marker, markersize=5, capsize=3,
                linewidth=1.5, elinewidth=1, label=label,
            )  # fmt: skip
            handles.setdefault(label, h)
        style.log2_x(ax, here.N)
        copy = ctx.env(here.device.iloc[0]).get("copy_bandwidth_gbps")
        if isinstance(copy, (int, float)) and copy > 0:
            text = style.gbps_text(float(copy))
            style.limit(ax, f"measured copy bandwidth ({text})", float(copy), handles)
        style.log_y(ax)
        if isinstance(copy, (int, float)) and copy > 0:
            style.log_y(_pct_axis(ax, float(copy)))
        _labels(ax, panel, "GB/s (ideal bytes / median time), log")
    notes = not_plotted(frame) + ("Error bars: p20-p80 of the samples.",)
    if dodged:
        notes += ("One N: the series are set side by side around it.",)
    return style.finish(fig, ctx.title("achieved bandwidth (higher is better)"), handles, notes)


def speedup(frame: pd.DataFrame, ctx: Context) -> Figure | None:
    """Speedup over PyTorch eager (eager time / this time) per N, bars per variant and backend
    growing from 1x (a log2 axis when they span more than 4x), with the bootstrap 95% CI of each
    as whiskers."""
    pts = points(frame, ctx, "speedup")
    pts = pts[pts.backend != "eager"]
    if pts.empty:
        return None
    panels = _panels(pts)
    fig, axes = style.panel_grid(len(panels), _ncols(pts), style.LINE_SIZE)
    colors = style.palette(pts.backend)
    handles: dict[str, Any] = {}
    for ax, panel in zip(axes, panels):
        _bars(ax, pts[pts.panel == panel], colors, handles)
        style.unity(ax, "eager (1x)", handles)
        _labels(ax, panel, "eager time / backend time")
    notes = (
        "Whiskers: bootstrap 95% CI of the speedup (ratio of medians); ~ marks one not told "
        "apart from eager (its CI includes 1x, or a side was timed unreliable).",
    )
    if not (pts.ci_low.notna() & pts.ci_high.notna()).all():
        notes += ("A bar without whiskers has no CI (no raw samples).",)
    return style.finish(fig, ctx.title("speedup over eager (higher is better)"), handles, notes)


def _bars(ax: Axes, here: pd.DataFrame, colors: dict[str, str], handles: dict[str, Any]) -> None:
    cats = sorted(set(here.N))
    series = list(here.groupby("label", sort=False))
    hatches = {v: ("", "//", "..", "xx")[i % 4] for i, v in enumerate(dict.fromkeys(here.variant))}
    width = 0.8 / len(series)
    for i, (label, s) in enumerate(series):
        s = s.sort_values("N", kind="stable")
        offset = (i - (len(series) - 1) / 2) * width
        xs = [cats.index(n) + offset for n in s.N]
        # Bars grow from 1 (no change): a slowdown points down, and on a log axis 2x and 0.5x
        # are the same length.
        h = ax.bar(xs, s.value - 1, bottom=1, width=width * 0.95, color=colors[s.backend.iloc[0]],
                   hatch=hatches[s.variant.iloc[0]], edgecolor="white", linewidth=0.5,
                   label=label)  # fmt: skip
        err = style.error_lengths(list(s.value), list(s.ci_low), list(s.ci_high))
        if err is not None:
            ax.errorbar(xs, s.value, yerr=err, fmt="none", ecolor="black", elinewidth=1,
                        capsize=3, label=f"_ci {label}")  # fmt: skip
        if len(cats) * len(series) <= 16:
            # More than three bars a group: side by side the labels would run into each other.
            turn = 90 if len(series) > 3 else 0
            notes = s["note"] if "note" in s else [""] * len(s)
            for x, v, lo, hi, note in zip(xs, s.value, s.ci_low, s.ci_high, notes):
                _bar_text(ax, x, v, lo, hi, note, turn)
        handles.setdefault(label, h)
    ax.set_xticks(range(len(cats)))
    ax.set_xticklabels([style.pow2_label(c) for c in cats])
    style.ratio_axis(ax, [*here.value, *here.ci_low, *here.ci_high, 1.0])
    ax.margins(y=0.3)  # room for the labels beyond the whiskers, inside the panel


def _bar_text(ax: Axes, x: float, v: float, lo: float, hi: float, note: object,
              turn: float) -> None:  # fmt: skip
    """The speedup beyond the end of its whisker (so the two never cross), "~" where it is not
    told apart from eager, as the table prints it."""
    known = lo is not None and hi is not None and lo == lo and hi == hi  # NaN: no CI
    up = v >= 1
    end = (hi if up else lo) if known else v
    tie = not_told_apart(lo if known else None, hi if known else None, note)
    ax.annotate(("~" if tie else "") + style.ratio_text(v), (x, end), xytext=(0, 2 if up else -2),
                textcoords="offset points", ha="center", va="bottom" if up else "top",
                fontsize=7, rotation=turn)  # fmt: skip


def _labels(ax: Axes, panel: str, ylabel: str) -> None:
    ax.set_title(panel, fontsize=10)
    ax.set_xlabel("hidden size N")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)


def _pct_axis(ax: Axes, ref: float) -> Axes:
    """A right-hand axis in % of the copy bandwidth, so both readings are on the plot."""
    sec = ax.secondary_yaxis("right", functions=(lambda v: 100 * v / ref, lambda p: p * ref / 100))
    sec.set_ylabel(f"% of copy bandwidth ({style.gbps_text(ref)})")
    return sec
