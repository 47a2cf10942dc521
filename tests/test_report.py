"""`normbench report`: saved runs rendered again without measuring, merged across machines; and
`--plot` on a suite."""

import io
import json

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from normbench.cli import app
from normbench.report import console, write_reports
from normbench.report.merge import merge, read_runs
from normbench.report.tables import tables
from normbench.results import Row, Run, dumps, load_run

runner = CliRunner()
SPEED = ["speed", "--variant", "rmsnorm,layernorm", "--backend", "eager,composite",
         "--dtype", "fp32", "--dim", "64", "--batch", "2", "--seq", "8",
         "--time-budget", "0.05", "--quick"]  # fmt: skip


def table_part(output: str) -> str:
    """What the console printed before the list of written files (the transient progress bar of
    a suite leaves a blank line above it)."""
    return output.split("Reports: ")[0].lstrip("\n")


@pytest.fixture(scope="module")
def speed_out(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("COLUMNS", "200")  # one console width for every invocation below
    out = tmp_path_factory.mktemp("speed")
    result = runner.invoke(app, [*SPEED, "--out", str(out), "--plot"])
    assert result.exit_code == 0, result.output
    yield result, out
    mp.undo()


@pytest.fixture(autouse=True)
def _width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")


def test_speed_plot_writes_pngs_beside_the_reports_and_markdown_links_them(speed_out):
    _, out = speed_out
    names = sorted(p.name for p in out.iterdir())
    stem = next(p.stem for p in out.glob("*.json"))
    assert names == sorted(f"{stem}.{ext}" for ext in ("csv", "md", "json", "speed.png",
                                                        "speedup.png"))  # fmt: skip
    md = (out / f"{stem}.md").read_text()
    assert f"![speed]({stem}.speed.png)" in md and f"![speedup]({stem}.speedup.png)" in md
    assert (out / f"{stem}.speed.png").read_bytes()[:4] == b"\x89PNG"


def test_report_reproduces_the_speed_table(speed_out, tmp_path):
    result, out = speed_out
    saved = next(out.glob("*.json"))
    again = runner.invoke(app, ["report", str(saved), "--format", "none"])
    assert again.exit_code == 0, again.output
    assert table_part(again.output) == table_part(result.output)
    assert "RMSNorm vs LayerNorm" in again.output
    # And the library: the loaded run renders to the same string on a fixed-width console.
    buf = io.StringIO()
    console.render(load_run(saved), Console(file=buf, width=200))
    assert buf.getvalue() == table_part(again.output)


def test_report_writes_markdown_html_and_plots_and_never_overwrites(speed_out, tmp_path):
    _, out = speed_out
    saved = next(out.glob("*.json"))
    args = ["report", str(saved), "--plot", "--out", str(tmp_path)]
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, args).exit_code == 0
    stem = f"{saved.stem}-report"
    names = {p.name for p in tmp_path.iterdir()}
    for s in (stem, f"{stem}-2"):
        assert {f"{s}.md", f"{s}.html", f"{s}.speed.png", f"{s}.speedup.png"} <= names
    html = (tmp_path / f"{stem}.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "RMSNorm vs LayerNorm" in html
    assert "<th>GB/s</th>" in html
    md = (tmp_path / f"{stem}-2.md").read_text()
    assert f"({stem}-2.speed.png)" in md  # each report links its own plots


def test_report_defaults_to_the_folder_of_the_run(speed_out, tmp_path):
    _, out = speed_out
    run = tmp_path / "run.json"
    run.write_text(next(out.glob("*.json")).read_text())
    result = runner.invoke(app, ["report", str(run), "--format", "csv"])
    assert result.exit_code == 0, result.output
    df = pd.read_csv(tmp_path / "run-report.csv")
    assert (df.device_name == load_run(run).env["device_name"]).all()


def other_device(path, tmp_path, name="NVIDIA H100 80GB HBM3", copy=3000.0):
    """The same run as if measured on another machine."""
    data = json.loads(path.read_text())
    data["env"].update(device_name=name, copy_bandwidth_gbps=copy, driver="550.54")
    for r in data["rows"]:
        if r["metric"] == "bandwidth" and r["value"]:
            r["value"] *= 100
    dest = tmp_path / "h100.json"
    dest.write_text(json.dumps(data))
    return dest


def test_report_merges_runs_from_two_machines(speed_out, tmp_path):
    _, out = speed_out
    cpu = next(out.glob("*.json"))
    gpu = other_device(cpu, tmp_path)
    result = runner.invoke(app, ["report", str(cpu), str(gpu), "--format", "md,csv",
                                 "--out", str(tmp_path), "--plot"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "device" in result.output and "NVIDIA H100 80GB HBM3" in result.output
    assert "Merged 2 runs" in result.output
    csv = pd.read_csv(next(tmp_path.glob("speed-merged-*.csv")))
    n = len(load_run(cpu).rows)
    assert len(csv) == 2 * n  # rows keyed by (case, device): none lost to the other machine
    assert set(csv.device_name) == {load_run(cpu).env["device_name"], "NVIDIA H100 80GB HBM3"}
    md = next(tmp_path.glob("speed-merged-*.md")).read_text()
    assert "| environment | cpu: " in md and "| NVIDIA H100 80GB HBM3 |" in md
    assert "| copy_bandwidth_gbps |" in md and "| 3000.0 |" in md
    assert len(list(tmp_path.glob("speed-merged-*.png"))) == 2


def row(case, device_note=""):
    return Row(case, "speed", "rmsnorm", "eager", "fp32", "1x2x8", "fwd", "time", 1.0, "ms",
               note=device_note)  # fmt: skip


def test_merge_keys_rows_by_case_and_fingerprint():
    a = Run("speed", {"device_name": "A", "torch": "2.5"}, {}, [row("c1", "a")], summary=["sa"])
    a2 = Run("speed", {"device_name": "A", "torch": "2.5"}, {}, [row("c1", "a2")])
    b = Run("speed", {"device_name": "A", "torch": "2.6"}, {}, [row("c1", "b")])
    (m,) = merge([a, a2, b], ["a.json", "a2.json", "b.json"])
    # Same device name, different torch: two fingerprints, labels that tell them apart.
    assert list(m.env["devices"]) == ["A (torch 2.5)", "A (torch 2.6)"]
    # The same case on the same fingerprint: the later file's row.
    assert sorted(r.note for r in m.rows) == ["a2", "b"]
    assert any("later file" in line for line in m.summary) and "a.json: sa" in m.summary
    (title, cols, body), = tables(m)  # fmt: skip
    assert cols[0] == "device" and [r[0] for r in body] == ["A (torch 2.5)", "A (torch 2.6)"]
    # A merged run saved and merged again keeps its devices apart.
    c = Run("speed", {"device_name": "C"}, {}, [row("c1", "c")])
    (m2,) = merge([m, c], ["m.json", "c.json"])
    assert list(m2.env["devices"]) == ["A (torch 2.5)", "A (torch 2.6)", "C"]
    assert len(m2.rows) == 3


def test_runs_of_different_suites_are_rendered_apart(speed_out, tmp_path):
    _, out = speed_out
    other = Run("memory", {"device_name": "cpu"}, {}, [
        Row("rmsnorm/eager/fp32/1x2x8/fwd", "memory", "rmsnorm", "eager", "fp32", "1x2x8", "fwd",
            "peak_bytes", 4096.0, "B")])  # fmt: skip
    mem = tmp_path / "memory.json"
    mem.write_text(dumps(other))
    result = runner.invoke(app, ["report", str(next(out.glob("*.json"))), str(mem),
                                 "--out", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.count("Reports: ") == 2
    assert {p.name.split("-merged-")[0] for p in tmp_path.glob("*-merged-*.md")} == {
        "speed", "memory"}  # fmt: skip


GOOD = {"tool": "normbench", "schema_version": 1, "suite": "speed", "rows": []}
BAD_ROW = {**GOOD, "rows": [{**row("c1").to_dict(), "value": "fast"}]}


@pytest.mark.parametrize(
    "content,problem",
    [
        ('{"tool": "normbench", "rows": [', "not valid JSON (corrupt or truncated at line 1"),
        ('{"name": "some other tool"}', "not a normbench run"),
        ("[1, 2, 3]", "not a normbench run"),
        (b"\x89PNG\r\n\x1a\n\xff\xfe", "not a text file"),
        (json.dumps({**GOOD, "schema_version": 99}), "schema_version 99"),
        (json.dumps({**GOOD, "rows": [[1, 2]]}), "malformed run"),
        (json.dumps(BAD_ROW), "row 1 (c1): 'value' must be a number or null, got 'fast'"),
        (json.dumps({**GOOD, "suite": 3}), "'suite' must be a name"),
    ],
)
def test_a_bad_file_is_one_sentence_naming_it_and_exit_2(tmp_path, content, problem):
    path = tmp_path / "bad.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    result = runner.invoke(app, ["report", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == result.output.strip().splitlines()[0]  # one line
    assert f"{path}: " in result.output and problem in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_missing_file_and_no_file(tmp_path, speed_out):
    _, out = speed_out
    good = next(out.glob("*.json"))
    result = runner.invoke(app, ["report", str(good), str(tmp_path / "nope.json")])
    assert result.exit_code == 2 and f"{tmp_path / 'nope.json'}: no such file" in result.output
    assert runner.invoke(app, ["report"]).exit_code == 2
    with pytest.raises(ValueError, match="at least one saved run"):
        read_runs([])


def test_write_reports_without_plots_is_unchanged(tmp_path):
    run = Run("speed", {"device_name": "cpu"}, {}, [row("c1")])
    paths = write_reports(run, tmp_path, ("csv", "md", "json"), stem="s")
    assert [p.name for p in paths.values()] == ["s.csv", "s.md", "s.json"]
    assert "## Plots" not in (tmp_path / "s.md").read_text()


def test_report_of_a_saved_stability_run_with_plots(tmp_path):
    from test_plots import stability_run

    path = tmp_path / "stability.json"
    path.write_text(dumps(stability_run()))
    result = runner.invoke(app, ["report", str(path), "--plot", "--format", "md"])
    assert result.exit_code == 0, result.output
    names = {p.name for p in tmp_path.iterdir()}
    assert {"stability-report.stability.png", "stability-report.stability-matrix.png"} <= names
    md = (tmp_path / "stability-report.md").read_text()
    assert "![stability-matrix](stability-report.stability-matrix.png)" in md
