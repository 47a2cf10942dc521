"""Matplotlib figures without pyplot: a Figure on its own Agg canvas, written as PNG.

Every figure normbench draws (the reports' and the diagnose probes') is made here, so all share
one resolution and one way to reach the disk, and none touches pyplot's global state or the
process's backend. matplotlib is imported only when a figure is made, so importing normbench
(or its command line) stays quick."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 110


def new_figure(width: float, height: float, layout: str = "constrained") -> Figure:
    """An empty figure of `width` x `height` inches, drawn by Agg."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write the figure to `path` (replacing it): through a temporary file in the same folder,
    then a rename, so a reader never sees half a PNG. (A plain open, not mkstemp, so the file
    gets the usual umask permissions rather than 0600.)"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(png_bytes(fig))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
