"""The stability figures: the range sweep (the verdict, or the error, of each implementation as
its inputs are scaled by 2^k) and the verdict matrix (each implementation on each input
distribution). The columns read are the stability results' fields: `verdict`, `dist`,
`max_ulp`, `tol_ratio`, and for the sweep `k`, `low_k`, `high_k`. A verdict is never told by its
colour alone: each cell also carries its word (or letter) and a hatch, each sweep point a marker
shape of its verdict's (docs/benchmarks.md "2026-12-02: plots")."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from normbench.report.figures import style
from normbench.report.figures.data import Context, column, device_rank, dtype_rank
from normbench.verdicts import RANK, VERDICTS, WARN_RATIO

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

VERDICT_COLORS = {"PASS": "#2ca02c", "WARN": "#ff9f1a", "FAIL": "#d62728", "skipped": "#d9d9d9"}
VERDICT_HATCHES = {"PASS": "", "WARN": "//", "FAIL": "xx", "skipped": ""}
VERDICT_MARKERS = {"PASS": "o", "WARN": "^", "FAIL": "X", "skipped": "."}
# A sweep cell is too narrow for a word: a letter (and nothing where the case did not run).
VERDICT_LETTERS = {"PASS": "P", "WARN": "W", "FAIL": "F", "skipped": ""}
# Per-scale error measures a sweep point may carry, best first: the error as a multiple of the
# tolerance (PASS <= 1, WARN <= 4: normbench.verdicts), then the error in output ulps.
SWEEP_ERROR_KEYS = (("tol_ratio", "error / tolerance"), ("max_ulp", "max error (output ulps)"))
WORST_FIRST = {"skipped": -1, **RANK}


def marks(rows: pd.DataFrame) -> list[str]:
    """Each row's verdict (PASS, WARN, FAIL) or 'skipped' (not representable, not applicable)."""
    by_rank = {float(i): v for v, i in RANK.items()}
    out = []
    for status, verdict, value in zip(rows.status, column(rows, "verdict"), rows.value):
        if status == "skipped":
            out.append("skipped")
        elif verdict in VERDICTS:
            out.append(str(verdict))
        else:  # no verdict column: the value is the verdict's rank
            out.append(by_rank.get(value, "FAIL"))
    return out


def _impl(rows: pd.DataFrame) -> pd.Series:
    return rows.variant + " / " + rows.backend


def _cell(x: float, y: float, mark: str) -> Rectangle:
    """A verdict's cell: its colour and, for WARN and FAIL, a dark hatch over it."""
    return Rectangle((x - 0.48, y - 0.45), 0.96, 0.9, facecolor=VERDICT_COLORS.get(mark, "#d9d9d9"),
                     hatch=VERDICT_HATCHES.get(mark, ""), edgecolor="#333333",
                     linewidth=0)  # fmt: skip


def _cell_text(ax: Axes, x: float, y: float, text: str, size: float, mark: str) -> None:
    """Text on a light box, so it stays legible over a hatch; WARN and FAIL in bold."""
    box = {"facecolor": "white", "alpha": 0.75, "linewidth": 0, "pad": 0.8}
    loud = mark in ("WARN", "FAIL")
    ax.text(x, y, text, ha="center", va="center", fontsize=size, bbox=box if text else None,
            fontweight="bold" if loud else "normal")  # fmt: skip


def _grid_size(series: list[list[Any]], per_col: float) -> tuple[float, float]:
    """Inches per panel of a grid: it grows with its rows and columns so labels stay legible."""
    rows = max(len(s) for s in series)
    cols = max(len({x for one in s for x in one}) for s in series)
    return (max(2.2 + per_col * cols, 5.0), 1.4 + 0.5 * rows)


def _verdict_legend(handles: dict[str, Any]) -> None:
    for v, color in VERDICT_COLORS.items():
        patch = Patch(facecolor=color, hatch=VERDICT_HATCHES[v], edgecolor="#333333", linewidth=0)
        handles.setdefault(v if v != "skipped" else "not run (n/a)", patch)


# ---------------------------------------------------------------- the 2^k sweep


def sweep_points(frame: pd.DataFrame, ctx: Context) -> tuple[pd.DataFrame, str | None, str]:
    """The sweep points with panel (dtype and N, and device), implementation, verdict, PASS
    range and y; the error column drawn (None: the verdicts) and the y label."""
    k = pd.to_numeric(column(frame, "k"), errors="coerce")
    pts = frame[(frame.metric == "sweep_verdict") & k.notna()].copy()
    if pts.empty:
        return pts, None, "verdict"
    pts["k"] = k[pts.index].astype(int)
    pts = pts[pts.k == k[pts.index]]  # a whole power of two
    skipped = pts.status == "skipped"
    key, ylabel = next(
        ((c, label) for c, label in SWEEP_ERROR_KEYS
         if (pd.to_numeric(column(pts, c), errors="coerce").notna() | skipped).all()),
        (None, "verdict"),
    )  # fmt: skip
    pts["panel"] = [
        ctx.panel(d, t, f"N={n:.0f}") for d, t, n in zip(pts.device, pts.dtype, pts.dim)
    ]
    pts["impl"] = _impl(pts)
    pts["mark"] = marks(pts)
    rank = pd.to_numeric(pts.value, errors="coerce")
    if key:
        err = pd.to_numeric(pts[key], errors="coerce")
        pts["y"] = err.where(~skipped, rank)
    else:
        pts["y"] = rank
    safe = frame[(frame.metric == "safe_scale_max") & (frame.status == "ok")]
    spans = {
        (r.device, r.variant, r.backend, r.dtype, r.dim): (lo, hi)
        for r, lo, hi in zip(safe.itertuples(), column(safe, "low_k"), column(safe, "high_k"))
    }
    pts["span"] = [
        _span(*spans.get((r.device, r.variant, r.backend, r.dtype, r.dim), (None, None)))
        for r in pts.itertuples()
    ]
    order = sorted(
        set(zip(pts.panel, pts.device, pts.dtype, pts.dim)),
        key=lambda p: (device_rank(ctx, p[1]), dtype_rank(p[2]), p[2], p[3]),
    )
    pts["panel_rank"] = pts.panel.map({p[0]: i for i, p in enumerate(order)})
    return pts, key, ylabel


def _span(lo: Any, hi: Any) -> str:
    def known(v: Any) -> bool:
        return v is not None and v == v

    if not known(lo) and not known(hi):
        return "no scale passes"
    return f"PASS 2^{int(lo) if known(lo) else lo}..2^{int(hi) if known(hi) else hi}"


def sweep(frame: pd.DataFrame, ctx: Context) -> Figure | None:
    """The dynamic-range sweep: the verdict of each implementation per input scale 2^k, or its
    error against the scale when the points carry one; a panel per dtype and N (and device)."""
    pts, key, ylabel = sweep_points(frame, ctx)
    if pts.empty:
        return None
    panels = list(dict.fromkeys(pts.sort_values("panel_rank", kind="stable").panel))
    groups = {p: list(pts[pts.panel == p].groupby("impl", sort=False)) for p in panels}
    size = (
        style.LINE_SIZE if key else _grid_size([[s.k for _, s in g] for g in groups.values()], 0.22)
    )
    fig, axes = style.panel_grid(len(panels), 2, size)
    colors = style.palette(pts.backend)
    styles = style.line_styles(pts.variant)
    handles: dict[str, Any] = {}
    for ax, panel in zip(axes, panels):
        series = [(impl, s.sort_values("k", kind="stable")) for impl, s in groups[panel]]
        if key:
            _error_lines(ax, series, colors, styles, handles)
            if key == "tol_ratio":
                style.unity(ax, "tolerance (PASS at or below)", handles)
                style.limit(ax, "WARN limit (FAIL above)", WARN_RATIO, handles)
            ax.set_ylabel(ylabel)
            ax.grid(True, which="major", alpha=0.3)
        else:
            _verdict_rows(ax, series, handles)
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("input scale (largest |x| of each row just below 2^k)")
    title = "normbench stability: inputs scaled by 2^k " + (
        "(error per scale)" if key else "(verdict per scale)"
    )
    note = (
        "Point shape and colour: its verdict (o PASS, ^ WARN, X FAIL); a gap: the scaled input is "
        "not representable in the dtype, or the case does not apply."
        if key
        else "Cell: P PASS, W WARN (hatched //), F FAIL (hatched xx); grey: the scaled input is "
        "not representable in the dtype, or not applicable."
    )
    return style.finish(fig, title, handles, (note,))


def _error_lines(ax: Axes, series, colors, styles, handles: dict[str, Any]) -> None:
    """Error against scale, a line per implementation (colour: backend, style: variant), a
    marker per point whose shape and colour are its verdict's."""
    for impl, s in series:
        ls, _ = styles[s.variant.iloc[0]]
        xs = [2.0**k for k in s.k]
        (h,) = ax.plot(xs, s.y, color=colors[s.backend.iloc[0]], linestyle=ls, linewidth=1.3,
                       label=impl)  # fmt: skip
        for mark, at in s.assign(x=xs).groupby("mark", sort=False):
            ax.scatter(at.x, at.y, color=VERDICT_COLORS.get(mark, "#d9d9d9"), s=22, zorder=3,
                       marker=VERDICT_MARKERS.get(mark, "."), edgecolors="none",
                       label=f"_{mark}")  # fmt: skip
        handles.setdefault(impl, h)
    for v in VERDICTS:
        handles.setdefault(v, Line2D([], [], color=VERDICT_COLORS[v], marker=VERDICT_MARKERS[v],
                                     linestyle=""))  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")


def _verdict_rows(ax: Axes, series, handles: dict[str, Any]) -> None:
    """One row per implementation (labelled with its PASS range), a coloured cell per scale."""
    cols = sorted({k for _, s in series for k in s.k})
    at = {c: i for i, c in enumerate(cols)}
    for row, (_, s) in enumerate(series):
        for k, mark in zip(s.k, s.mark):
            ax.add_patch(_cell(at[k], row, mark))
            _cell_text(ax, at[k], row, VERDICT_LETTERS.get(mark, ""), 6, mark)
    ax.set_xlim(-0.5, len(cols) - 0.5)
    ax.set_ylim(len(series) - 0.5, -0.5)
    ax.set_yticks(range(len(series)))
    ax.set_yticklabels([f"{impl}\n{s.span.iloc[0]}" for impl, s in series], fontsize=8)
    step = max(1, len(cols) // 10)
    ax.set_xticks(range(0, len(cols), step))
    ax.set_xticklabels([f"$2^{{{c}}}$" for c in cols[::step]])
    ax.grid(False)
    _verdict_legend(handles)


# ---------------------------------------------------------------- the verdict matrix


def matrix_cells(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """Per panel (dtype, and device), implementation and input distribution, the worst verdict
    over N and modes (ties: the larger error in ulps, then the first), with its cell text."""
    v = frame[(frame.metric == "verdict") & column(frame, "dist").notna()].copy()
    if v.empty:
        return v
    v["panel"] = [ctx.panel(d, t) for d, t in zip(v.device, v.dtype)]
    v["impl"] = _impl(v)
    v["mark"] = marks(v)
    v["ulp"] = pd.to_numeric(column(v, "max_ulp"), errors="coerce")
    v["text"] = [_ulp_text(m, u) for m, u in zip(v.mark, v.ulp)]
    v["first"] = range(len(v))
    # Series in the order they first appear, distributions in the order each device ran them.
    v["series_rank"] = v.groupby(["panel", "impl"], sort=False)["first"].transform("min")
    v["dist_rank"] = v.groupby("device", sort=False)["dist"].transform(
        lambda d: d.map({x: i for i, x in enumerate(dict.fromkeys(d))})
    )
    v["score"] = v.mark.map(WORST_FIRST)
    worst = v.assign(u=v.ulp.fillna(0.0))
    worst = worst.sort_values(["score", "u"], ascending=False, kind="stable")
    worst = worst.drop_duplicates(["panel", "impl", "dist"])
    order = sorted(
        set(zip(worst.panel, worst.device, worst.dtype)),
        key=lambda p: (device_rank(ctx, p[1]), dtype_rank(p[2]), p[0]),
    )
    worst["panel_rank"] = worst.panel.map({p[0]: i for i, p in enumerate(order)})
    return worst.sort_values(["panel_rank", "series_rank", "dist_rank"], kind="stable")


def _ulp_text(mark: str, ulp: float) -> str:
    """The cell's words: its verdict over its worst error in ulps ('PASS\n0.5')."""
    if mark == "skipped":
        return "n/a"
    if not math.isfinite(ulp):  # NaN: no error in ulps recorded
        return mark
    return f"{mark}\n{compact(ulp)}"


def compact(v: float) -> str:
    """At most four characters: 0.5, 33, 509, 1.5k, 20k, 3M."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= size:
            return f"{v / size:.2g}{suffix}" if abs(v) < 10 * size else f"{v / size:.0f}{suffix}"
    return f"{v:.2g}" if abs(v) < 10 else f"{v:.0f}"


def matrix(frame: pd.DataFrame, ctx: Context) -> Figure | None:
    """The verdict of every implementation on every input distribution (worst over N and
    modes), each cell annotated with the worst error in output ulps; a panel per dtype (and
    device)."""
    cells = matrix_cells(frame, ctx)
    if cells.empty:
        return None
    panels = list(dict.fromkeys(cells.panel))
    groups = {p: list(cells[cells.panel == p].groupby("impl", sort=False)) for p in panels}
    size = _grid_size([[s.dist for _, s in g] for g in groups.values()], 0.62)
    fig, axes = style.panel_grid(len(panels), 1, size)
    handles: dict[str, Any] = {}
    for ax, panel in zip(axes, panels):
        series = groups[panel]
        cols = list(dict.fromkeys(d for _, s in series for d in s.dist))
        at = {c: i for i, c in enumerate(cols)}
        for row, (_, s) in enumerate(series):
            for dist, mark, text in zip(s.dist, s.mark, s.text):
                ax.add_patch(_cell(at[dist], row, mark))
                _cell_text(ax, at[dist], row, text, 7, mark)
        ax.set_xlim(-0.5, len(cols) - 0.5)
        ax.set_ylim(len(series) - 0.5, -0.5)
        ax.set_yticks(range(len(series)))
        ax.set_yticklabels([impl for impl, _ in series], fontsize=8)
        ax.set_xticks(range(len(cols)))
        ax.set_xticklabels(cols, rotation=35, ha="right", fontsize=8)
        ax.grid(False)
        _verdict_legend(handles)
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("input distribution")
    title = "normbench stability: verdict per input distribution (cell: worst error in ulps)"
    note = (
        "Cell: the verdict (WARN hatched //, FAIL xx) over the worst error in output ulps; "
        "n/a: not applicable; worst over N and modes."
    )
    return style.finish(fig, title, handles, (note,))
