"""Figures drawn from small runs: every drawn point, read back from the Figure's artists, is a row
of the run's tidy frame (to_frame); the PNG is written and not blank. And the figures read: every
title, label and legend inside the canvas, every series visible where they share one N, a log
GB/s axis, CIs on the speedups, verdicts in words and hatches as well as colours
(docs/benchmarks.md "2026-12-02: plots")."""

import gzip
import itertools
import math
import struct

import pytest
from matplotlib.colors import to_hex

from normbench.canvas import png_bytes, save_png
from normbench.report import plots, write_reports
from normbench.report.figures import compare, memory, speed, stability
from normbench.report.figures.data import plot_input
from normbench.report.merge import merge
from normbench.results import Measurement, Run, dumps, load_run, to_frame
from normbench.results.compare import CaseComparison, GeomeanRatio
from normbench.results.memory import IDEAL_OF, MemoryResult
from normbench.results.speed import SpeedResult
from normbench.results.stability import StabilityResult, SweepPointResult, SweepRangeResult
from normbench.variants.base import Shape

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COLORS = {to_hex(c): v for v, c in stability.VERDICT_COLORS.items()}


def assert_png(path):
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    w, h = struct.unpack(">II", data[16:24])
    assert w > 300 and h > 200 and path.stat().st_size > 5000
    assert matplotlib.image.imread(path).std() > 0.05  # not a blank canvas


# ---------------------------------------------------------------- reading a Figure back


def panels(fig):
    """{panel title: Axes} of the visible panels, in drawing order."""
    return {ax.get_title(): ax for ax in fig.axes if ax.get_visible() and ax.get_title()}


def lines(ax):
    """{label: [(x, y), ...]} of the plotted series (error-bar lines and bars)."""
    from matplotlib.container import BarContainer, ErrorbarContainer

    out = {}
    for c in ax.containers:
        if c.get_label().startswith("_"):  # a speedup's CI whiskers: see ci_bars
            continue
        if isinstance(c, ErrorbarContainer):
            out[c.get_label()] = [tuple(p) for p in c.lines[0].get_xydata()]
        elif isinstance(c, BarContainer):  # bars grow from 1: the top is the value
            out[c.get_label()] = [(p.get_x() + p.get_width() / 2, p.get_y() + p.get_height())
                                  for p in c.patches]  # fmt: skip
    for ln in ax.lines:  # plain lines (the stability sweep's error), not the reference rules
        if not ln.get_label().startswith("_") and len(ln.get_xdata()) and not _rule(ln):
            out.setdefault(ln.get_label(), [tuple(p) for p in ln.get_xydata()])
    return out


def _rule(ln):
    """An axhline/axvline: it spans the axes from 0 to 1 in axes coordinates."""
    return list(ln.get_xdata()) == [0, 1] or list(ln.get_ydata()) == [0, 1]


def rules(ax):
    """{label: position} of the reference lines across a panel (axhline/axvline)."""
    out = {}
    for ln in ax.lines:
        if ln.get_label().startswith("_"):  # a series' own line, not a labelled rule
            continue
        if list(ln.get_xdata()) == [0, 1]:
            out[ln.get_label()] = ln.get_ydata()[0]
        elif list(ln.get_ydata()) == [0, 1]:
            out[ln.get_label()] = ln.get_xdata()[0]
    return out


def error_bars(ax, label):
    """[(low, high), ...] of a series' whiskers."""
    c = next(c for c in ax.containers if c.get_label() == label)
    segs = c.lines[2][0].get_segments()
    vertical = segs[0][0][0] == segs[0][1][0]
    return [(s[0][1], s[1][1]) if vertical else (s[0][0], s[1][0]) for s in segs]


def ci_bars(ax, label):
    """[low, high, low, high, ...] of the whiskers drawn on a series' bars, bar by bar."""
    c = next(c for c in ax.containers if c.get_label() == f"_ci {label}")
    return [v for s in c.lines[2][0].get_segments() for v in (s[0][1], s[1][1])]


def snapped(ax, pts):
    """A dodged series' points with each x moved back to the nearest tick (its N)."""
    ticks = list(ax.get_xticks())
    return [(min(ticks, key=lambda t: abs(math.log2(x / t))), y) for x, y in pts]


def cells(ax):
    """{(row, column): verdict} of a verdict grid, from each cell's colour."""
    out = {}
    for p in ax.patches:
        row, col = round(p.get_y() + 0.45), round(p.get_x() + 0.48)
        out[(row, col)] = COLORS[to_hex(p.get_facecolor())]
    return out


def hatches(ax):
    """{(row, column): hatch} of a verdict grid."""
    return {(round(p.get_y() + 0.45), round(p.get_x() + 0.48)): p.get_hatch() or ""
            for p in ax.patches}  # fmt: skip


def notes(fig):
    return " ".join(fig.legends[0].get_title().get_text().split()) if fig.legends else ""


def assert_inside(fig):
    """After a draw, every text of the figure (titles, tick labels, axis labels, the legend and
    its notes) lies inside the canvas, and each panel's title within its panel's width."""
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    texts = [fig._suptitle, *[t for lg in fig.legends for t in (lg.get_title(), *lg.texts)]]
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
        for i, axis in enumerate((ax.xaxis, ax.yaxis)):  # the labels of the ticks in view
            lo, hi = sorted(axis.get_view_interval())
            span = (hi - lo) * 1e-9
            texts += [t for t in axis.get_ticklabels()
                      if lo - span <= t.get_position()[i] <= hi + span]  # fmt: skip
        t = ax.title.get_window_extent(renderer)
        assert t.width <= ax.bbox.width + 1, ax.title.get_text()
    for t in texts:
        if t is None or not t.get_text() or not t.get_visible():
            continue
        e = t.get_window_extent(renderer)
        assert box.x0 - 0.5 <= e.x0 and e.x1 <= box.x1 + 0.5, t.get_text()
        assert box.y0 - 0.5 <= e.y0 and e.y1 <= box.y1 + 0.5, t.get_text()
    for lg in fig.legends:
        e = lg.get_window_extent(renderer)
        assert box.x0 - 0.5 <= e.x0 and e.x1 <= box.x1 + 0.5


def markers_apart(ax, fig):
    """The marker positions of each series in pixels; asserts no two series' markers overlap
    (centres at least a marker apart) and every one is inside its panel."""
    from matplotlib.container import ErrorbarContainer

    fig.draw_without_rendering()
    where = {}
    for c in ax.containers:
        if isinstance(c, ErrorbarContainer) and not c.get_label().startswith("_"):
            line = c.lines[0]
            size = line.get_markersize() * fig.dpi / 72
            where[c.get_label()] = [tuple(ax.transData.transform(p)) for p in line.get_xydata()]
            for x, y in where[c.get_label()]:
                assert ax.bbox.x0 < x < ax.bbox.x1 and ax.bbox.y0 < y < ax.bbox.y1
    for (a, pa), (b, pb) in itertools.combinations(where.items(), 2):
        for p, q in itertools.product(pa, pb):
            assert math.dist(p, q) >= size, (a, b)
    return where


def looks(ax):
    """{label: (colour, line style, marker)} of the plotted series."""
    from matplotlib.container import ErrorbarContainer

    return {c.get_label(): (to_hex(c.lines[0].get_color()), c.lines[0].get_linestyle(),
                            c.lines[0].get_marker())
            for c in ax.containers
            if isinstance(c, ErrorbarContainer) and not c.get_label().startswith("_")}  # fmt: skip


def draw(fn, run):
    return fn(*plot_input(run))


# ---------------------------------------------------------------- speed

SH = {n: Shape(4, 512, n) for n in (1024, 2048, 4096)}


def speed_case(
    backend, n, gbps, variant="rmsnorm", dtype="bf16", mode="fwd", shape=None, speedup=1.0,
    ci=(0.9, 1.2),
):  # fmt: skip
    shape = shape or SH[n]
    ms = (
        Measurement("time", 1.0 / gbps, "ms", p20=0.9 / gbps, p80=1.1 / gbps, n=5),
        Measurement("bandwidth", gbps, "GB/s", p20=gbps * 0.9, p80=gbps * 1.1),
        Measurement("pct_copy_bw", 100 * gbps / 40.0, "%"),
        Measurement("speedup", speedup, "x", ci_low=speedup * ci[0], ci_high=speedup * ci[1]),
    )
    cid = f"{variant}/{backend}/{dtype}/{shape}/{mode}"
    return SpeedResult(cid, variant=variant, backend=backend, dtype=dtype, shape=shape,
                       mode=mode, measurements=ms)  # fmt: skip


def speed_run(device="cpu: test", copy=40.0, scale=1.0):
    results = [
        speed_case(backend, n, base * scale * (n / 1024) ** 0.5, speedup=base / 10.0)
        for backend, base in (("eager", 10.0), ("composite", 6.0))
        for n in (1024, 4096)
    ]
    results.append(SpeedResult(f"rmsnorm/triton/bf16/{SH[1024]}/fwd", variant="rmsnorm",
                               backend="triton", dtype="bf16", shape=SH[1024], mode="fwd",
                               measurements=(Measurement("time", None, "ms", status="skipped",
                                                         note="interpreter"),)))  # fmt: skip
    env = {"device_name": device, "copy_bandwidth_gbps": copy, "torch": "2.13", "threads": 2}
    return Run("speed", env, {}, results)


def frame_points(run, metric):
    """{(backend, N): row} of the frame's ok rows of `metric`."""
    df = to_frame(run)
    df = df[(df.metric == metric) & (df.status == "ok")]
    return {(r.backend, r.dim): r for r in df.itertuples()}


def test_speed_figure_points_are_the_frame_rows(tmp_path):
    run = speed_run()
    fig = draw(speed.bandwidth, run)
    save_png(fig, tmp_path / "speed.png")
    assert_png(tmp_path / "speed.png")
    assert list(panels(fig)) == ["bf16 fwd"]
    ax = panels(fig)["bf16 fwd"]
    rows = frame_points(run, "bandwidth")
    drawn = lines(ax)
    assert set(drawn) == {"eager", "composite"}  # skipped triton is not drawn
    for backend, pts in drawn.items():
        assert [x for x, _ in pts] == [1024, 4096]
        assert [y for _, y in pts] == [rows[(backend, x)].value for x, _ in pts]
        spans = [v for span in error_bars(ax, backend) for v in span]  # p20..p80
        want = [v for x, _ in pts for v in (rows[(backend, x)].p20, rows[(backend, x)].p80)]
        assert spans == pytest.approx(want)
    # The device's measured copy bandwidth is the reference line.
    assert rules(ax) == {"measured copy bandwidth (40 GB/s)": 40.0}
    assert "1 skipped" in notes(fig)


def test_speedup_bars_exclude_eager_and_carry_their_ci():
    fig = draw(speed.speedup, speed_run())
    ax = panels(fig)["bf16 fwd"]
    bars = lines(ax)
    assert list(bars) == ["composite"]
    assert [y for _, y in bars["composite"]] == pytest.approx([0.6, 0.6])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1K", "4K"]
    assert rules(ax) == {"eager (1x)": 1.0}
    # The whiskers are the speedup Measurement's ci_low..ci_high (0.54..0.72 at either N).
    rows = frame_points(speed_run(), "speedup")
    want = [v for n in (1024, 4096) for v in (rows[("composite", n)].ci_low,
                                              rows[("composite", n)].ci_high)]  # fmt: skip
    assert ci_bars(ax, "composite") == pytest.approx(want)
    assert ci_bars(ax, "composite") == pytest.approx([0.54, 0.72] * 2)
    # Labels read as the table does: no "~" where the CI excludes 1x, "~" where it includes it.
    assert [t.get_text() for t in ax.texts] == ["0.6x", "0.6x"]
    run = speed_run()
    run.results = [speed_case("eager", 1024, 10.0), speed_case("apex", 1024, 9.0, speedup=0.95)]
    ax = panels(draw(speed.speedup, run))["bf16 fwd"]
    assert ci_bars(ax, "apex") == pytest.approx([0.855, 1.14])
    assert [t.get_text() for t in ax.texts] == ["~0.95x"]
    assert "95% CI" in notes(ax.figure)


def test_speed_bandwidth_axis_is_log_so_an_outlier_does_not_flatten_the_rest():
    run = speed_run()
    run.results.append(speed_case("compile", 1024, 400.0))  # 40x the others, 10x copy bw
    fig = draw(speed.bandwidth, run)
    ax = panels(fig)["bf16 fwd"]
    assert ax.get_yscale() == "log"
    fig.draw_without_rendering()
    # On the log axis the eager line (10 and 20 GB/s, a factor of 2) spans a visible share of
    # the panel's height (10% under matplotlib 3.9's log limits, 12% under 3.11's); on a
    # linear 0..440 axis it was under 3%.
    (y0, y1), (lo, hi) = [ax.transData.transform((x, y))[1] for x, y in lines(ax)["eager"]], (
        ax.bbox.y0, ax.bbox.y1)  # fmt: skip
    assert (y1 - y0) / (hi - lo) > 0.08
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert labels and all(float(v.replace(",", "")) > 0 for v in labels)  # plain numbers
    assert "log" in ax.get_ylabel()


def test_one_n_dodges_every_series_into_view(tmp_path):
    backends = ("eager", "composite", "torchscript", "compile", "triton")
    results = [speed_case(b, 4096, 5.0, variant=v) for v in ("rmsnorm", "layernorm")
               for b in backends[:5 if v == "rmsnorm" else 4]]  # fmt: skip
    run = Run("speed", {"device_name": "cpu: test", "copy_bandwidth_gbps": 40.0}, {}, results)
    fig = draw(speed.bandwidth, run)  # nine series, the same N, the same GB/s
    save_png(fig, tmp_path / "one-n.png")
    assert_png(tmp_path / "one-n.png")
    ax = panels(fig)["bf16 fwd"]
    where = markers_apart(ax, fig)
    assert len(where) == 9
    # Each series has a marker of its own, and a variant its line style: not colour alone.
    styles = looks(ax)
    assert len({m for _, _, m in styles.values()}) == 9
    assert styles["rmsnorm / eager"][0] == styles["layernorm / eager"][0]
    assert styles["rmsnorm / eager"][1:] != styles["layernorm / eager"][1:]
    # Every point is still at N once the dodge is undone, with its frame value.
    assert {p for pts in lines(ax).values() for p in snapped(ax, pts)} == {(4096, 5.0)}
    assert "side by side" in notes(fig)
    assert "side by side" not in notes(draw(speed.bandwidth, speed_run()))  # two Ns: lines


def test_titles_and_labels_fit_inside_the_figure():
    long = "NVIDIA H100 80GB HBM3 (SXM5, 700 W, driver 570.86.15, MIG off)"
    fig = draw(speed.bandwidth, speed_run(long))  # one panel: the title once ran off both sides
    title = fig._suptitle
    assert long.split()[-1] in " ".join(title.get_text().split())
    assert "\n" in title.get_text()  # wrapped, not shrunk off the canvas
    assert_inside(fig)
    assert_inside(draw(speed.speedup, speed_run(long)))
    # Merged runs name each panel after its device: a long name wraps within its panel.
    (run,) = merge([speed_run(long, copy=3000.0, scale=100), speed_run()], ["a.json", "b.json"])
    fig = draw(speed.bandwidth, run)
    wrapped = [t for t in panels(fig) if "\n" in t]
    assert len(wrapped) == 1 and " ".join(wrapped[0].split()) == f"{long} | bf16 fwd"
    assert_inside(fig)


def test_speed_panels_per_dtype_mode_and_rows():
    run = speed_run()
    run.results += [
        speed_case("eager", 2048, 7.0, dtype="fp32", mode="bwd"),
        speed_case("eager", 2048, 9.0, dtype="fp32", mode="bwd", shape=Shape(1, 64, 2048)),
        speed_case("eager", 2048, 5.0, variant="layernorm"),
    ]
    fig = draw(speed.bandwidth, run)
    # Several row counts M: M joins the panel name; two variants: the label names the variant.
    axes = panels(fig)
    assert list(axes) == ["fp32 bwd | M=64", "fp32 bwd | M=2048", "bf16 fwd | M=2048"]
    assert lines(axes["fp32 bwd | M=64"]) == {"rmsnorm / eager": [(2048, 9.0)]}
    assert lines(axes["fp32 bwd | M=2048"]) == {"rmsnorm / eager": [(2048, 7.0)]}
    assert lines(axes["bf16 fwd | M=2048"])["layernorm / eager"] == [(2048, 5.0)]


def test_merged_devices_get_their_own_panels_and_bandwidth_lines(tmp_path):
    a = speed_run("NVIDIA H100", copy=3000.0, scale=100)
    b = speed_run("cpu: test", copy=40.0)
    (run,) = merge([a, b], ["h100.json", "cpu.json"])
    fig = draw(speed.bandwidth, run)
    save_png(fig, tmp_path / "merged.png")
    assert_png(tmp_path / "merged.png")
    axes = panels(fig)
    assert list(axes) == ["NVIDIA H100 | bf16 fwd", "cpu: test | bf16 fwd"]
    assert list(rules(axes["NVIDIA H100 | bf16 fwd"]).values()) == [3000.0]
    assert list(rules(axes["cpu: test | bf16 fwd"]).values()) == [40.0]
    assert dict(lines(axes["NVIDIA H100 | bf16 fwd"])["eager"])[1024] == pytest.approx(1000.0)


def test_figures_skip_empty_plots_and_unknown_suites():
    run = speed_run()
    run.results = [r for r in run.results if r.backend == "triton"]  # nothing was timed
    assert plots.figures(run) == []
    assert draw(speed.bandwidth, run) is None
    assert plots.figures(Run("diagnose", {}, {}, [])) == []


def test_figures_of_a_saved_file(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(dumps(speed_run()))
    figs = dict(plots.figures(load_run(path)))
    assert list(figs) == ["speed", "speedup"]  # no memory measured: no memory figure
    assert dict(lines(panels(figs["speed"])["bf16 fwd"])["eager"])[4096] == pytest.approx(20.0)
    written = write_reports(load_run(path), tmp_path, (), stem="run", plots=True)
    assert written["speed.png"] == tmp_path / "run.speed.png"
    assert written["speedup.png"].read_bytes()[:8] == PNG_MAGIC
    assert png_bytes(figs["speed"])[:8] == PNG_MAGIC


# ---------------------------------------------------------------- stability

BASE = "rmsnorm/{b}/{d}/1x8x1000/fwd+bwd/unit-max"
RANK = {"PASS": 0, "WARN": 1, "FAIL": 2}
STATUS = {"skipped": "skipped", "FAIL": "mismatch"}
CASE = dict(variant="rmsnorm", dtype="fp16", shape=Shape(1, 8, 1000), mode="fwd+bwd")


def sweep_results(backend, verdicts, ks, errors=None):
    base = BASE.format(b=backend, d="fp16")
    out = [
        SweepPointResult(
            f"{base}/x2^{k}",
            backend=backend,
            **CASE,
            k=k,
            verdict=v,
            tol_ratio=errors[i] if errors else None,
            measurements=(Measurement("sweep_verdict", RANK.get(v), "", STATUS.get(v, "ok")),),
        )  # fmt: skip
        for i, (k, v) in enumerate(zip(ks, verdicts, strict=True))
    ]
    passing = [k for k, v in zip(ks, verdicts, strict=True) if v == "PASS"]
    top = Measurement("safe_scale_max", 2.0 ** max(passing), "x")
    out.append(SweepRangeResult(base, backend=backend, **CASE, low_k=min(passing),
                                high_k=max(passing), measurements=(top,)))  # fmt: skip
    return out


def verdict_result(backend, dist, verdict, ulp, status=None):
    status = status or ("mismatch" if verdict == "FAIL" else "ok")
    value = None if status == "skipped" else RANK[verdict]
    return StabilityResult(f"rmsnorm/{backend}/fp16/1x8x1000/fwd+bwd/{dist}", backend=backend,
                           **CASE, verdict=verdict if status != "skipped" else "skipped",
                           dist=dist, max_ulp=ulp,
                           measurements=(Measurement("verdict", value, "", status),))  # fmt: skip


def stability_run(errors: bool = False):
    ks = (-8, -4, 0, 4, 8)
    results = [
        verdict_result("eager", "normal", "PASS", 0.5),
        verdict_result("eager", "large", "FAIL", 2.0e4),
        verdict_result("composite", "normal", "WARN", 33.0),
        verdict_result("composite", "large", "PASS", 1.0, status="skipped"),
        *sweep_results("eager", ["PASS", "PASS", "PASS", "PASS", "skipped"], ks,
                       errors=[0.1, 0.1, 0.2, 0.3, None] if errors else None),
        *sweep_results("composite", ["WARN", "PASS", "PASS", "FAIL", "skipped"], ks,
                       errors=[2.0, 0.5, 0.5, 9.0, None] if errors else None),
    ]  # fmt: skip
    return Run("stability", {"device_name": "cpu: test"}, {}, results)


def test_stability_sweep_verdicts_come_from_the_frame(tmp_path):
    run = stability_run()
    fig = draw(stability.sweep, run)  # the points carry no per-scale error: the verdict grid
    save_png(fig, tmp_path / "stability.png")
    assert_png(tmp_path / "stability.png")
    ax = panels(fig)["fp16 | N=1000"]
    assert_inside(fig)  # the two-line row labels on the left are not clipped
    grid = cells(ax)
    df = to_frame(run)
    for row, tick in enumerate(ax.get_yticklabels()):
        impl, span = tick.get_text().split("\n")
        backend = impl.split(" / ")[1]
        pts = df[(df.metric == "sweep_verdict") & (df.backend == backend)].sort_values("k")
        assert [grid[(row, col)] for col in range(5)] == list(pts.verdict)
    assert ax.get_yticklabels()[1].get_text() == "rmsnorm / composite\nPASS 2^-4..2^0"
    # Without colour: a letter per cell that ran, and WARN and FAIL hatched.
    letters = [t.get_text() for t in ax.texts]
    assert letters == ["P", "P", "P", "P", "", "W", "P", "P", "F", ""]
    assert hatches(ax)[(1, 0)] == "//" and hatches(ax)[(1, 3)] == "xx"
    assert hatches(ax)[(0, 0)] == "" and "hatched" in notes(fig)
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == [f"$2^{{{k}}}$" for k in (-8, -4, 0, 4, 8)]


def test_stability_sweep_draws_the_error_when_points_carry_it():
    fig = draw(stability.sweep, stability_run(errors=True))
    ax = panels(fig)["fp16 | N=1000"]
    assert ax.get_ylabel() == "error / tolerance"
    drawn = lines(ax)["rmsnorm / composite"]
    assert [x for x, _ in drawn] == [2.0**k for k in (-8, -4, 0, 4, 8)]
    assert [y for _, y in drawn][:4] == [2.0, 0.5, 0.5, 9.0]
    # The verdict boundaries of normbench.verdicts: PASS <= 1x the tolerance, WARN <= 4x.
    assert sorted(rules(ax).values()) == [1.0, 4.0]
    # Each point's marker shape is its verdict's, not only its colour.
    from matplotlib.markers import MarkerStyle

    def shape(marker):
        m = MarkerStyle(marker)
        return m.get_path().transformed(m.get_transform()).vertices.round(6).tolist()

    shapes = {}
    for c in ax.collections:
        verdict = c.get_label().lstrip("_")
        shapes.setdefault(verdict, c.get_paths()[0].vertices.round(6).tolist())
        if verdict == "FAIL":
            assert c.get_offsets().tolist() == [[2.0**4, 9.0]]  # composite at 2^4
    assert {v: shapes[v] == shape(stability.VERDICT_MARKERS[v]) for v in shapes} == {
        "PASS": True, "WARN": True, "FAIL": True, "skipped": True,
    }  # fmt: skip
    assert len({str(shapes[v]) for v in ("PASS", "WARN", "FAIL")}) == 3
    assert_inside(ax.figure)


def test_stability_matrix_cells():
    fig = draw(stability.matrix, stability_run())
    ax = panels(fig)["fp16"]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows == ["rmsnorm / eager", "rmsnorm / composite"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["normal", "large"]
    assert cells(ax) == {(0, 0): "PASS", (0, 1): "FAIL", (1, 0): "WARN", (1, 1): "skipped"}
    # Each cell says its verdict in words over its worst error in ulps; WARN and FAIL hatched.
    assert [t.get_text() for t in ax.texts] == ["PASS\n0.5", "FAIL\n20k", "WARN\n33", "n/a"]
    assert hatches(ax) == {(0, 0): "", (0, 1): "xx", (1, 0): "//", (1, 1): ""}
    assert_inside(ax.figure)


# ---------------------------------------------------------------- compare


def comparison(case, ratio, lo, hi, verdict, status="ok"):
    m = Measurement("ratio", ratio, "x", status, ci_low=lo, ci_high=hi)
    return CaseComparison(case, variant="rmsnorm", backend="eager", dtype="bf16", shape=SH[1024],
                          mode="fwd", verdict=verdict, margin=0.05, measurements=(m,))  # fmt: skip


def test_compare_ratio_with_ci_per_case(tmp_path):
    results = [
        comparison("a", 1.02, 0.99, 1.04, "same"),
        comparison("b", 1.30, 1.20, 1.41, "regression"),
        comparison("c", 0.80, 0.75, 0.85, "improvement"),
        comparison("d", None, None, None, "missing", status="skipped"),
        GeomeanRatio("suite/geomean", value=1.01, ci_low=0.98, ci_high=1.05, n=3),
    ]
    run = Run("compare", {"device_name": "cpu"}, {"labels": ["base", "new"]}, results)
    fig = draw(compare.ratios, run)
    save_png(fig, tmp_path / "compare.png")
    assert_png(tmp_path / "compare.png")
    ax = panels(fig)["new / base"]
    # Worst first, as in the table; the case without a ratio is counted in a note, not drawn.
    drawn = lines(ax)
    assert list(drawn) == ["regression", "improvement", "same", "geometric mean"]
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks == ["b", "c", "a", "geometric mean"]
    assert drawn["regression"] == [(1.30, 0)] and error_bars(ax, "regression") == [(1.20, 1.41)]
    markers = {c.get_label(): c.lines[0].get_marker() for c in ax.containers}
    assert len(set(markers.values())) == 4  # a shape per verdict, not colour alone
    assert drawn["geometric mean"] == [(1.01, 3)]
    assert rules(ax) == {"no change (1x)": 1.0}
    band = next(p for p in ax.patches if p.get_label() == "margin +-5%")
    assert band.get_x() == pytest.approx(0.95) and band.get_width() == pytest.approx(0.1)
    assert "1 missing" in notes(fig)


# ---------------------------------------------------------------- memory


def mem_case(backend, n, saved, ideal=None, peak=None, ideal_peak=None):
    ms = [Measurement("saved_bytes", saved, "B")]
    ms += [Measurement("ideal_saved_bytes", ideal, "B")] if ideal is not None else []
    ms += [Measurement("peak_bytes", peak, "B")] if peak is not None else []
    ms += [Measurement("ideal_peak_bytes", ideal_peak, "B")] if ideal_peak is not None else []
    return MemoryResult(f"rmsnorm/{backend}/bf16/{SH[n]}/fwd+bwd", variant="rmsnorm",
                        backend=backend, dtype="bf16", shape=SH[n], mode="fwd+bwd",
                        measurements=tuple(ms))  # fmt: skip


def test_memory_saved_bytes_against_the_ideal(tmp_path):
    mib = 2**20
    results = [
        mem_case("eager", 1024, 3 * mib, mib, 8 * mib, 1024 * 4096),
        mem_case("eager", 4096, 12 * mib, 4 * mib, 32 * mib, 4096 * 4096),
        mem_case("composite", 1024, 5 * mib, mib),
        mem_case("composite", 4096, 20 * mib, 4 * mib),
    ]
    run = Run("memory", {"device_name": "cpu: test"}, {}, results)
    fig = draw(memory.memory, run)
    save_png(fig, tmp_path / "memory.png")
    assert_png(tmp_path / "memory.png")
    axes = panels(fig)
    assert list(axes) == ["saved for backward | bf16", "peak | bf16 fwd+bwd"]
    assert axes["peak | bf16 fwd+bwd"].get_ylabel() == "measured / ideal bytes"
    ax = axes["saved for backward | bf16"]
    saved = {k: snapped(ax, v) for k, v in lines(ax).items()}
    assert saved == {"eager": [(1024, 3.0), (4096, 3.0)], "composite": [(1024, 5.0), (4096, 5.0)]}
    ax = axes["peak | bf16 fwd+bwd"]
    assert {k: snapped(ax, v) for k, v in lines(ax).items()} == {
        "eager": [(1024, 2.0), (4096, 2.0)]
    }
    assert rules(ax) == {"ideal (1x)": 1.0}
    # Without an ideal for every point, the figure shows MiB instead of a ratio.
    run.results = [mem_case("eager", 1024, 3 * mib, mib), mem_case("eager", 4096, 12 * mib)]
    ax = panels(draw(memory.memory, run))["saved for backward | bf16"]
    assert ax.get_ylabel() == "MiB"
    assert lines(ax) == {"eager": [(1024, 3.0), (4096, 12.0)]}  # one series: not dodged


def test_memory_ten_series_of_equal_values_all_show(tmp_path):
    # As `normbench memory` on CPU: ten implementations, most saving exactly 1x or 2x the ideal.
    mib = 2**20
    impls = [(v, b) for v in ("layernorm", "rmsnorm")
             for b in ("eager", "composite", "torchscript", "compile", "triton")]  # fmt: skip
    results = [
        MemoryResult(f"{v}/{b}/fp32/{SH[n]}/fwd+bwd", variant=v, backend=b, dtype="fp32",
                     shape=SH[n], mode="fwd+bwd", measurements=(
                         Measurement("saved_bytes", (2 if b == "torchscript" else 1) * mib, "B"),
                         Measurement("ideal_saved_bytes", mib, "B")))
        for v, b in impls for n in (1024, 4096)
    ]  # fmt: skip
    run = Run("memory", {"device_name": "cpu: test"}, {}, results)
    fig = draw(memory.memory, run)
    save_png(fig, tmp_path / "memory.png")
    assert_png(tmp_path / "memory.png")
    ax = panels(fig)["saved for backward | fp32"]
    assert len(markers_apart(ax, fig)) == 10  # before: 10 series, 3 distinct markers in view
    assert len({m for _, _, m in looks(ax).values()}) == 10
    drawn = {k: snapped(ax, v) for k, v in lines(ax).items()}
    assert drawn["rmsnorm / torchscript"] == [(1024, 2.0), (4096, 2.0)]
    assert drawn["layernorm / triton"] == [(1024, 1.0), (4096, 1.0)]
    assert_inside(fig)


# ---------------------------------------------------------------- real version-1 runs


@pytest.fixture
def v1(tmp_path):
    from pathlib import Path

    def load(name):
        path = tmp_path / f"{name}.json"
        data = Path(__file__).parent / "data" / "v1" / f"{name}.json.gz"
        with gzip.open(data, "rt") as fh:
            path.write_text(fh.read())
        return load_run(path)

    return load


def test_every_point_of_a_version_1_run_is_a_frame_row(v1):
    run = v1("speed")
    df = to_frame(run)
    figs = dict(plots.figures(run))
    assert list(figs) == ["speed", "speedup"]
    bandwidth = set(zip(df.dim[df.metric == "bandwidth"], df.value[df.metric == "bandwidth"]))
    speedups = set(df.value[df.metric == "speedup"].round(12))
    drawn = [p for ax in panels(figs["speed"]).values() for pts in lines(ax).values() for p in pts]
    assert drawn and set(drawn) <= bandwidth
    bars = [p for ax in panels(figs["speedup"]).values() for pts in lines(ax).values() for p in pts]
    assert bars and {round(y, 12) for _, y in bars} <= speedups

    run = v1("memory")
    df = to_frame(run)
    value = df.set_index(["case_id", "metric"]).value
    ratios = {
        (dim, round(value[(case, m)] / value[(case, ideal)], 12))
        for case, dim in zip(df.case_id, df.dim)
        for m, ideal in IDEAL_OF.items()
    }
    ((_, fig),) = plots.figures(run)
    drawn = [p for ax in panels(fig).values() for pts in lines(ax).values()
             for p in snapped(ax, pts)]  # fmt: skip
    assert drawn and {(x, round(y, 12)) for x, y in drawn} <= ratios


def test_version_1_stability_and_compare_figures(v1):
    run = v1("stability")
    assert [n for n, _ in plots.figures(run)] == ["stability-matrix"]  # it ran no sweep
    ax = panels(draw(stability.matrix, run))["fp16"]
    df = to_frame(run)
    verdicts = df[df.metric == "verdict"]
    assert len(ax.get_yticklabels()) == len(set(zip(verdicts.variant, verdicts.backend)))
    assert len(cells(ax)) == len(verdicts)  # one N, one mode: a cell per case
    assert set(cells(ax).values()) == set(verdicts.verdict)

    cmp = v1("compare")
    ax = panels(draw(compare.ratios, cmp))["new / base"]
    df = to_frame(cmp)
    ratios = df[(df.metric == "ratio") & df.value.notna()]
    drawn = {tick.get_text(): x for tick, (x, _) in zip(
        ax.get_yticklabels(), [p for pts in lines(ax).values() for p in pts])}  # fmt: skip
    assert drawn["geometric mean"] == df[df.metric == "geomean_ratio"].value.iloc[0]
    assert {k: v for k, v in drawn.items() if k != "geometric mean"} == dict(
        zip(ratios.case_id, ratios.value)
    )


def test_importing_the_reporters_does_not_import_matplotlib():
    import subprocess
    import sys

    code = ("import sys, normbench.cli, normbench.report.plots, normbench.report.merge, "
            "normbench.report.figures.data, normbench.canvas, normbench.suites.diagnose.plotting; "
            "assert 'matplotlib' not in sys.modules")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)
