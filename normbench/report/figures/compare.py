"""The compare figure: the ratio of median times new/base per case with its bootstrap 95% CI,
coloured and shaped by verdict (normbench.compare), the +-margin band around 1 and the geometric
mean. The columns read are the comparison's fields `verdict` and `margin`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from normbench.report.figures import style
from normbench.report.figures.data import Context, column, device_rank

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COMPARE_ORDER = ("regression", "improvement", "unreliable", "inconclusive", "same")
COMPARE_COLORS = {
    "regression": "#d62728", "improvement": "#2ca02c", "unreliable": "#9467bd",
    "inconclusive": "#ff9f1a", "same": "#7f7f7f", "geometric mean": "#000000",
}  # fmt: skip
# A shape per verdict too, so the verdicts are told apart without their colours.
COMPARE_MARKERS = {
    "regression": "X", "improvement": "P", "unreliable": "s", "inconclusive": "D", "same": "o",
    "geometric mean": "*",
}  # fmt: skip
GEOMEAN = "geometric mean"


def points(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """One row per drawn interval: panel (and device), label (the verdict, or 'geometric
    mean'), the case (its y tick), the ratio and its CI; worst verdict first, then the largest
    ratio, the geometric mean last."""
    verdict = column(frame, "verdict").fillna("inconclusive").astype(str)
    ratios = frame[(frame.metric == "ratio") & frame.value.notna()].assign(label=verdict)
    geo = frame[(frame.metric == "geomean_ratio") & frame.value.notna()].assign(label=GEOMEAN)
    pts = pd.concat([ratios.assign(case=ratios.case_id), geo.assign(case=GEOMEAN)])
    if pts.empty:
        return pts
    rank = {v: i for i, v in enumerate(COMPARE_ORDER)}
    pts["panel"] = [ctx.panel(d, "new / base") for d in pts.device]
    pts["device_rank"] = [device_rank(ctx, d) for d in pts.device]
    pts["verdict_rank"] = [
        len(rank) + 1 if label == GEOMEAN else rank.get(label, len(rank)) for label in pts.label
    ]
    by = ["device_rank", "verdict_rank", "label", "value"]
    return pts.sort_values(by, ascending=[True, True, True, False], kind="stable")


def _margin(frame: pd.DataFrame, ctx: Context, device: str) -> float | None:
    ratios = frame[(frame.metric == "ratio") & (frame.device == device)]
    known = pd.to_numeric(column(ratios, "margin"), errors="coerce").dropna()
    margin = float(known.iloc[0]) if not known.empty else ctx.config.get("margin")
    return margin if isinstance(margin, (int, float)) and margin > 0 else None


def _notes(frame: pd.DataFrame) -> tuple[str, ...]:
    """The CI's meaning, what an unreliable case means, and the cases without a ratio, counted
    by verdict."""
    missing = frame[(frame.metric == "ratio") & frame.value.isna()]
    why = column(missing, "verdict").fillna(missing.status).astype(str)
    notes = ("Whiskers: bootstrap 95% CI of the ratio of medians.",)
    shown = frame[(frame.metric == "ratio") & frame.value.notna()]
    if (column(shown, "verdict").astype(str) == "unreliable").any():
        notes += ("unreliable: timed while the machine was busy, shown but not judged.",)
    if not why.empty:
        what = ", ".join(f"{n} {v}" for v, n in why.value_counts(sort=False).items())
        notes += (f"No ratio (see the table): {what}.",)
    return notes


def ratios(frame: pd.DataFrame, ctx: Context) -> Figure | None:
    """The forest plot of ratios: a row per case, its CI as whiskers, a panel per device."""
    pts = points(frame, ctx)
    if pts.empty:
        return None
    panels = list(dict.fromkeys(pts.panel))
    cases = max(pts.panel.value_counts())
    fig, axes = style.panel_grid(len(panels), min(2, len(panels)), (7.5, 1.6 + 0.24 * cases))
    colors = style.palette(pts.label, known=COMPARE_COLORS)
    names = ctx.config.get("labels") or ("base", "new")
    handles: dict[str, Any] = {}
    for ax, panel in zip(axes, panels):
        here = pts[pts.panel == panel]
        at = {c: i for i, c in enumerate(here.case)}
        for label, s in here.groupby("label", sort=False):
            err = style.error_lengths(list(s.value), list(s.ci_low), list(s.ci_high))
            h = ax.errorbar(s.value, [at[c] for c in s.case], xerr=err,
                            fmt=COMPARE_MARKERS.get(label, "o"), color=colors[label], capsize=3,
                            markersize=6 if label == GEOMEAN else 5, label=label)  # fmt: skip
            handles.setdefault(label, h)
        ax.set_yticks(range(len(at)))
        ax.set_yticklabels(list(at), fontsize=7)
        ax.set_ylim(len(at) - 0.4, -0.6)
        style.ratio_axis(ax, [*here.ci_low, *here.ci_high, *here.value, 1.0], axis="x")
        style.unity(ax, "no change (1x)", handles, vertical=True)
        margin = _margin(frame, ctx, here.device.iloc[0])
        if margin is not None:
            style.band(ax, f"margin +-{margin:.0%}", 1.0, margin, handles)
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel(f"time ratio {names[1]} / {names[0]}")
        ax.grid(True, which="major", alpha=0.3)
    title = f"normbench compare: median time {names[1]} / {names[0]} per case (below 1 is faster)"
    return style.finish(fig, title, handles, _notes(frame))
