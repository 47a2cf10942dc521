"""A run's figures: `figures(run)` draws each figure its suite has (normbench.report.figures, one
module per family) from the run's tidy frame, and returns the ones with something to show.

Every figure reads `to_frame(run)` (through `figures.data.plot_input`), never the typed results
or a shape string; it is a matplotlib Figure on its own Agg canvas (no pyplot, no global state),
written as PNG by normbench.canvas. matplotlib is imported only when a figure is drawn."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from normbench.results import Run

# suite -> (figure name, family module, function); the figure is written as <stem>.<name>.png.
FIGURES: dict[str, tuple[tuple[str, str, str], ...]] = {
    # `speed --memory` adds the memory measurements to a speed run: its figure comes along.
    "speed": (("speed", "speed", "bandwidth"), ("speedup", "speed", "speedup"),
              ("memory", "memory", "memory")),
    "stability": (("stability", "stability", "sweep"),
                  ("stability-matrix", "stability", "matrix")),
    "compare": (("compare", "compare", "ratios"),),
    "memory": (("memory", "memory", "memory"),),
}  # fmt: skip


def figures(run: Run) -> list[tuple[str, Figure]]:
    """(name, figure) for each of the suite's figures that has something to show."""
    specs = FIGURES.get(run.suite, ())
    if not specs:
        return []
    from normbench.report.figures import compare, memory, speed, stability
    from normbench.report.figures.data import plot_input

    families = {"speed": speed, "memory": memory, "stability": stability, "compare": compare}
    frame, ctx = plot_input(run)
    out = []
    for name, family, function in specs:
        fig = getattr(families[family], function)(frame, ctx)
        if fig is not None:
            out.append((name, fig))
    return out
