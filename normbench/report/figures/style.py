"""The figures' shared look: panels on one canvas, a colour per backend, a line style per variant
and a marker per series (so no series is told apart by colour alone), log2 axes for hidden sizes
and ratios, a log axis for bandwidths, points dodged sideways where series would cover each
other, reference lines, one legend under the panels whose title carries the notes, and titles
wrapped to the width they have (docs/benchmarks.md "2026-12-02: plots")."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator

from normbench.canvas import new_figure

BACKEND_COLORS = {
    "eager": "#1f77b4", "composite": "#ff7f0e", "torchscript": "#2ca02c", "compile": "#d62728",
    "triton": "#9467bd", "liger": "#8c564b", "apex": "#e377c2", "quack": "#17becf",
}  # fmt: skip
SPARE_COLORS = ("#bcbd22", "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5")
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*", "h", "p")
LINE_SIZE = (5.4, 3.8)  # inches per panel of lines or bars


def palette(keys: Iterable[str], known: dict[str, str] = BACKEND_COLORS) -> dict[str, str]:
    """A colour per key (in first-seen order): its own colour if it has one, else a spare."""
    out, spare = {}, iter(SPARE_COLORS * 4)
    for k in dict.fromkeys(keys):
        out[k] = known.get(k) or next(spare)
    return out


def line_styles(keys: Iterable[str]) -> dict[str, tuple[str, str]]:
    """(line style, marker) per key (a variant), in first-seen order."""
    return {
        k: (LINESTYLES[i % len(LINESTYLES)], MARKERS[i % len(MARKERS)])
        for i, k in enumerate(dict.fromkeys(keys))
    }


def series_looks(pts: Any) -> dict[str, tuple[str, str, str]]:
    """(colour, line style, marker) per series `label` of a frame of points: the colour of its
    backend, the line style of its variant and a marker of its own, so two series that share a
    colour (or sit on the same spot) still differ in shape."""
    colors = palette(pts.backend)
    styles = line_styles(pts.variant)
    firsts = pts.drop_duplicates("label")
    return {
        r.label: (colors[r.backend], styles[r.variant][0], MARKERS[i % len(MARKERS)])
        for i, r in enumerate(firsts.itertuples())
    }


def dodge(n: int, xs: Iterable[float], widest: float = 0.8) -> list[float]:
    """A factor per series that moves its points sideways on a log2 N axis, evenly across at
    most `widest` octaves centred on each N and within 60% of the gap between neighbouring Ns,
    so series with the same N and value sit side by side instead of on top of each other."""
    if n <= 1:
        return [1.0] * n
    ticks = sorted(set(xs))
    gaps = [math.log2(b / a) for a, b in zip(ticks, ticks[1:])]
    octaves = min([widest, *(0.6 * g for g in gaps)])
    return [2.0 ** (i * octaves / (n - 1) - octaves / 2) for i in range(n)]


def log_y(ax: Axes) -> None:
    """A log y axis of plain numbers (one outlier no longer flattens the rest): ticks at 1, 2
    and 5 x 10^k, or at every 1..9 x 10^k when the axis spans under 5x, so it has several. Set
    the scale before drawing (limits autoscaled on a linear axis may reach 0); call this last."""
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    subs = (1.0, 2.0, 5.0) if hi >= 5 * lo else tuple(float(i) for i in range(1, 10))
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,g}"))


def panel_grid(n: int, ncols: int, size: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    """A figure of `n` panels (at least one), `ncols` a row, `size` inches each, with room
    below for the legend."""
    n = max(n, 1)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = new_figure(size[0] * ncols, size[1] * nrows + 1.2)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def finish(fig: Figure, title: str, handles: dict[str, Any], notes: Sequence[str] = ()) -> Figure:
    """The title above, and below one legend of every labelled artist; the notes ride as the
    legend's title so the layout leaves room for them."""
    top = fig.suptitle(title, fontsize=12)
    if handles or notes:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncols=max(1, min(len(handles), 5, int(fig.get_figwidth() / 2.3))),
                   fontsize=9, frameon=False, title="  ".join(notes) or None,
                   title_fontsize=8)  # fmt: skip
    fit_text(fig, top)
    return fig


def fit_text(fig: Figure, title: Text) -> None:
    """Wrap the figure's title and the legend's notes to the figure's width, and each panel's
    title to its panel's, measured as drawn (a guess at characters per inch clipped long titles
    of one-panel figures on both sides); a legend wider than the figure gets fewer columns."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    room = fig.bbox.width * 0.98
    wrap_to(title, room, renderer)
    for legend in fig.legends:
        wrap_to(legend.get_title(), room, renderer)
        ncols = legend._ncols  # no public getter; set_ncols is public
        while ncols > 1 and legend.get_window_extent(renderer).width > room:
            ncols -= 1
            legend.set_ncols(ncols)
    titled = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    # A panel's width is known once the layout has run (a second of a large figure's time):
    # only when a title is more than 60% of its panel's share before the layout.
    if any(ax.title.get_window_extent(renderer).width > 0.6 * ax.bbox.width for ax in titled):
        fig.draw_without_rendering()
        for ax in titled:
            wrap_to(ax.title, ax.bbox.width, renderer)


def wrap_to(text: Text, width: float, renderer: Any) -> None:
    """Wrap `text` onto as many lines as it needs to be at most `width` pixels wide; a single
    word wider than that gets a smaller font."""
    one = " ".join(text.get_text().split())
    if not one:
        return
    text.set_text(one)
    wide = text.get_window_extent(renderer).width
    chars = int(len(one) * width / wide) if wide > width else 0
    while chars >= 8 and text.get_window_extent(renderer).width > width:
        text.set_text(textwrap.fill(one, chars, break_long_words=False))
        chars = int(chars * 0.9)
    while text.get_window_extent(renderer).width > width and text.get_fontsize() > 5:
        text.set_fontsize(text.get_fontsize() - 0.5)


def pow2_label(n: float) -> str:
    n = int(n)
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024}K"
    return str(n)


def log2_x(ax: Axes, xs: Iterable[float]) -> None:
    """A log2 hidden-size axis with a tick at each size drawn ('1K', '4K')."""
    ticks = sorted(set(xs))
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([pow2_label(t) for t in ticks])
    if len(ticks) == 1:
        ax.set_xlim(ticks[0] / 1.5, ticks[0] * 1.5)


def ratio_text(v: float) -> str:
    return f"{v:.0f}x" if abs(v) >= 100 else f"{v:.3g}x"


def gbps_text(v: float) -> str:
    return f"{v:,.0f} GB/s" if v >= 100 else f"{v:.3g} GB/s"


def ratio_axis(ax: Axes, values: Iterable[float | None], axis: str = "y") -> None:
    """A ratio axis: log2 when the values span more than 4x, so 0.5x and 2x sit symmetric, with
    at most about eight ticks at powers of two."""
    pos = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    target = ax.yaxis if axis == "y" else ax.xaxis
    if pos and max(pos) / min(pos) > 4:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log", base=2)
        lo, hi = math.floor(math.log2(min(pos))), math.ceil(math.log2(max(pos)))
        step = max(1, math.ceil((hi - lo) / 8))
        target.set_major_locator(FixedLocator([2.0**e for e in range(lo, hi + 1, step)]))
        target.set_minor_locator(NullLocator())
    target.set_major_formatter(FuncFormatter(lambda v, _: ratio_text(v)))


def error_lengths(
    y: Sequence[float], low: Sequence[float | None], high: Sequence[float | None]
) -> list[list[float]] | None:
    """Error bar lengths below and above each point, from its low..high interval (None without
    one)."""
    if not any(v is not None and v == v for v in (*low, *high)):
        return None

    def gap(a: float | None, b: float | None) -> float:
        return max(0.0, b - a) if a is not None and b is not None and a == a and b == b else 0.0

    return [[gap(lo, v) for v, lo in zip(y, low)], [gap(v, hi) for v, hi in zip(y, high)]]


def unity(ax: Axes, label: str, handles: dict[str, Any], vertical: bool = False) -> None:
    """The grey rule at 1 (no change, the ideal, eager)."""
    rule = ax.axvline if vertical else ax.axhline
    handles.setdefault(label, rule(1.0, color="#444444", linestyle="-", linewidth=1, label=label))


def limit(ax: Axes, label: str, y: float, handles: dict[str, Any]) -> None:
    """A dashed black ceiling (the copy bandwidth, the WARN limit), with room above it; the
    legend names it without its parenthesis."""
    h = ax.axhline(y, color="black", linestyle="--", linewidth=1.3, label=label)
    ax.set_ylim(top=max(ax.get_ylim()[1], y * 1.12))
    handles.setdefault(label.split(" (")[0], h)


def band(ax: Axes, label: str, center: float, width: float, handles: dict[str, Any]) -> None:
    """A shaded +-width band around `center` across the x axis (the compare margin)."""
    h = ax.axvspan(center - width, center + width, color="#999999", alpha=0.18, lw=0, label=label)
    handles.setdefault(label, h)
