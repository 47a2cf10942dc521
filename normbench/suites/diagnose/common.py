"""Types every probe shares: the run context, a probe's outcome, small helpers. The result
(ProbeResult) and its Verdict are in normbench.results.diagnose."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from normbench.results.diagnose import VERDICTS, Number, ProbeResult, Verdict, verdict_of

__all__ = [
    "VERDICTS", "Number", "Outcome", "ProbeContext", "ProbeResult", "Progress", "Verdict", "fmt",
    "loglog_slope", "pick",
]  # fmt: skip

Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class ProbeContext:
    """What a probe run gets: the user's options, already validated by `run_diagnose`.

    `depths` / `norms` are None when the user left them out: each probe then uses its own defaults
    (those the claim needs). `report(label, fraction)` moves the progress bar; fraction is this
    probe's own completion in [0, 1].
    """

    quick: bool = False
    seed: int = 0
    device: str = "cpu"
    depths: tuple[int, ...] | None = None
    norms: tuple[str, ...] | None = None
    plot_dir: Path | None = None
    plot_stem: str = ""  # the run's report name: its figures are <stem>.<probe>.png beside them
    progress: Progress | None = field(default=None, compare=False)

    def figure_path(self, name: str) -> Path | None:
        """Where the probe's figure `name` goes; None when no figure was asked for."""
        if self.plot_dir is None:
            return None
        return self.plot_dir / (f"{self.plot_stem}.{name}.png" if self.plot_stem else f"{name}.png")

    def report(self, label: str, fraction: float) -> None:
        if self.progress is not None:
            self.progress(label, min(1.0, max(0.0, fraction)))

    def variants(self, default: Sequence[str]) -> list[str]:
        return list(self.norms) if self.norms else list(default)

    def depth_list(self, default: Sequence[int]) -> list[int]:
        return sorted(set(self.depths)) if self.depths else list(default)

    def train_depth(self, default: int) -> int:
        """Training probes train one depth: the first one the user asked for, else their default."""
        return self.depths[0] if self.depths else default


@dataclass(frozen=True)
class Outcome:
    """What a probe's run function returns; the runner adds name, claim, source and seconds to
    make the ProbeResult."""

    verdict: Verdict
    numbers: dict[str, Number]
    threshold: str
    caveat: str
    summary: str
    figure: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", verdict_of(self.verdict))


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log(y) against log(x); NaN if any y is not positive and finite."""
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError("loglog_slope needs two or more (x, y) pairs")
    if not all(math.isfinite(y) and y > 0 for y in ys):
        return math.nan
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sxx


def pick(keys: Sequence[str], placement: str) -> str | None:
    """The variant of `placement` to judge by: its layernorm one if present, else the first."""
    matches = [k for k in keys if k.split("-")[0] == placement]
    preferred = f"{placement}-layernorm"
    if preferred in matches:
        return preferred
    return matches[0] if matches else None


def fmt(x: float, digits: int = 3) -> str:
    """Compact number for summaries: 3 significant digits, 'nan' kept readable."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:.{digits}g}"
