"""A spy on `normbench ab`'s timing, shared by the CPU and GPU tests of issue 21's finding that
a compiling side's reset made the other side recompile inside its first timed block."""

from __future__ import annotations

from torch._dynamo.utils import counters

import normbench.suites.ab as ab


def graphs_in_first_block(monkeypatch) -> list[int]:
    """Patch ab.time_sides; the list it returns fills, per side of each case, with the number of
    torch.compile graphs made by that side's first timed call (0: warmed up beforehand)."""
    graphs: list[int] = []
    real = ab.time_sides

    def spy(warm, *args, **kwargs):
        for side in warm:
            before = counters["stats"]["unique_graphs"]
            side[0].take(1)
            graphs.append(counters["stats"]["unique_graphs"] - before)
        return real(warm, *args, **kwargs)

    monkeypatch.setattr(ab, "time_sides", spy)
    return graphs
