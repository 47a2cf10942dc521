"""`normbench report`: saved runs rendered again without measuring, merged across machines; and
`--plot` on a suite."""

import io
import json
import re

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from normbench.cli import app
from normbench.errors import BaselineError
from normbench.report import console, write_reports
from normbench.report.html import render as html_render
from normbench.report.markdown import md_table
from normbench.report.markdown import render as md_render
from normbench.report.merge import merge, read_runs
from normbench.report.tables import tables
from normbench.results import Finding, Level, Measurement, Run, dumps, load_run, tidy_rows
from normbench.results.memory import MemoryResult
from normbench.results.speed import SpeedResult
from normbench.variants.base import Shape

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
    assert table_part(again.stdout) == table_part(result.stdout)  # progress lines: on stderr
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
    assert '<th class="num">GB/s</th>' in html  # a column of numbers: aligned right
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


def md_rows(md: str) -> list[list[str]]:
    """The cells of every Markdown table row (padding stripped, '|' escapes kept)."""
    return [
        [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        for line in md.splitlines()
        if line.startswith("|")
    ]


def other_device(path, tmp_path, name="NVIDIA H100 80GB HBM3", copy=3000.0):
    """The same run as if measured on another machine."""
    data = json.loads(path.read_text())
    data["env"].update(device_name=name, copy_bandwidth_gbps=copy, driver="550.54")
    data["created"] = "2026-01-02T03:04:05+0000"  # measured at another time, too
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
    n = len(tidy_rows(load_run(cpu)))
    assert len(csv) == 2 * n  # rows keyed by (case, device): none lost to the other machine
    assert set(csv.device_name) == {load_run(cpu).env["device_name"], "NVIDIA H100 80GB HBM3"}
    # Each row says when its own run was made, not when the runs were merged.
    made = {load_run(cpu).env["device_name"]: load_run(cpu).created,
            "NVIDIA H100 80GB HBM3": "2026-01-02T03:04:05+0000"}  # fmt: skip
    assert (csv.created == csv.device_name.map(made)).all()
    md = next(tmp_path.glob("speed-merged-*.md")).read_text()
    env = {r[0]: r[1:] for r in md_rows(md) if len(r) == 3}
    assert env["environment"][0].startswith("cpu: ")
    assert env["environment"][1] == "NVIDIA H100 80GB HBM3"
    assert env["copy_bandwidth_gbps"][1] == "3000.0"
    assert len(list(tmp_path.glob("speed-merged-*.png"))) == 2


def row(case, device_note=""):
    time = Measurement("time", 1.0, "ms", note=device_note)
    return SpeedResult(case, variant="rmsnorm", backend="eager", dtype="fp32",
                       shape=Shape(1, 2, 8), mode="fwd", measurements=(time,))  # fmt: skip


def test_merge_keys_rows_by_case_and_fingerprint():
    a = Run("speed", {"device_name": "A", "torch": "2.5"}, {}, [row("c1", "a")], [Finding("sa")])
    a2 = Run("speed", {"device_name": "A", "torch": "2.5"}, {}, [row("c1", "a2")])
    b = Run("speed", {"device_name": "A", "torch": "2.6"}, {}, [row("c1", "b")])
    (m,) = merge([a, a2, b], ["a.json", "a2.json", "b.json"])
    # Same device name, different torch: two fingerprints, labels that tell them apart.
    assert list(m.env["devices"]) == ["A (torch 2.5)", "A (torch 2.6)"]
    # The same case on the same fingerprint: the later file's row.
    assert sorted(r.note for r in m.results) == ["a2", "b"]
    assert any("later file" in line for line in m.summary) and "a.json: sa" in m.summary
    (title, cols, body), = tables(m)  # fmt: skip
    assert cols[0] == "device" and [r[0] for r in body] == ["A (torch 2.5)", "A (torch 2.6)"]
    # A merged run saved and merged again keeps its devices apart.
    c = Run("speed", {"device_name": "C"}, {}, [row("c1", "c")])
    (m2,) = merge([m, c], ["m.json", "c.json"])
    assert list(m2.env["devices"]) == ["A (torch 2.5)", "A (torch 2.6)", "C"]
    assert len(m2.results) == 3


def test_a_merged_result_keeps_its_own_runs_time_through_a_file_and_a_second_merge(tmp_path):
    a = Run("speed", {"device_name": "A"}, {}, [row("c1"), row("c2")], created="2026-01-01T00:00")
    a2 = Run("speed", {"device_name": "A"}, {}, [row("c2")], created="2026-02-02T00:00")
    (m,) = merge([a, a2], ["a.json", "a2.json"])
    # Two runs on one device: rows from each, each with its own run's time.
    assert {r.case_id: r.created for r in m.results} == {"c1": "2026-01-01T00:00",
                                                         "c2": "2026-02-02T00:00"}  # fmt: skip
    path = tmp_path / "m.json"
    path.write_text(dumps(m))
    back = load_run(path)
    assert {r.case_id: r.created for r in back.results} == {r.case_id: r.created
                                                            for r in m.results}  # fmt: skip
    c = Run("speed", {"device_name": "C"}, {}, [row("c3")], created="2026-03-03T00:00")
    (m2,) = merge([back, c], ["m.json", "c.json"])
    assert sorted(r.created for r in m2.results) == [
        "2026-01-01T00:00", "2026-02-02T00:00", "2026-03-03T00:00"]  # fmt: skip
    from normbench.report.csv import render as csv_render
    from normbench.report.liger import rows as liger_rows

    csv = pd.read_csv(io.StringIO(csv_render(m2)))
    assert dict(zip(csv.case_id, csv.created, strict=True)) == {
        r.case_id: r.created for r in m2.results}  # fmt: skip
    assert sorted(r["timestamp"] for r in liger_rows(m2)) == [
        "2026-01-01T00:00",
        "2026-02-02T00:00",
        "2026-03-03T00:00",
    ]  # not Liger's form: as given
    # A plain run's rows carry no time of their own: the file's `created` says it.
    assert "created" not in json.loads(dumps(a))["rows"][0]
    bad = json.loads(path.read_text())
    bad["rows"][0]["created"] = 5
    path.write_text(json.dumps(bad))
    with pytest.raises(BaselineError, match="'created' must be text, got 5"):
        load_run(path)


def test_runs_of_different_suites_are_rendered_apart(speed_out, tmp_path):
    _, out = speed_out
    other = Run("memory", {"device_name": "cpu"}, {}, [
        MemoryResult("rmsnorm/eager/fp32/1x2x8/fwd", variant="rmsnorm", backend="eager",
                     dtype="fp32", shape=Shape(1, 2, 8), mode="fwd",
                     measurements=(Measurement("peak_bytes", 4096.0, "B"),))])  # fmt: skip
    mem = tmp_path / "memory.json"
    mem.write_text(dumps(other))
    speed = next(out.glob("*.json"))
    result = runner.invoke(app, ["report", str(speed), str(mem), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.count("Reports: ") == 2
    # One run per suite: nothing was merged, so each keeps its own file's name.
    assert sorted(p.name for p in tmp_path.glob("*-report.md")) == sorted(
        [f"{speed.stem}-report.md", "memory-report.md"])  # fmt: skip
    assert not list(tmp_path.glob("*-merged-*"))


GOOD = {"tool": "normbench", "schema_version": 1, "suite": "speed", "rows": []}
V1_ROW = {
    "case_id": "c1", "suite": "speed", "variant": "rmsnorm", "backend": "eager", "dtype": "fp32",
    "shape": "1x2x8", "mode": "fwd", "metric": "time", "value": 1.0, "unit": "ms", "status": "ok",
    "note": "", "extra": {},
}  # fmt: skip
BAD_ROW = {**GOOD, "rows": [{**V1_ROW, "value": "fast"}]}


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
        # Each of these once went through to a traceback, or to a table of nonsense.
        (
            json.dumps({**GOOD, "rows": [{**V1_ROW, "case_id": None}]}),
            "row 1: 'case_id' must be a case name, got None",
        ),
        (
            json.dumps({**GOOD, "rows": [{**V1_ROW, "n": -5}]}),
            "row 1 (c1): 'n' must be a whole number, got -5",
        ),
        (
            json.dumps({**GOOD, "rows": [{**V1_ROW, "rows": 2.5}]}),
            "row 1 (c1): 'rows' must be a whole number, got 2.5",
        ),
        (json.dumps({**GOOD, "created": 12}), "'created' must be a timestamp, got 12"),
        (json.dumps({**GOOD, "interrupted": "yes"}), "'interrupted' must be true or false"),
        (json.dumps({**GOOD, "wall_s": -1}), "'wall_s' must be seconds, got -1"),
        # A plugin's supports() -> 42 once reached a saved note: report's traceback.
        (json.dumps({**GOOD, "rows": [{**V1_ROW, "note": 42}]}), "'note' must be text, got 42"),
        (json.dumps({**GOOD, "schema_version": True}), "schema_version True"),
        (
            json.dumps({**GOOD, "schema_version": 2, "findings": "x"}),
            "finding 1 must be an object with a 'text', got 'x'",
        ),  # fmt: skip
        (json.dumps({**GOOD, "schema_version": 2, "rows": {"a": 1}}), "'rows' must be a list"),
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


# --- Markdown and HTML --------------------------------------------------------------------------


def test_markdown_tables_are_github_tables_with_cells_as_given():
    text = md_table(["case", "x ideal", "x ideal", ""], [["a|b", "3000.0", "1.00x", "two\nlines"]])
    head, rule, body = md_rows(text)
    assert head == ["case", "x ideal", "x ideal", ""]
    assert set("".join(rule)) <= set("-:") and len(rule) == 4
    # '|' is escaped (it would end the cell), a newline flattened, numbers printed as given.
    assert body == ["a\\|b", "3000.0", "1.00x", "two lines"]
    assert md_table(["environment", ""], []).count("\n") == 1  # a header without rows


def small_speed_run(note="fine"):
    results = [row("rmsnorm/eager/fp32/1x2x8/fwd", note)]
    findings = [Finding("RMSNorm vs LayerNorm: <b>1.2x</b>"), Finding("hot", Level.WARNING)]
    return Run("speed", {"device_name": "cpu: test", "torch": "2.13"}, {}, results, findings,
               created="2026-01-01T00:00:00", wall_s=12.3)  # fmt: skip


def test_markdown_report_holds_the_header_tables_summary_and_plot_links():
    md = md_render(small_speed_run(), links={"speed": "s.speed.png"})
    assert md.startswith("# normbench speed\n\nRun 2026-01-01T00:00:00, 12 s.\n")
    assert ["device_name", "cpu: test"] in md_rows(md) and "## speed" in md
    assert "- RMSNorm vs LayerNorm: <b>1.2x</b>\n- Warning: hot\n" in md
    assert md.endswith("## Plots\n\n![speed](s.speed.png)\n")


def test_html_page_is_the_template_escaped_with_plots_embedded():
    import importlib.resources

    template = importlib.resources.files("normbench.report") / "templates" / "run.html.j2"
    assert template.is_file()  # package data (pyproject: tool.setuptools.package-data)
    page = html_render(small_speed_run("<script>x</script>"), {"speed": b"\x89PNG"})
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</body></html>")
    assert "<title>normbench speed 2026-01-01T00:00:00</title>" in page
    assert '<p class="meta">Run 2026-01-01T00:00:00, 12 s, 1 result rows.</p>' in page
    nav = ['<a href="#summary">Summary</a>', '<a href="#environment">Environment</a>',
           '<a href="#plots">Plots</a>', '<a href="#table-0">speed</a>']  # fmt: skip
    assert "<nav>" + "".join(nav) + "</nav>" in page
    # Autoescaped: text from the run never becomes markup.
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "<li>RMSNorm vs LayerNorm: &lt;b&gt;1.2x&lt;/b&gt;</li>" in page
    assert '<img alt="speed" src="data:image/png;base64,iVBORw==">' in page
    assert "<th>GB/s</th>" in page and '<tr class="ok">' in page
    assert '<td class="num">1.00 ms</td>' in page and "<td>rmsnorm</td>" in page
    assert "How to read: GB/s is the variant" in page
    assert "Interrupted" not in page


def test_an_unreliable_timing_says_so_in_the_status_column():
    quiet, busy = row("c1"), row("c2")
    busy = SpeedResult(**{**busy.__dict__, "unreliable": "other processes used 60% of the CPUs"})
    run = Run("speed", {"device_name": "A"}, {}, [quiet, busy])
    (_, cols, body), *_ = tables(run)
    # Both rows shown, their numbers kept for information; the busy one marked where it is read.
    assert [r[cols.index("status")] for r in body] == ["ok", "unreliable"]
    assert body[1][cols.index("median")] == body[0][cols.index("median")] == "1.00 ms"
