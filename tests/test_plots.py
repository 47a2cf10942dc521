"""Plots drawn from small saved runs: the PNG is written and every plotted value is the run's."""

import struct

import pytest

from normbench.report import plots
from normbench.report.merge import merge
from normbench.results import Row, Run, dumps, load_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """(width, height) from the PNG header."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    return struct.unpack(">II", data[16:24])


def assert_png(path):
    import matplotlib.image

    w, h = png_size(path)
    assert w > 300 and h > 200 and path.stat().st_size > 5000
    pixels = matplotlib.image.imread(path)
    assert pixels.std() > 0.05  # not a blank canvas


def srow(backend, n, metric, value, unit, status="ok", p20=None, p80=None, variant="rmsnorm",
         dtype="bf16", mode="fwd", shape=None):  # fmt: skip
    shape = shape or f"4x512x{n}"
    cid = f"{variant}/{backend}/{dtype}/{shape}/{mode}"
    return Row(cid, "speed", variant, backend, dtype, shape, mode, metric, value, unit,
               status=status, p20=p20, p80=p80)  # fmt: skip


def speed_run(device="cpu: test", copy=40.0, scale=1.0):
    rows = []
    for backend, base in (("eager", 10.0), ("composite", 6.0)):
        for n in (1024, 4096):
            gbps = base * scale * (n / 1024) ** 0.5
            rows.append(srow(backend, n, "time", 1.0 / gbps, "ms", p20=0.9 / gbps, p80=1.1 / gbps))
            rows.append(srow(backend, n, "bandwidth", gbps, "GB/s", p20=gbps * 0.9, p80=gbps * 1.1))
            rows.append(srow(backend, n, "pct_copy_bw", 100 * gbps / copy, "%"))
            if backend != "eager":
                rows.append(srow(backend, n, "speedup", base / 10.0, "x"))
            else:
                rows.append(srow(backend, n, "speedup", 1.0, "x"))
    rows.append(srow("triton", 1024, "time", None, "ms", status="skipped"))
    env = {"device_name": device, "copy_bandwidth_gbps": copy, "torch": "2.13", "threads": 2}
    return Run("speed", env, {}, rows, summary=["one line"])


def test_speed_plot_values_come_from_the_run(tmp_path):
    run = speed_run()
    data = plots.plot_speed(run, tmp_path / "speed.png")
    assert_png(tmp_path / "speed.png")
    assert data.panels == ["bf16 fwd"]
    bw = {(r.backend, int(r.shape.split("x")[-1])): r for r in run.metric("bandwidth")}
    for backend in ("eager", "composite"):
        s = data.get("bf16 fwd", backend)
        assert s.x == (1024, 4096)
        assert s.y == tuple(bw[(backend, n)].value for n in s.x)
        assert s.low == tuple(bw[(backend, n)].p20 for n in s.x)
        assert s.high == tuple(bw[(backend, n)].p80 for n in s.x)
    # The device's measured copy bandwidth is the reference line; skipped triton is not plotted.
    assert [(ln.panel, ln.y) for ln in data.lines] == [("bf16 fwd", 40.0)]
    assert {s.label for s in data.series} == {"eager", "composite"}
    assert any("1 skipped" in n for n in data.notes)


def test_speedup_plot_bars_exclude_eager(tmp_path):
    data = plots.plot_speedup(speed_run(), tmp_path / "speedup.png")
    assert_png(tmp_path / "speedup.png")
    assert [s.label for s in data.series] == ["composite"]
    assert data.get("bf16 fwd", "composite").points() == {1024: 0.6, 4096: 0.6}
    assert data.lines[0].y == 1.0


def test_speed_plot_panels_per_dtype_mode_and_rows(tmp_path):
    run = speed_run()
    extra = [
        srow("eager", 2048, "bandwidth", 7.0, "GB/s", dtype="fp32", mode="bwd"),
        srow("eager", 2048, "bandwidth", 9.0, "GB/s", dtype="fp32", mode="bwd", shape="1x64x2048"),
        srow("eager", 2048, "bandwidth", 5.0, "GB/s", variant="layernorm"),
    ]  # fmt: skip
    run.rows += extra
    data = plots.speed_data(run)
    # Several row counts M: M joins the panel name; two variants: the label names the variant.
    assert data.panels == ["fp32 bwd | M=64", "fp32 bwd | M=2048", "bf16 fwd | M=2048"]
    assert data.get("fp32 bwd | M=64", "rmsnorm / eager").points() == {2048: 9.0}
    assert data.get("fp32 bwd | M=2048", "rmsnorm / eager").points() == {2048: 7.0}
    assert data.get("bf16 fwd | M=2048", "layernorm / eager").points() == {2048: 5.0}


def test_merged_devices_get_their_own_panels_and_bandwidth_lines(tmp_path):
    a = speed_run("NVIDIA H100", copy=3000.0, scale=100)
    b = speed_run("cpu: test", copy=40.0)
    (run,) = merge([a, b], ["h100.json", "cpu.json"])
    data = plots.plot_speed(run, tmp_path / "merged.png")
    assert_png(tmp_path / "merged.png")
    assert data.panels == ["NVIDIA H100 | bf16 fwd", "cpu: test | bf16 fwd"]
    assert {(ln.panel, ln.y) for ln in data.lines} == {
        ("NVIDIA H100 | bf16 fwd", 3000.0),
        ("cpu: test | bf16 fwd", 40.0),
    }
    h100 = data.get("NVIDIA H100 | bf16 fwd", "eager").points()
    assert h100[1024] == pytest.approx(1000.0)


def sweep_rows(backend, dtype, verdicts, ks, dim=1000, errors=None):
    rank = {"PASS": 0, "WARN": 1, "FAIL": 2}
    base = f"rmsnorm/{backend}/{dtype}/1x8x{dim}/fwd+bwd/unit-max"
    rows = []
    for i, (k, v) in enumerate(zip(ks, verdicts, strict=True)):
        extra = {"k": k, "verdict": v, "dim": dim}
        if errors:
            extra["tol_ratio"] = errors[i]
        status = {"skipped": "skipped", "FAIL": "mismatch"}.get(v, "ok")
        rows.append(Row(f"{base}/x2^{k}", "stability", "rmsnorm", backend, dtype, f"1x8x{dim}",
                        "fwd+bwd", "sweep_verdict", rank.get(v), "", status=status,
                        extra=extra))  # fmt: skip
    passing = [k for k, v in zip(ks, verdicts, strict=True) if v == "PASS"]
    info = {"dim": dim, "low_k": min(passing), "high_k": max(passing)}
    rows.append(Row(base, "stability", "rmsnorm", backend, dtype, f"1x8x{dim}", "fwd+bwd",
                    "safe_scale_max", 2.0 ** max(passing), "x", extra=info))  # fmt: skip
    return rows


def verdict_row(backend, dtype, dist, verdict, ulp, status=None):
    rank = {"PASS": 0, "WARN": 1, "FAIL": 2}
    status = status or ("mismatch" if verdict == "FAIL" else "ok")
    extra = {"verdict": verdict, "dist": dist, "dim": 1000, "max_ulp": ulp}
    return Row(f"rmsnorm/{backend}/{dtype}/1x8x1000/fwd+bwd/{dist}", "stability", "rmsnorm",
               backend, dtype, "1x8x1000", "fwd+bwd", "verdict",
               None if status == "skipped" else rank[verdict], "", status=status,
               extra=extra)  # fmt: skip


def stability_run(errors: bool = False):
    ks = (-8, -4, 0, 4, 8)
    rows = [
        verdict_row("eager", "fp16", "normal", "PASS", 0.5),
        verdict_row("eager", "fp16", "large", "FAIL", 2.0e4),
        verdict_row("composite", "fp16", "normal", "WARN", 33.0),
        verdict_row("composite", "fp16", "large", "PASS", 1.0, status="skipped"),
        *sweep_rows("eager", "fp16", ["PASS", "PASS", "PASS", "PASS", "skipped"], ks,
                    errors=[0.1, 0.1, 0.2, 0.3, None] if errors else None),
        *sweep_rows("composite", "fp16", ["WARN", "PASS", "PASS", "FAIL", "skipped"], ks,
                    errors=[2.0, 0.5, 0.5, 9.0, None] if errors else None),
    ]  # fmt: skip
    return Run("stability", {"device_name": "cpu: test"}, {}, rows)


def test_stability_sweep_plot_values_come_from_the_run(tmp_path):
    run = stability_run()
    data = plots.plot_stability(run, tmp_path / "stability.png")
    assert_png(tmp_path / "stability.png")
    assert data.options["mode"] == "verdict"  # the rows carry no per-scale error
    s = data.get("fp16 | N=1000", "rmsnorm / composite")
    assert s.x == (-8, -4, 0, 4, 8)
    assert s.marks == ("WARN", "PASS", "PASS", "FAIL", "skipped")
    assert s.y[:4] == (1.0, 0.0, 0.0, 2.0)
    assert s.texts == ("PASS 2^-4..2^0",)  # from the safe_scale_max row


def test_stability_sweep_plots_the_error_when_rows_carry_it(tmp_path):
    data = plots.plot_stability(stability_run(errors=True), tmp_path / "err.png")
    assert_png(tmp_path / "err.png")
    assert data.options["mode"] == "error" and data.ylabel == "error / tolerance"
    assert data.get("fp16 | N=1000", "rmsnorm / composite").y[:4] == (2.0, 0.5, 0.5, 9.0)
    # The verdict boundaries of normbench.verdicts: PASS <= 1x the tolerance, WARN <= 4x.
    assert sorted(ln.y for ln in data.lines) == [1.0, 4.0]


def test_stability_matrix_plot(tmp_path):
    data = plots.plot_stability_matrix(stability_run(), tmp_path / "matrix.png")
    assert_png(tmp_path / "matrix.png")
    eager = data.get("fp16", "rmsnorm / eager")
    assert eager.x == ("normal", "large")
    assert eager.marks == ("PASS", "FAIL") and eager.texts == ("0.5", "20k")
    assert data.get("fp16", "rmsnorm / composite").marks == ("WARN", "skipped")


def test_figures_skip_empty_plots_and_unknown_suites(tmp_path):
    run = speed_run()
    run.rows = [r for r in run.rows if r.backend == "triton"]  # nothing was timed
    assert plots.figures(run) == []
    assert plots.figures(Run("diagnose", {}, {}, [])) == []
    # A plot function asked directly still writes a readable figure.
    data = plots.plot_speed(run, tmp_path / "empty.png")
    assert not data and png_size(tmp_path / "empty.png")[0] > 0


def test_plot_from_a_saved_file(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(dumps(speed_run()))
    data = plots.plot_speed(load_run(path), tmp_path / "saved.png")
    assert data.get("bf16 fwd", "eager").points()[4096] == pytest.approx(20.0)
    assert data.dest == tmp_path / "saved.png"


def compare_row(case, ratio, lo, hi, verdict, margin=0.05):
    extra = {"verdict": verdict, "margin": margin}
    return Row(case, "compare", "rmsnorm", "eager", "bf16", "4x512x1024", "fwd", "ratio", ratio,
               "x", ci_low=lo, ci_high=hi, extra=extra)  # fmt: skip


def test_compare_plot_ratio_with_ci_per_case(tmp_path):
    rows = [
        compare_row("a", 1.02, 0.99, 1.04, "same"),
        compare_row("b", 1.30, 1.20, 1.41, "regression"),
        compare_row("c", 0.80, 0.75, 0.85, "improvement"),
        compare_row("d", None, None, None, "missing"),
        Row("suite/geomean", "compare", "", "", "", "", "", "geomean_ratio", 1.01, "x",
            ci_low=0.98, ci_high=1.05, n=3),
    ]  # fmt: skip
    run = Run("compare", {"device_name": "cpu"}, {"labels": ["base", "new"]}, rows)
    data = plots.plot_compare(run, tmp_path / "compare.png")
    assert_png(tmp_path / "compare.png")
    # Worst first, as in the table; the case without a ratio is counted in a note, not drawn.
    assert [s.label for s in data.series] == ["regression", "improvement", "same", "geometric mean"]
    reg = data.get("new / base", "regression")
    assert (reg.x, reg.y, reg.low, reg.high) == (("b",), (1.30,), (1.20,), (1.41,))
    assert data.get("new / base", "geometric mean").points() == {"geometric mean": 1.01}
    band = next(ln for ln in data.lines if ln.style == "band")
    assert (band.y, band.width) == (1.0, 0.05)
    assert any("1 missing" in n for n in data.notes)


def test_importing_the_reporters_does_not_import_matplotlib():
    import subprocess
    import sys

    code = ("import sys, normbench.cli, normbench.report.plots, normbench.report.merge; "
            "assert 'matplotlib' not in sys.modules")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)


def mem_row(backend, n, metric, value, ideal=None, dtype="bf16", mode="fwd+bwd"):
    shape = f"4x512x{n}"
    extra = {"ideal_bytes": ideal} if ideal is not None else {}
    return Row(f"rmsnorm/{backend}/{dtype}/{shape}/{mode}", "memory", "rmsnorm", backend, dtype,
               shape, mode, metric, value, "B", extra=extra)  # fmt: skip


def test_memory_plot_saved_bytes_against_the_ideal(tmp_path):
    # The memory suite's rows as plots.MEMORY_METRICS documents them.
    rows = [
        mem_row("eager", 1024, "saved_bytes", 3 * 2**20, ideal=2**20),
        mem_row("eager", 4096, "saved_bytes", 12 * 2**20, ideal=4 * 2**20),
        mem_row("composite", 1024, "saved_bytes", 5 * 2**20, ideal=2**20),
        mem_row("composite", 4096, "saved_bytes", 20 * 2**20, ideal=4 * 2**20),
        mem_row("eager", 1024, "peak_bytes", 8 * 2**20),
        mem_row("eager", 4096, "peak_bytes", 32 * 2**20),
    ]
    for n in (1024, 4096):
        shape = f"4x512x{n}"
        rows.append(Row(f"rmsnorm/eager/bf16/{shape}/fwd+bwd", "memory", "rmsnorm", "eager",
                        "bf16", shape, "fwd+bwd", "ideal_peak_bytes", n * 4096, "B"))  # fmt: skip
    run = Run("memory", {"device_name": "cpu: test"}, {}, rows)
    data = plots.plot_memory(run, tmp_path / "memory.png")
    assert_png(tmp_path / "memory.png")
    assert data.ylabel == "measured / ideal bytes"
    saved = "saved for backward | bf16"
    assert data.get(saved, "eager").points() == {1024: 3.0, 4096: 3.0}
    assert data.get(saved, "composite").points() == {1024: 5.0, 4096: 5.0}
    assert data.get("peak | bf16 fwd+bwd", "eager").points() == {1024: 2.0, 4096: 2.0}
    # Without an ideal for every row, the plot shows MiB instead of a ratio.
    run.rows = rows[:1] + [mem_row("eager", 4096, "saved_bytes", 12 * 2**20)]
    data = plots.memory_data(run)
    assert data.ylabel == "MiB"
    assert data.get(saved, "eager").points() == {1024: 3.0, 4096: 12.0}
