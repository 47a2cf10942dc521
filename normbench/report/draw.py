"""Drawing PlotData with matplotlib's Agg canvas: no pyplot, no display, no global state, and
matplotlib imported only here, when a figure is drawn. What is drawn is exactly the PlotData that
normbench.report.plots built from the run."""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from typing import Any

from normbench.report.plots import Line, PlotData, Series, gbps_text

DPI = 110
BACKEND_COLORS = {
    "eager": "#1f77b4", "composite": "#ff7f0e", "torchscript": "#2ca02c", "compile": "#d62728",
    "triton": "#9467bd", "liger": "#8c564b", "apex": "#e377c2", "quack": "#17becf",
}  # fmt: skip
SPARE_COLORS = ("#bcbd22", "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5")
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")
VERDICT_COLORS = {"PASS": "#2ca02c", "WARN": "#ff9f1a", "FAIL": "#d62728", "skipped": "#d9d9d9"}
COMPARE_COLORS = {
    "regression": "#d62728", "improvement": "#2ca02c", "inconclusive": "#ff9f1a",
    "same": "#7f7f7f", "geometric mean": "#000000",
}  # fmt: skip


def _colors(keys: Iterable[str]) -> dict[str, str]:
    out, spare = {}, iter(SPARE_COLORS * 4)
    for k in dict.fromkeys(keys):
        out[k] = BACKEND_COLORS.get(k) or COMPARE_COLORS.get(k) or next(spare)
    return out


def _styles(keys: Iterable[str]) -> dict[str, tuple[str, str]]:
    return {
        k: (LINESTYLES[i % len(LINESTYLES)], MARKERS[i % len(MARKERS)])
        for i, k in enumerate(dict.fromkeys(keys))
    }


def _figure(n_panels: int, ncols: int = 3, size: tuple[float, float] = (5.4, 3.8)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = max(n_panels, 1)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows + 1.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def _panel_size(data: PlotData) -> tuple[float, float]:
    """Inches per panel: grids grow with their rows and columns so cell labels stay legible."""
    mode = data.options.get("mode")
    if mode == "forest":
        counts = [len([x for s in data.series if s.panel == p for x in s.x]) for p in data.panels]
        cases = max(counts, default=1)
        return (7.5, 1.6 + 0.24 * cases)
    if mode not in ("verdict", "matrix"):
        return (5.4, 3.8)
    per_panel = [[s for s in data.series if s.panel == p] for p in data.panels] or [[]]
    rows = max(len(ss) for ss in per_panel)
    cols = max(len({x for s in ss for x in s.x}) for ss in per_panel)
    width = 2.2 + (0.62 if mode == "matrix" else 0.22) * cols
    return (max(width, 5.0), 1.4 + 0.5 * rows)


def _pow2_label(n: float) -> str:
    n = int(n)
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024}K"
    return str(n)


def _log2_x(ax, xs: Iterable[float]) -> None:
    from matplotlib.ticker import FixedLocator, NullLocator

    ticks = sorted(set(xs))
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([_pow2_label(t) for t in ticks])
    if len(ticks) == 1:
        ax.set_xlim(ticks[0] / 1.5, ticks[0] * 1.5)


def ratio_text(v: float) -> str:
    return f"{v:.0f}x" if abs(v) >= 100 else f"{v:.3g}x"


def _ratio_axis(ax, values: Iterable[float | None], axis: str = "y") -> None:
    """A ratio axis: log2 when the values span more than 4x, so 0.5x and 2x sit symmetric, with
    at most about eight ticks at powers of two."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    pos = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    target = ax.yaxis if axis == "y" else ax.xaxis
    if pos and max(pos) / min(pos) > 4:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log", base=2)
        lo, hi = math.floor(math.log2(min(pos))), math.ceil(math.log2(max(pos)))
        step = max(1, math.ceil((hi - lo) / 8))
        target.set_major_locator(FixedLocator([2.0**e for e in range(lo, hi + 1, step)]))
        target.set_minor_locator(NullLocator())
    target.set_major_formatter(FuncFormatter(lambda v, _: ratio_text(v)))


def draw(data: PlotData) -> bytes:
    """The figure as PNG bytes."""
    panels = data.panels
    fig, axes = _figure(len(panels), ncols=data.options.get("ncols", 3), size=_panel_size(data))
    colors = _colors(s.color_key or s.label for s in data.series)
    styles = _styles(s.style_key for s in data.series)
    handles: dict[str, Any] = {}
    for ax, panel in zip(axes, panels, strict=False):
        series = [s for s in data.series if s.panel == panel]
        mode = data.options.get("mode")
        if data.options.get("bars"):
            _bars(ax, series, colors, handles)
        elif mode in ("verdict", "matrix"):
            _verdict_grid(ax, series, handles, sweep=mode == "verdict")
        elif mode == "error":
            _sweep_lines(ax, series, colors, styles, handles)
        elif data.options.get("forest"):
            _forest(ax, series, colors, handles, data.options)
        else:
            _lines(ax, series, colors, styles, handles, log2_x=data.options.get("log2_x", True),
                   log_y=data.options.get("log_y", False))  # fmt: skip
        for line in (ln for ln in data.lines if ln.panel == panel):
            _ref_line(ax, line, handles, vertical=bool(data.options.get("forest")))
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel(data.xlabel)
        if mode not in ("verdict", "matrix"):
            ax.set_ylabel(data.ylabel)
            ax.grid(True, which="major", alpha=0.3)
        if data.kind == "speed":
            _pct_axis(ax, data, panel)
        if data.options.get("ratio_y"):
            from matplotlib.ticker import FuncFormatter

            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: ratio_text(v)))
    if not panels:
        axes[0].text(0.5, 0.5, "nothing to plot", ha="center", va="center")
        axes[0].set_axis_off()
    fig.suptitle(data.title, fontsize=12)
    if handles or data.notes:
        # The notes ride as the legend's title so the layout leaves room for them.
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncols=max(1, min(len(handles), 5, int(fig.get_figwidth() / 2.3))),
                   fontsize=9, frameon=False,
                   title="  ".join(data.notes) or None, title_fontsize=8)  # fmt: skip
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _lines(ax, series: list[Series], colors, styles, handles, log2_x: bool, log_y: bool) -> None:
    for s in series:
        ls, marker = styles.get(s.style_key, ("-", "o"))
        h = ax.errorbar(s.x, s.y, yerr=_err(s), color=colors[s.color_key or s.label],
                        linestyle=ls, marker=marker, markersize=4, capsize=3, linewidth=1.5,
                        elinewidth=1)  # fmt: skip
        handles.setdefault(s.label, h)
    xs = [x for s in series for x in s.x]
    if log2_x and xs:
        _log2_x(ax, xs)
    if log_y:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)


def _err(s: Series) -> list[list[float]] | None:
    """Error bar lengths below and above each point, from its low..high interval."""
    if not (s.low and s.high):
        return None
    below = [max(0.0, v - lo) if lo is not None else 0.0 for v, lo in zip(s.y, s.low, strict=True)]
    above = [max(0.0, hi - v) if hi is not None else 0.0 for v, hi in zip(s.y, s.high, strict=True)]
    return [below, above]


def _bars(ax, series: list[Series], colors, handles) -> None:
    cats = sorted({x for s in series for x in s.x})
    variants = list(dict.fromkeys(s.style_key for s in series))
    hatches = {v: ("", "//", "..", "xx")[i % 4] for i, v in enumerate(variants)}
    width = 0.8 / max(len(series), 1)
    for i, s in enumerate(series):
        pts = s.points()
        xs = [c + (i - (len(series) - 1) / 2) * width for c in range(len(cats)) if cats[c] in pts]
        ys = [pts[c] for c in cats if c in pts]
        # Bars grow from 1 (no change): a slowdown points down, and on a log axis 2x and 0.5x
        # are the same length.
        h = ax.bar(xs, [y - 1 for y in ys], bottom=1, width=width * 0.95,
                   color=colors[s.color_key or s.label], hatch=hatches.get(s.style_key),
                   edgecolor="white", linewidth=0.5)  # fmt: skip
        if len(cats) * len(series) <= 16:
            ax.bar_label(h, labels=[ratio_text(y) for y in ys], fontsize=7, padding=1)
        handles.setdefault(s.label, h)
    ax.set_xticks(range(len(cats)))
    ax.set_xticklabels([_pow2_label(c) if isinstance(c, (int, float)) else str(c) for c in cats])
    _ratio_axis(ax, [y for s in series for y in s.y] + [1.0])


def _verdict_grid(ax, series: list[Series], handles, sweep: bool) -> None:
    """One row per implementation, one coloured cell per point (a scale 2^k or a distribution)."""
    from matplotlib.patches import Patch

    cols = sorted({x for s in series for x in s.x}) if sweep else list(
        dict.fromkeys(x for s in series for x in s.x))  # fmt: skip
    at = {c: i for i, c in enumerate(cols)}
    for row, s in enumerate(series):
        for x, mark, text in zip(s.x, s.marks, s.texts if not sweep else [""] * len(s.x),
                                 strict=True):  # fmt: skip
            ax.add_patch(_cell(at[x], row, VERDICT_COLORS.get(mark, "#d9d9d9")))
            if text:
                ax.text(at[x], row, text, ha="center", va="center", fontsize=7)
    ax.set_xlim(-0.5, len(cols) - 0.5)
    ax.set_ylim(len(series) - 0.5, -0.5)
    ax.set_yticks(range(len(series)))
    labels = [f"{s.label}\n{s.texts[0]}" if sweep and s.texts else s.label for s in series]
    ax.set_yticklabels(labels, fontsize=8)
    if sweep:
        step = max(1, len(cols) // 10)
        ax.set_xticks(range(0, len(cols), step))
        ax.set_xticklabels([f"$2^{{{c}}}$" for c in cols[::step]])
    else:
        ax.set_xticks(range(len(cols)))
        ax.set_xticklabels(cols, rotation=35, ha="right", fontsize=8)
    ax.grid(False)
    for v, color in VERDICT_COLORS.items():
        handles.setdefault(v if v != "skipped" else "not run", Patch(color=color))


def _cell(x: float, y: float, color: str):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.48, y - 0.45), 0.96, 0.9, color=color, linewidth=0)


def _sweep_lines(ax, series: list[Series], colors, styles, handles) -> None:
    """Error against scale, a marker per point coloured by its verdict."""
    for s in series:
        ls, marker = styles.get(s.style_key, ("-", "o"))
        xs = [2.0**k for k in s.x]
        (h,) = ax.plot(xs, s.y, color=colors[s.color_key or s.label], linestyle=ls, linewidth=1.3)
        ax.scatter(xs, s.y, c=[VERDICT_COLORS.get(m, "#d9d9d9") for m in s.marks], marker=marker,
                   s=18, zorder=3, edgecolors="none")  # fmt: skip
        handles.setdefault(s.label, h)
    from matplotlib.lines import Line2D

    for v in ("PASS", "WARN", "FAIL"):
        handles.setdefault(v, Line2D([], [], color=VERDICT_COLORS[v], marker="o", linestyle=""))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")


def _forest(ax, series: list[Series], colors, handles, options: dict[str, Any]) -> None:
    """Horizontal intervals, one case per line (compare)."""
    labels = [c for s in series for c in s.x]
    order = {c: i for i, c in enumerate(labels)}
    for s in series:
        ys = [order[c] for c in s.x]
        h = ax.errorbar(s.y, ys, xerr=_err(s), fmt="o", color=colors[s.color_key or s.label],
                        capsize=3, markersize=4)  # fmt: skip
        handles.setdefault(s.label, h)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_ylim(len(labels) - 0.4, -0.6)
    ends = [v for s in series for v in (*s.low, *s.high, *s.y)]
    _ratio_axis(ax, [*ends, 1.0], axis="x")


def _ref_line(ax, line: Line, handles, vertical: bool = False) -> None:
    span = ax.axvspan if vertical else ax.axhspan
    rule = ax.axvline if vertical else ax.axhline
    if line.style == "band":
        h = span(line.y - line.width, line.y + line.width, color="#999999", alpha=0.18, lw=0)
    elif line.style == "unity":
        h = rule(line.y, color="#444444", linestyle="-", linewidth=1)
    else:
        h = rule(line.y, color="black", linestyle="--", linewidth=1.3)
        if not vertical:
            ax.set_ylim(top=max(ax.get_ylim()[1], line.y * 1.12))
    handles.setdefault(line.label if line.style != "limit" else _limit_label(line), h)


def _limit_label(line: Line) -> str:
    return line.label.split(" (")[0] if "(" in line.label else line.label


def _pct_axis(ax, data: PlotData, panel: str) -> None:
    """A right-hand axis in % of the panel's copy bandwidth, so both readings are on the plot."""
    limit = next((ln for ln in data.lines if ln.panel == panel and ln.style == "limit"), None)
    if limit is None:
        return
    ref = limit.y
    sec = ax.secondary_yaxis("right", functions=(lambda v: 100 * v / ref, lambda p: p * ref / 100))
    sec.set_ylabel(f"% of copy bandwidth ({gbps_text(ref)})")
