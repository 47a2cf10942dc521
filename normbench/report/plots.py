"""Plots of a run: one function per suite, `plot_<suite>(run, dest) -> PlotData`.

Every plot is built in two steps: `<kind>_data(run)` picks the series out of the run's rows (no
matplotlib), and `normbench.report.draw.draw(data)` turns them into a PNG. The returned PlotData
is exactly what was drawn, so a test can check that each point came from the run. matplotlib is
imported only when a figure is drawn, and only through its Agg canvas (no pyplot, no display, no
global state)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from normbench.results import Row, Run

MODE_ORDER = {"fwd": 0, "bwd": 1, "fwd+bwd": 2}
DTYPE_ORDER = {"fp32": 0, "bf16": 1, "fp16": 2, "fp64": 3}


@dataclass(frozen=True)
class Series:
    """One plotted line (or set of bars): points (x, y) with optional error bars low..high."""

    panel: str
    label: str
    x: tuple[Any, ...]
    y: tuple[float, ...]
    low: tuple[float | None, ...] = ()
    high: tuple[float | None, ...] = ()
    case_ids: tuple[str, ...] = ()
    color_key: str = ""
    style_key: str = ""
    marks: tuple[str, ...] = ()  # a category per point (a verdict), drawn as its colour
    texts: tuple[str, ...] = ()  # a short annotation per point

    def points(self) -> dict[Any, float]:
        return dict(zip(self.x, self.y, strict=True))


@dataclass(frozen=True)
class Line:
    """A horizontal reference line across one panel (copy bandwidth, ratio 1, ...)."""

    panel: str
    label: str
    y: float
    style: str = "limit"  # "limit" (dashed black), "unity" (grey), "band" (shaded +- around 1)
    width: float = 0.0


@dataclass(frozen=True)
class PlotData:
    kind: str
    title: str
    xlabel: str
    ylabel: str
    series: tuple[Series, ...]
    lines: tuple[Line, ...] = ()
    notes: tuple[str, ...] = ()
    panel_order: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    dest: Path | None = None

    @property
    def panels(self) -> list[str]:
        seen = list(self.panel_order) or list(dict.fromkeys(s.panel for s in self.series))
        return [p for p in seen if any(s.panel == p for s in self.series)]

    def get(self, panel: str, label: str) -> Series:
        for s in self.series:
            if s.panel == panel and s.label == label:
                return s
        known = ", ".join(f"{s.panel!r}/{s.label!r}" for s in self.series)
        raise KeyError(f"no series {panel!r}/{label!r}; have {known}")

    def __bool__(self) -> bool:
        return bool(self.series)


# ---------------------------------------------------------------- helpers shared by the suites


def parse_shape(shape: str) -> tuple[int, int] | None:
    """'8x2048x4096' -> (rows M = 8*2048, hidden N = 4096); None if it is not such a shape."""
    try:
        dims = [int(p) for p in shape.split("x")]
    except ValueError:
        return None
    if not dims:
        return None
    return math.prod(dims[:-1]), dims[-1]


def not_plotted(rows: Iterable[Row], metric: str = "time") -> tuple[str, ...]:
    """A note on the cases that have no point, by status ('3 skipped, 1 mismatch')."""
    counts: dict[str, int] = {}
    for r in rows:
        if r.metric == metric and r.status != "ok":
            counts[r.status] = counts.get(r.status, 0) + 1
    if not counts:
        return ()
    what = ", ".join(f"{n} {s}" for s, n in counts.items())
    return (f"Not plotted: {what} (the table says why).",)


def _panel_name(device: str | None, *parts: str) -> str:
    return " | ".join(p for p in (device, *parts) if p)


def _series_label(variant: str, backend: str, variants: int) -> str:
    return f"{variant} / {backend}" if variants > 1 else backend


# ---------------------------------------------------------------- speed


def _speed_points(run: Run, metric: str) -> tuple[list[tuple[str, str, Row, int]], list[str]]:
    """(device, panel, row, N) for each ok row of `metric`, with panels per device, dtype, mode
    and (when the run has several) row count M."""
    from normbench.report.merge import split_by_device

    parts = split_by_device(run)
    multi = len(parts) > 1
    out, panels = [], []
    for label, sub in parts:
        rows = [
            r for r in sub.rows if r.metric == metric and r.status == "ok" and r.value is not None
        ]
        shapes = {r.shape: parse_shape(r.shape) for r in rows}
        ms = {s[0] for s in shapes.values() if s}
        keys = sorted(
            {(r.dtype, r.mode, shapes[r.shape][0]) for r in rows if shapes[r.shape]},
            key=lambda k: (DTYPE_ORDER.get(k[0], 9), k[0], MODE_ORDER.get(k[1], 9), k[1], k[2]),
        )
        for dtype, mode, m in keys:
            panels.append(_panel_name(label if multi else None, f"{dtype} {mode}",
                                      f"M={m}" if len(ms) > 1 else ""))  # fmt: skip
        for r in rows:
            s = shapes[r.shape]
            if s is None:
                continue
            panel = _panel_name(label if multi else None, f"{r.dtype} {r.mode}",
                                f"M={s[0]}" if len(ms) > 1 else "")  # fmt: skip
            out.append((label, panel, r, s[1]))
    return out, panels


def _collect(points, variants: int, with_spread: bool) -> list[Series]:
    grouped: dict[tuple[str, str], list[tuple[int, Row]]] = {}
    meta: dict[tuple[str, str], tuple[str, str]] = {}
    for _, panel, r, n in points:
        key = (panel, _series_label(r.variant, r.backend, variants))
        grouped.setdefault(key, []).append((n, r))
        meta[key] = (r.backend, r.variant)
    out = []
    for (panel, label), pts in grouped.items():
        pts.sort(key=lambda p: p[0])
        out.append(
            Series(
                panel=panel,
                label=label,
                x=tuple(n for n, _ in pts),
                y=tuple(r.value for _, r in pts),
                low=tuple(r.p20 for _, r in pts) if with_spread else (),
                high=tuple(r.p80 for _, r in pts) if with_spread else (),
                case_ids=tuple(r.case_id for _, r in pts),
                color_key=meta[(panel, label)][0],
                style_key=meta[(panel, label)][1],
            )
        )
    return out


def _ncols(points, panels) -> int:
    """One column per mode (rows then read as dtypes), or up to three panels a row."""
    modes = len({r.mode for _, _, r, _ in points})
    return modes if 1 < modes <= 3 else min(3, max(1, len(set(panels))))


def _device_title(run: Run, what: str) -> str:
    from normbench.report.merge import devices

    names = list(devices(run))
    return f"normbench {run.suite}: {what}" + (f" on {names[0]}" if len(names) == 1 else "")


def speed_data(run: Run) -> PlotData:
    """GB/s (ideal bytes / median time) against hidden size N, one line per variant and backend,
    a panel per dtype and mode (and device, and row count M, when there are several), the
    device's measured copy bandwidth as a line, p20-p80 as error bars."""
    from normbench.report.merge import devices

    points, panels = _speed_points(run, "bandwidth")
    variants = len({r.variant for _, _, r, _ in points})
    series = _collect(points, variants, with_spread=True)
    envs = devices(run)
    lines = []
    for panel in dict.fromkeys(panels):
        label = next(d for d, p, _, _ in points if p == panel)
        copy = envs.get(label, {}).get("copy_bandwidth_gbps")
        if isinstance(copy, (int, float)) and copy > 0:
            lines.append(Line(panel, f"measured copy bandwidth ({gbps_text(copy)})", float(copy)))
    return PlotData(
        kind="speed",
        title=_device_title(run, "achieved bandwidth (higher is better)"),
        xlabel="hidden size N",
        ylabel="GB/s (ideal bytes / median time)",
        series=tuple(series),
        lines=tuple(lines),
        notes=not_plotted(run.rows) + ("Error bars: p20-p80 of the samples.",),
        panel_order=tuple(dict.fromkeys(panels)),
        options={"ncols": _ncols(points, panels)},
    )


def speedup_data(run: Run) -> PlotData:
    """Speedup over PyTorch eager (eager time / this time), bars per variant and backend."""
    points, panels = _speed_points(run, "speedup")
    points = [p for p in points if p[2].backend != "eager"]
    variants = len({r.variant for _, _, r, _ in points})
    series = _collect(points, variants, with_spread=False)
    order = tuple(p for p in dict.fromkeys(panels) if any(s.panel == p for s in series))
    return PlotData(
        kind="speedup",
        title=_device_title(run, "speedup over eager (higher is better)"),
        xlabel="hidden size N",
        ylabel="eager time / backend time",
        series=tuple(series),
        lines=tuple(Line(p, "eager (1x)", 1.0, style="unity") for p in order),
        panel_order=order,
        options={"bars": True, "ncols": _ncols(points, order)},
    )


def plot_speed(run: Run, dest: str | Path | IO[bytes]) -> PlotData:
    """Draw the speed figure to `dest` (a .png path or a binary file) and return what was drawn."""
    return _plot(speed_data(run), dest)


def plot_speedup(run: Run, dest: str | Path | IO[bytes]) -> PlotData:
    return _plot(speedup_data(run), dest)


# ---------------------------------------------------------------- stability

VERDICTS = ("PASS", "WARN", "FAIL", "skipped")
# Per-scale error measures a sweep row may carry in `extra`, best first: the error as a multiple
# of the tolerance (PASS <= 1, WARN <= 4: normbench.verdicts), then the error in output ulps.
SWEEP_ERROR_KEYS = (("tol_ratio", "error / tolerance"), ("max_ulp", "max error (output ulps)"))


def _verdict_of(r: Row) -> str:
    if r.status == "skipped":
        return "skipped"
    v = r.extra.get("verdict")
    if v in VERDICTS:
        return str(v)
    rank = int(r.value) if r.value is not None else -1
    return {0: "PASS", 1: "WARN", 2: "FAIL"}.get(rank, "FAIL")


def _impl(r: Row) -> str:
    return f"{r.variant} / {r.backend}"


def stability_data(run: Run) -> PlotData:
    """The dynamic-range sweep: the verdict (or, when the rows carry it, the error) of each
    implementation as its inputs are scaled by 2^k; a panel per dtype and N (and device)."""
    from normbench.report.merge import split_by_device

    parts = split_by_device(run)
    multi = len(parts) > 1
    rows_all = [r for _, sub in parts for r in sub.rows if r.metric == "sweep_verdict"]
    key, ylabel = next(
        ((k, label) for k, label in SWEEP_ERROR_KEYS
         if rows_all and all(isinstance(r.extra.get(k), (int, float)) or r.status == "skipped"
                             for r in rows_all)),
        (None, "verdict"),
    )  # fmt: skip
    series, panels = [], []
    for label, sub in parts:
        safe = {
            (r.variant, r.backend, r.dtype, r.extra.get("dim")): (
                r.extra.get("low_k"), r.extra.get("high_k"))
            for r in sub.rows
            if r.metric == "safe_scale_max" and r.status == "ok"
        }  # fmt: skip
        grouped: dict[tuple[str, str], list[Row]] = {}
        for r in sub.rows:
            if r.metric != "sweep_verdict" or not isinstance(r.extra.get("k"), int):
                continue
            panel = _panel_name(label if multi else None, r.dtype, f"N={r.extra.get('dim', '?')}")
            grouped.setdefault((panel, _impl(r)), []).append(r)
            panels.append(panel)
        for (panel, impl), rows in grouped.items():
            rows.sort(key=lambda r: r.extra["k"])
            r0 = rows[0]
            lo, hi = safe.get((r0.variant, r0.backend, r0.dtype, r0.extra.get("dim")), (None, None))
            span = "no scale passes" if lo is None and hi is None else f"PASS 2^{lo}..2^{hi}"
            ys = tuple(
                (float(r.extra[key]) if key and r.status != "skipped" else
                 float(r.value) if r.value is not None else math.nan)
                for r in rows
            )  # fmt: skip
            series.append(
                Series(
                    panel=panel,
                    label=impl,
                    x=tuple(r.extra["k"] for r in rows),
                    y=ys,
                    case_ids=tuple(r.case_id for r in rows),
                    color_key=r0.backend,
                    style_key=r0.variant,
                    marks=tuple(_verdict_of(r) for r in rows),
                    texts=(span,),
                )
            )
    order = _dtype_sorted(panels, -2)
    lines: tuple[Line, ...] = ()
    if key == "tol_ratio":
        lines = tuple(
            ln for p in order for ln in (
                Line(p, "tolerance (PASS at or below)", 1.0, style="unity"),
                Line(p, "WARN limit (FAIL above)", 4.0),
            )
        )  # fmt: skip
    return PlotData(
        kind="stability",
        title="normbench stability: inputs scaled by 2^k "
        + ("(error per scale)" if key else "(verdict per scale)"),
        xlabel="input scale (largest |x| of each row just below 2^k)",
        ylabel=ylabel,
        series=tuple(series),
        lines=lines,
        notes=(
            "Points coloured by verdict; a gap: the scaled input is not representable in the "
            "dtype, or the case does not apply."
            if key
            else "Grey: the scaled input is not representable in the dtype, or not applicable.",
        ),
        panel_order=order,
        options={"mode": "error" if key else "verdict", "ncols": 2},
    )


def stability_matrix_data(run: Run) -> PlotData:
    """The verdict of every implementation on every input distribution (worst over N and
    modes), annotated with the worst error in output ulps; a panel per dtype (and device)."""
    from normbench.report.merge import split_by_device

    parts = split_by_device(run)
    multi = len(parts) > 1
    series, panels = [], []
    rank = {"skipped": -1, "PASS": 0, "WARN": 1, "FAIL": 2}
    for label, sub in parts:
        cells: dict[tuple[str, str], dict[str, Row]] = {}
        for r in sub.rows:
            if r.metric != "verdict" or "dist" not in r.extra:
                continue
            panel = _panel_name(label if multi else None, r.dtype)
            panels.append(panel)
            cell = cells.setdefault((panel, _impl(r)), {})
            dist = str(r.extra["dist"])
            old = cell.get(dist)
            score = (rank[_verdict_of(r)], r.extra.get("max_ulp") or 0.0)
            if old is None or score > (rank[_verdict_of(old)], old.extra.get("max_ulp") or 0.0):
                cell[dist] = r
        dists = list(dict.fromkeys(str(r.extra["dist"]) for r in sub.rows
                                   if r.metric == "verdict" and "dist" in r.extra))  # fmt: skip
        for (panel, impl), cell in cells.items():
            xs = [d for d in dists if d in cell]
            rows = [cell[d] for d in xs]
            series.append(
                Series(
                    panel=panel,
                    label=impl,
                    x=tuple(xs),
                    y=tuple(float(r.value) if r.value is not None else math.nan for r in rows),
                    case_ids=tuple(r.case_id for r in rows),
                    color_key=rows[0].backend,
                    style_key=rows[0].variant,
                    marks=tuple(_verdict_of(r) for r in rows),
                    texts=tuple(_ulp_text(r) for r in rows),
                )
            )
    order = _dtype_sorted(panels, -1)
    return PlotData(
        kind="stability-matrix",
        title="normbench stability: verdict per input distribution (cell: worst error in ulps)",
        xlabel="input distribution",
        ylabel="",
        series=tuple(series),
        notes=("Green PASS, orange WARN, red FAIL, grey not applicable; worst over N and modes.",),
        panel_order=order,
        options={"mode": "matrix", "ncols": 1},
    )


def _dtype_sorted(panels: list[str], at: int) -> tuple[str, ...]:
    """Panels by device (in merge order), then dtype; the dtype is the `at`-th ' | ' part of the
    panel name and the device, when there is one, the part before it."""
    names = list(dict.fromkeys(panels))
    prefixes = list(dict.fromkeys(tuple(p.split(" | ")[: len(p.split(" | ")) + at]) for p in names))

    def key(p: str) -> tuple:
        parts = p.split(" | ")
        prefix = tuple(parts[: len(parts) + at])
        return (prefixes.index(prefix), DTYPE_ORDER.get(parts[at], 9), p)

    return tuple(sorted(names, key=key))


def _ulp_text(r: Row) -> str:
    if r.status == "skipped":
        return "n/a"
    ulp = r.extra.get("max_ulp")
    if not isinstance(ulp, (int, float)) or not math.isfinite(ulp):
        return _verdict_of(r)
    return compact(ulp)


def compact(v: float) -> str:
    """At most four characters: 0.5, 33, 509, 1.5k, 20k, 3M."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= size:
            return f"{v / size:.2g}{suffix}" if abs(v) < 10 * size else f"{v / size:.0f}{suffix}"
    return f"{v:.2g}" if abs(v) < 10 else f"{v:.0f}"


def plot_stability(run: Run, dest: str | Path | IO[bytes]) -> PlotData:
    return _plot(stability_data(run), dest)


def plot_stability_matrix(run: Run, dest: str | Path | IO[bytes]) -> PlotData:
    return _plot(stability_matrix_data(run), dest)


# ---------------------------------------------------------------- compare

COMPARE_ORDER = ("regression", "improvement", "inconclusive", "same")


def compare_data(run: Run) -> PlotData:
    """The ratio of medians new/base per case with its bootstrap 95% CI, coloured by verdict
    (normbench.compare), the +-margin band around 1, and the suite's geometric mean."""
    from normbench.report.merge import split_by_device

    parts = split_by_device(run)
    multi = len(parts) > 1
    series, panels, lines = [], [], []
    for label, sub in parts:
        panel = _panel_name(label if multi else None, "new / base")
        ratios = [r for r in sub.rows if r.metric == "ratio" and r.value is not None]
        by_verdict: dict[str, list[Row]] = {}
        for r in ratios:
            by_verdict.setdefault(str(r.extra.get("verdict", "inconclusive")), []).append(r)
        rank = {v: i for i, v in enumerate(COMPARE_ORDER)}
        for verdict in sorted(by_verdict, key=lambda v: (rank.get(v, len(rank)), v)):
            rows = sorted(by_verdict[verdict], key=lambda r: -(r.value or 0.0))
            series.append(_ratio_series(panel, verdict, rows))
        geo = [r for r in sub.rows if r.metric == "geomean_ratio" and r.value is not None]
        if geo:
            series.append(_ratio_series(panel, "geometric mean", geo, x=("geometric mean",)))
        if ratios or geo:
            panels.append(panel)
            margin = next((r.extra.get("margin") for r in ratios if "margin" in r.extra), None)
            margin = margin if margin is not None else sub.config.get("margin")
            lines.append(Line(panel, "no change (1x)", 1.0, style="unity"))
            if isinstance(margin, (int, float)) and margin > 0:
                lines.append(Line(panel, f"margin +-{margin:.0%}", 1.0, "band", float(margin)))
    unplotted = [r for r in run.rows if r.metric == "ratio" and r.value is None]
    counts: dict[str, int] = {}
    for r in unplotted:
        v = str(r.extra.get("verdict", r.status))
        counts[v] = counts.get(v, 0) + 1
    notes = ("Whiskers: bootstrap 95% CI of the ratio of medians.",)
    if counts:
        what = ", ".join(f"{n} {v}" for v, n in counts.items())
        notes += (f"No ratio (see the table): {what}.",)
    names = run.config.get("labels") or ("base", "new")
    return PlotData(
        kind="compare",
        title=f"normbench compare: median time {names[1]} / {names[0]} per case "
        "(below 1 is faster)",
        xlabel=f"time ratio {names[1]} / {names[0]}",
        ylabel="",
        series=tuple(series),
        lines=tuple(lines),
        notes=notes,
        panel_order=tuple(panels),
        options={"forest": True, "mode": "forest", "ncols": min(2, max(1, len(panels)))},
    )


def _ratio_series(panel: str, label: str, rows: list[Row], x: tuple[str, ...] = ()) -> Series:
    return Series(
        panel=panel,
        label=label,
        x=x or tuple(r.case_id for r in rows),
        y=tuple(float(r.value) for r in rows),  # type: ignore[arg-type]  (rows with a ratio)
        low=tuple(r.ci_low for r in rows),
        high=tuple(r.ci_high for r in rows),
        case_ids=tuple(r.case_id for r in rows),
        color_key=label,
    )


def plot_compare(run: Run, dest: str | Path | IO[bytes]) -> PlotData:
    return _plot(compare_data(run), dest)


# ---------------------------------------------------------------- memory

# The memory suite's rows this plot reads (normbench.suites.memory; value in bytes): saved_bytes
# (what autograd holds for backward), peak_fwd_bytes (peak of a training forward) and peak_bytes
# (peak of the case's mode), each with its ideal in extra["ideal_bytes"] or as a row
# "ideal_<metric>" of the same case. With every ideal present the plot shows measured / ideal
# (1x = nothing beyond what must exist), else MiB.
MEMORY_METRICS = (
    ("saved_bytes", "saved for backward"),
    ("peak_fwd_bytes", "peak, training forward"),
    ("peak_bytes", "peak"),
)
# What a training forward saves and peaks at does not depend on the case's mode: one panel per
# dtype, one point per shape, for these.
MODE_FREE = ("saved_bytes", "peak_fwd_bytes")


def _ideal(r: Row, by_key: dict[tuple[str, str], Row]) -> float | None:
    v = r.extra.get("ideal_bytes")
    if not isinstance(v, (int, float)):
        other = by_key.get((r.case_id, f"ideal_{r.metric}"))
        v = other.value if other is not None else None
    return float(v) if isinstance(v, (int, float)) and v > 0 else None


def memory_data(run: Run) -> PlotData:
    """Measured bytes against the ideal byte model, per hidden size N, a line per variant and
    backend, a panel per measure (saved for backward, peak of a training forward, peak of the
    case's mode), dtype, mode where it matters (and device, and row count M when several)."""
    from normbench.report.merge import split_by_device

    parts = split_by_device(run)
    multi = len(parts) > 1
    picked: list[tuple[str, Row, int, float | None]] = []
    panels: list[str] = []
    for label, sub in parts:
        by_key = {(r.case_id, r.metric): r for r in sub.rows}
        for metric, what in MEMORY_METRICS:
            rows = [r for r in sub.rows if r.metric == metric and r.status == "ok"]
            rows = [r for r in rows if r.value is not None and parse_shape(r.shape)]
            ms = {parse_shape(r.shape)[0] for r in rows}  # type: ignore[index]
            seen: set[tuple[str, ...]] = set()
            for r in sorted(rows, key=lambda r: (DTYPE_ORDER.get(r.dtype, 9),
                                                 MODE_ORDER.get(r.mode, 9))):  # fmt: skip
                m, n = parse_shape(r.shape)  # type: ignore[misc]
                free = metric in MODE_FREE
                key = (r.variant, r.backend, r.dtype, r.shape, "" if free else r.mode)
                if key in seen:
                    continue
                seen.add(key)
                panel = _panel_name(label if multi else None, what,
                                    r.dtype if free else f"{r.dtype} {r.mode}",
                                    f"M={m}" if len(ms) > 1 else "")  # fmt: skip
                panels.append(panel)
                picked.append((panel, r, n, _ideal(r, by_key)))
    ratio = bool(picked) and all(ideal for *_, ideal in picked)
    variants = len({r.variant for _, r, _, _ in picked})
    grouped: dict[tuple[str, str], list[tuple[int, float, Row]]] = {}
    for panel, r, n, ideal in picked:
        y = r.value / ideal if ratio and ideal else r.value / 2**20  # type: ignore[operator]
        grouped.setdefault((panel, _series_label(r.variant, r.backend, variants)), []).append(
            (n, y, r)
        )
    series = []
    for (panel, label), pts in grouped.items():
        pts.sort(key=lambda p: p[0])
        series.append(
            Series(
                panel=panel,
                label=label,
                x=tuple(n for n, _, _ in pts),
                y=tuple(y for _, y, _ in pts),
                case_ids=tuple(r.case_id for _, _, r in pts),
                color_key=pts[0][2].backend,
                style_key=pts[0][2].variant,
            )
        )
    order = tuple(dict.fromkeys(panels))
    return PlotData(
        kind="memory",
        title=_device_title(run, "memory against the ideal byte model (lower is better)"),
        xlabel="hidden size N",
        ylabel="measured / ideal bytes" if ratio else "MiB",
        series=tuple(series),
        lines=tuple(Line(p, "ideal (1x)", 1.0, style="unity") for p in order) if ratio else (),
        notes=not_plotted(run.rows, "saved_bytes"),
        panel_order=order,
        options={"ncols": min(4, max(1, len(order))), "log_y": not ratio, "ratio_y": ratio},
    )


def plot_memory(run: Run, dest: str | Path | IO[bytes]) -> PlotData:
    return _plot(memory_data(run), dest)


# ---------------------------------------------------------------- registry


# suite -> [(figure name, data function)]; the figure is written as <stem>.<name>.png
FIGURES: dict[str, list[tuple[str, Callable[[Run], PlotData]]]] = {
    # `speed --memory` adds the memory suite's rows to a speed run: its figure comes along.
    "speed": [("speed", speed_data), ("speedup", speedup_data), ("memory", memory_data)],
    "stability": [("stability", stability_data), ("stability-matrix", stability_matrix_data)],
    "compare": [("compare", compare_data)],
    "memory": [("memory", memory_data)],
}


def figures(run: Run) -> list[tuple[str, PlotData]]:
    """The run's figures that have something to show."""
    out = []
    for name, fn in FIGURES.get(run.suite, []):
        data = fn(run)
        if data:
            out.append((name, data))
    return out


# ---------------------------------------------------------------- writing


def _plot(data: PlotData, dest: str | Path | IO[bytes]) -> PlotData:
    from normbench.report.draw import draw

    png = draw(data)
    if hasattr(dest, "write"):
        dest.write(png)  # type: ignore[union-attr]
        return data
    from normbench.results import atomic_write_text

    path = Path(dest)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, png, overwrite=True)
    return replace(data, dest=path)


def gbps_text(v: float) -> str:
    return f"{v:,.0f} GB/s" if v >= 100 else f"{v:.3g} GB/s"
