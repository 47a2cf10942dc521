"""What every figure reads: the run's tidy frame and the few facts about the run that are not rows
(each device's environment, the config). No matplotlib here: choosing the points is pandas."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from normbench.results import Run

MODE_ORDER = {"fwd": 0, "bwd": 1, "fwd+bwd": 2}
DTYPE_ORDER = {"fp32": 0, "bf16": 1, "fp16": 2, "fp64": 3}


@dataclass(frozen=True)
class Context:
    """The run around the frame: its suite, each device's environment by label (in the order
    the devices were merged) and its config."""

    suite: str
    envs: Mapping[str, Mapping[str, Any]]
    config: Mapping[str, Any]

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(self.envs)

    @property
    def multi(self) -> bool:
        """A run merged from several devices: panels are named after their device."""
        return len(self.envs) > 1

    def panel(self, device: str, *parts: str) -> str:
        """A panel's title: its device (when there are several), then its parts, by ' | '."""
        return " | ".join(p for p in (device if self.multi else "", *parts) if p)

    def title(self, what: str) -> str:
        names = self.devices
        return f"normbench {self.suite}: {what}" + (f" on {names[0]}" if len(names) == 1 else "")

    def env(self, device: str) -> Mapping[str, Any]:
        return self.envs.get(device, {})


def plot_input(run: Run) -> tuple[pd.DataFrame, Context]:
    """`to_frame(run)` with each row's device label (a plain run's rows get its one device) and
    its row count M = batch * seq * heads, and the run's Context."""
    import pandas as pd

    from normbench.report.merge import devices
    from normbench.results import to_frame

    frame = to_frame(run)
    envs = devices(run)
    if len(envs) == 1:
        frame["device"] = frame["device"].where(frame["device"].astype(bool), next(iter(envs)))
    present = set(frame["device"])
    envs = {label: env for label, env in envs.items() if label in present} or envs
    dims = {k: pd.to_numeric(frame[k], errors="coerce") for k in ("batch", "seq", "heads", "dim")}
    frame["dim"] = dims["dim"]
    frame["rows"] = dims["batch"] * dims["seq"] * dims["heads"].fillna(1)
    return frame, Context(run.suite, envs, dict(run.config))


def column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A detail column, or a column of gaps when no row of this run has it."""
    import pandas as pd

    return frame[name] if name in frame else pd.Series(None, index=frame.index, dtype=object)


def ok_points(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The rows of `metric` that have a value and a shape."""
    keep = (frame["metric"] == metric) & (frame["status"] == "ok")
    keep &= frame["value"].notna() & frame["dim"].notna()
    return frame[keep].copy()


def not_plotted(frame: pd.DataFrame, metric: str = "time") -> tuple[str, ...]:
    """A note on the cases that have no point, by status ('3 skipped, 1 mismatch')."""
    rows = frame[(frame["metric"] == metric) & (frame["status"] != "ok")]
    counts = rows["status"].value_counts(sort=False)
    if counts.empty:
        return ()
    what = ", ".join(f"{n} {s}" for s, n in counts.items())
    return (f"Not plotted: {what} (the table says why).",)


def series_labels(frame: pd.DataFrame) -> pd.Series:
    """A line's name: the backend, or 'variant / backend' when the frame holds several
    variants."""
    if frame["variant"].nunique() > 1:
        return frame["variant"] + " / " + frame["backend"]
    return frame["backend"].copy()


def device_rank(ctx: Context, device: str) -> int:
    return ctx.devices.index(device) if device in ctx.devices else len(ctx.devices)


def dtype_rank(dtype: str) -> int:
    return DTYPE_ORDER.get(dtype, 9)


def mode_rank(mode: str) -> int:
    return MODE_ORDER.get(mode, 9)
