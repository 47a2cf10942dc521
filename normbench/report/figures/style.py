"""The figures' shared look: panels on one canvas, a colour per backend and a line style per
variant, log2 axes for hidden sizes and ratios, reference lines, and one legend under the
panels whose title carries the notes."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from normbench.canvas import new_figure

BACKEND_COLORS = {
    "eager": "#1f77b4", "composite": "#ff7f0e", "torchscript": "#2ca02c", "compile": "#d62728",
    "triton": "#9467bd", "liger": "#8c564b", "apex": "#e377c2", "quack": "#17becf",
}  # fmt: skip
SPARE_COLORS = ("#bcbd22", "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5")
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")
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
    fig.suptitle(title, fontsize=12)
    if handles or notes:
        # About 15 characters of 8-point text to the inch: wrapped, a long note is not cut off.
        text = textwrap.fill("  ".join(notes), width=int(fig.get_figwidth() * 15)) or None
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncols=max(1, min(len(handles), 5, int(fig.get_figwidth() / 2.3))),
                   fontsize=9, frameon=False, title=text, title_fontsize=8)  # fmt: skip
    return fig


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
