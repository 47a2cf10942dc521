"""PNG figures for the probes where a picture says more than a number (normbench.canvas: the
reports' resolution and writer, matplotlib imported only when a figure is drawn)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from normbench.canvas import new_figure, save_png


def save_figure(path: Path | None, draw: Callable[[Any], None], *, title: str = "") -> Path | None:
    """Draw on one Axes and write the PNG to `path` atomically (ProbeContext.figure_path);
    None when no figure was asked for."""
    if path is None:
        return None
    fig = new_figure(6.4, 4.2, layout="tight")
    ax = fig.subplots()
    draw(ax)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    return save_png(fig, path)
