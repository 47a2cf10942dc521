"""PNG figures for the probes where a picture says more than a number (matplotlib, lazy)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def save_figure(
    plot_dir: Path | None, name: str, draw: Callable[[Any], None], *, title: str = ""
) -> Path | None:
    """Draw on one Axes and write `plot_dir/name.png` atomically; None when no plot_dir is set."""
    if plot_dir is None:
        return None
    # The object API (no pyplot) leaves the process's global backend alone and draws with Agg.
    from matplotlib.figure import Figure

    plot_dir = Path(plot_dir)
    plot_dir.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(6.4, 4.2), dpi=110)
    ax = fig.subplots()
    draw(ax)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    dest = plot_dir / f"{name}.png"
    # Write next to the destination, then rename: a reader never sees half a PNG. (A plain open,
    # not mkstemp, so the file gets the usual umask permissions rather than 0600.)
    tmp = plot_dir / f".{name}.{os.getpid()}.png.tmp"
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest
