"""Tables that fit the terminal they are in: every suite's table at 80 and 160 columns keeps
every column and every cell (wrapped at words, never cropped), notes are numbered footnotes
that identical notes share, `--columns` chooses the columns, Markdown aligns numbers right and
HTML aligns text left and numbers right (docs/design.md "Layout")."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console
from test_v1_render import unpack
from typer.testing import CliRunner

from normbench.cli import app
from normbench.errors import UsageError
from normbench.report import console, speed_view
from normbench.report.columns import check_for_suites, numeric_column, parse_columns
from normbench.report.footnotes import shown
from normbench.report.html import render as html_render
from normbench.report.markdown import render as md_render
from normbench.results import Measurement, Run, Status, load_run
from normbench.results.audit import AuditRow
from normbench.results.compare import FLOOR_ID, MARGIN_ID, CaseNoise, MinMargin, SuiteNoiseFloor
from normbench.results.diagnose import ProbeResult, Verdict
from normbench.results.speed import SpeedResult
from normbench.variants.base import Shape

runner = CliRunner()
UNSTABLE = ("unreliable: the CI of the median is +-17%: raise --time-budget; other processes "
            "used 48% of the CPUs while it was timed")  # fmt: skip
SKIPPED = ("runs in Triton's interpreter on CPU: numerics only, never timed (numerics at "
           "1x16x4096: matches fp64 (worst y: 0.13x the tolerance))")  # fmt: skip


def speed_case(backend: str, variant: str, note: str, status: str = "ok") -> SpeedResult:
    ok = status == "ok"
    t = Measurement("time", 11.59 if ok else None, "ms", Status(status), note=note,
                    p20=8.46, p80=13.01, n=15 if ok else None)  # fmt: skip
    return SpeedResult(
        f"{variant}/{backend}/bf16/4x512x4096/fwd",
        variant=variant,
        backend=backend,
        dtype="bf16",
        shape=Shape(4, 512, 4096),
        mode="fwd",
        measurements=(t, Measurement("bandwidth", 2.9 if ok else None, "GB/s")),
    )


def quick_speed_run() -> Run:
    """`speed --dim 4096 --quick --dtype bf16` as the issue saw it: 7 of 8 timed rows share the
    unstable note, and the triton rows the skipped one."""
    backends = ("eager", "composite", "torchscript", "compile")
    cases = [speed_case(b, v, UNSTABLE if (v, b) != ("rmsnorm", "compile") else "")
             for v in ("layernorm", "rmsnorm") for b in backends]  # fmt: skip
    cases += [speed_case("triton", v, SKIPPED, "skipped") for v in ("layernorm", "rmsnorm")]
    return Run("speed", {"device_name": "cpu: test"}, {}, cases)


def calibrate_run() -> Run:
    noise = CaseNoise("rmsnorm/eager/fp32/1x1x1024/fwd", variant="rmsnorm", backend="eager",
                      dtype="fp32", shape=Shape(1, 1, 1024), mode="fwd",
                      measurements=(Measurement("noise_floor", 3.5, "%", n=2),),
                      ratios=(1.01, 0.99), ci=((0.97, 1.03), (0.96, 1.02)),
                      worst_ratio_change_pct=1.0)  # fmt: skip
    return Run("calibrate", {"device_name": "cpu: test"}, {}, [
        noise, SuiteNoiseFloor(FLOOR_ID, value=4.0, n=4),
        MinMargin(MARGIN_ID, value=1.0, n=3, comparisons=3),
    ])  # fmt: skip


def audit_run() -> Run:
    rows = [AuditRow.of("rmsnorm_fwd", "sm_90", "bf16", n, block=n, num_warps=8, registers=40,
                        vector16=True, occupancy_pct=75.0) for n in (1024, 4096)]  # fmt: skip
    rows.append(
        AuditRow.of(
            "rmsnorm_bwd",
            "sm_80",
            "fp32",
            8192,
            status=Status.ERROR,
            note="ptxas failed: out of registers for BLOCK 8192 at 16 warps",
        )
    )
    return Run("audit", {"device_name": "cpu: test"}, {}, rows)


def diagnose_run() -> Run:
    probe = ProbeResult(
        "grad-init",
        claim="Pre-norm keeps gradients bounded at init as depth grows; post-norm does not",
        source="Xiong et al. 2020, On Layer Normalization in the Transformer Architecture",
        verdict=Verdict.REFUTED,
        numbers={"seeds": 3},
        threshold="slope of log grad-norm vs depth above 0.05 per layer",
        caveat="a small model at init, not a trained one",
        summary="slope 0.01 (pre) vs 0.12 (post) over depths 6, 12, 24",
    )
    return Run("diagnose", {"device_name": "cpu: test"}, {}, [probe])


def v1(name: str, tmp: Path) -> Run:
    return load_run(unpack(name, tmp))


RUNS = {
    "speed": lambda tmp: v1("speed", tmp),
    "speed-quick": lambda tmp: quick_speed_run(),
    "memory": lambda tmp: v1("memory", tmp),
    "stability": lambda tmp: v1("stability", tmp),
    "compare": lambda tmp: v1("compare", tmp),
    "calibrate": lambda tmp: calibrate_run(),
    "audit": lambda tmp: audit_run(),
    "diagnose": lambda tmp: diagnose_run(),
}
BOX = set("┏┓┗┛┡┩└┘━─┳┻╇┼┬┴┃│╋├┤┌┐╷╵╶╴ ")


def squeeze(text: str) -> str:
    return "".join(text.split())


def cells_of(line: str) -> list[str]:
    parts = re.split(r"[│┃]", line)
    return parts[1:-1] if line[:1] in "│┃" else parts  # the roomy layout draws its edges


def parse(lines: list[str], width: int) -> list[tuple[str, list[list[str]], list[str]]]:
    """The printed console as (title, [header, *blocks], footnotes): a block is the cells of
    the lines between two rules, joined per column; the footnotes' texts, unwrapped."""
    out: list[tuple[str, list[list[str]], list[str]]] = []
    i = 0
    while i < len(lines):
        title = [lines[i]]
        i += 1
        while i < len(lines) and not set("│┃┏") & set(lines[i]):
            title.append(lines[i])  # a title wrapped at the console's width
            i += 1
        blocks: list[list[list[str]]] = [[]]
        while i < len(lines) and (bool(set("│┃") & set(lines[i])) or set(lines[i]) <= BOX):
            if set(lines[i]) <= BOX:
                blocks.append([])
            else:
                blocks[-1].append(cells_of(lines[i]))
            i += 1
        notes: list[str] = []
        while i < len(lines) and (re.match(r"\s*\[\d+\] ", lines[i]) or lines[i][:1] == " "):
            if re.match(r"\s*\[\d+\] ", lines[i]):
                notes.append(lines[i].split("] ", 1)[1])
            else:
                notes[-1] += " " + lines[i]
            i += 1
        out.append((" ".join(t.strip() for t in title), [b for b in blocks if b],
                    [" ".join(n.split()) for n in notes]))  # fmt: skip
    return out


def joined(block: list[list[str]]) -> list[str]:
    return [squeeze("".join(line[c] for line in block)) for c in range(len(block[0]))]


def rows_of(blocks: list[list[list[str]]], expected: list[list[str]]) -> list[list[str]]:
    """The printed rows: a block is one wrapped row (ruled off from its neighbours) or rows of
    one line each; whichever reading gives the expected next row is taken."""
    rows: list[list[str]] = []
    for block in blocks:
        whole = joined(block)
        if len(rows) < len(expected) and whole == expected[len(rows)]:
            rows.append(whole)
        else:
            rows += [joined([line]) for line in block]
    return rows


@pytest.mark.parametrize("width", [80, 160])
@pytest.mark.parametrize("name", list(RUNS))
def test_every_column_cell_and_note_is_printed_within_the_width(name, width, tmp_path):
    run = RUNS[name](tmp_path)
    con = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.render(run, con)
    text = con.export_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    expected = shown(run)
    tables = parse(lines, width)  # the summary, after the last table, parses as title lines
    assert len(tables) >= len(expected)
    for t, (title, blocks, notes) in zip(expected, tables, strict=False):
        title, _, same = title.partition(" Every row: ")
        assert squeeze(title) == squeeze(t.title)
        # Too narrow for the words: the columns with one value in every row are said above.
        lifted = [tuple(pair.split(" = ", 1)) for pair in same.split("; ")] if same else []
        kept = []
        for i, c in enumerate(t.columns):
            if lifted[:1] == [(c, t.rows[0][i])] and {r[i] for r in t.rows} == {t.rows[0][i]}:
                lifted.pop(0)
            else:
                kept.append(i)
        assert lifted == []  # each said once, in the table's order
        assert width < 160 or not same  # at 160 every table fits its words
        header, *body = blocks
        assert joined(header) == [squeeze(t.columns[i]) for i in kept]  # every header, none cut
        want = [[squeeze(r[i]) for i in kept] for r in t.rows]
        assert rows_of(body, want) == want  # every cell, word for word
        assert notes == [" ".join(n.split()) for n in t.notes]


def test_identical_notes_share_one_footnote():
    (t,) = shown(quick_speed_run())
    assert t.notes == (UNSTABLE, SKIPPED)
    refs = [r[t.columns.index("note")] for r in t.rows]
    assert refs == ["[1]"] * 7 + [""] + ["[2]"] * 2
    con = Console(width=80, record=True, file=io.StringIO(), color_system=None)
    console.render(quick_speed_run(), con)
    flat = " ".join(con.export_text().split())
    assert flat.count("other processes used 48%") == 1 and flat.count("Triton's interpreter") == 1


def test_the_console_honours_columns_and_is_wide_without_it(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert console.make_console().width == 80  # not a terminal here: COLUMNS still wins
    monkeypatch.delenv("COLUMNS")
    assert console.make_console().width == console.WIDE
    # COLUMNS=5 printed every table as empty boxes: the console is never that narrow.
    monkeypatch.setenv("COLUMNS", "5")
    assert console.make_console().width == console.MIN_WIDTH


@pytest.mark.parametrize("width", [60, 72])
@pytest.mark.parametrize("name", ["compare", "stability", "speed-quick"])
def test_too_narrow_for_the_words_verdicts_and_numbers_stay_whole(name, width, tmp_path):
    """At COLUMNS=60 a compare verdict printed as `regressio` over `n`: a grep of the CI log for
    "regression" missed it. Words up to KEEP_WORD characters are folded last: the long ones (a
    case id) give the room."""
    run = RUNS[name](tmp_path)
    con = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.render(run, con)
    lines = con.export_text().splitlines()
    assert max(len(line) for line in lines) <= width
    cells = [c.strip() for line in lines for c in re.split("[│┃|]", line)]
    for t in shown(run):
        once = set(console.constant_columns(t))
        for r in t.rows:
            for i, c in enumerate(r):
                for word in c.split():
                    if i not in once and len(word) <= console.KEEP_WORD and word.isalpha():
                        assert any(word in cell.split() for cell in cells), (t.title, word)


@pytest.mark.parametrize("name", list(RUNS))
def test_at_the_narrowest_every_character_of_every_cell_is_printed(name, tmp_path):
    run = RUNS[name](tmp_path)
    con = Console(width=console.MIN_WIDTH, record=True, file=io.StringIO(), color_system=None)
    console.render(run, con)
    text = con.export_text()
    assert max(len(line) for line in text.splitlines()) <= console.MIN_WIDTH
    printed = [c for c in text if c.isalnum()]
    for t in shown(run):
        # A column with one value in every row is said once above its table.
        once = set(console.constant_columns(t))
        cells = "".join(c for r in t.rows for i, c in enumerate(r) if i not in once)
        cells += "".join(t.rows[0][i] for i in once)
        for ch in {c for c in cells if c.isalnum()}:
            assert printed.count(ch) >= cells.count(ch), (t.title, ch)


def test_piped_speed_has_no_escape_codes_and_fits_columns(tmp_path):
    env = {**os.environ, "COLUMNS": "80"}  # the tests' cache dir (conftest) kept
    env.pop("FORCE_COLOR", None)
    args = ["speed", "--variant", "rmsnorm", "--backend", "eager", "--dtype", "fp32",
            "--dim", "64", "--batch", "2", "--seq", "8", "--time-budget", "0.05", "--quick",
            "--format", "none"]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "normbench", *args], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\x1b" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    (_, blocks, _), *_ = parse(lines, 80)
    headers = [{"% copy bw": "% SOL"}.get(c, c) for c in speed_view.COLUMNS]
    assert joined(blocks[0]) == [squeeze(c) for c in headers]  # all 14, in 80 columns


# --- --columns ---------------------------------------------------------------------------------


def test_columns_keep_the_identifying_ones_and_leave_out_tables_without_any(tmp_path):
    run = v1("stability", tmp_path)
    tables = shown(run, ("Verdict", "REASON"))  # case-insensitive
    assert [t.title for t in tables] == ["stability: findings (WARN, FAIL)",
                                         "stability: not run"] or all(
        "reason" in t.columns or "verdict" in t.columns for t in tables)  # fmt: skip
    findings = next(t for t in tables if t.title.startswith("stability: findings"))
    assert findings.columns == ("implementation", "dtype", "N", "input", "verdict", "reason")
    assert findings.notes and findings.notes[0].startswith("mean 1e4 >> std: cancellation")
    assert not any(t.title.startswith("stability: verdict per input") for t in tables)


def test_columns_are_checked_before_measuring(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["speed", "--columns", "median,bogus", "--out", str(out),
                                 "--dim", "64", "--quick"])  # fmt: skip
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "--columns: no column named 'bogus' in the speed tables" in line
    assert "GB/s" in line and "vs eager" in line  # the ones it has
    assert not out.exists()  # refused before the output folder, let alone a case
    with pytest.raises(UsageError, match="names nothing"):
        parse_columns([" , "])
    # stability's matrix has a column per selected backend.
    config = SimpleNamespace(selection=SimpleNamespace(backends=("eager", "liger")))
    check_for_suites(("Liger", "reason"), ["stability"], config)
    with pytest.raises(UsageError, match="no column named 'quack'"):
        check_for_suites(("quack",), ["stability"], config)


def test_report_columns_choose_console_markdown_and_html(tmp_path):
    saved = unpack("speed", tmp_path)
    result = runner.invoke(app, ["report", str(saved), "--columns", "median,gb/s",
                                 "--format", "md,html", "--out", str(tmp_path)],
                           env={"COLUMNS": "100"})  # fmt: skip
    assert result.exit_code == 0, result.output
    head = next(line for line in result.output.splitlines() if "median" in line)
    assert [c.strip() for c in cells_of(head)] == ["variant", "dtype", "shape", "mode",
                                                   "backend", "median", "GB/s"]  # fmt: skip
    md = (tmp_path / "speed-report.md").read_text()
    assert "| variant   | dtype   | shape      | mode   | backend     |   median |   GB/s |" in md
    html = (tmp_path / "speed-report.html").read_text()
    assert "| p20-p80" not in md and ">p20-p80</th>" not in html and ">median</th>" in html
    full = runner.invoke(app, ["report", str(saved), "--format", "none"], env={"COLUMNS": "100"})
    lines = [line.strip() for line in full.output.splitlines()]
    assert "[1] unstable: p20-p80 spread is 11% of the median; compile 16.5 s" in lines
    bad = runner.invoke(app, ["report", str(saved), "--columns", "speed", "--out",
                              str(tmp_path / "none")])  # fmt: skip
    assert bad.exit_code == 2 and "the saved runs' tables" in bad.output
    assert not (tmp_path / "none").exists()


# --- Markdown and HTML alignment ---------------------------------------------------------------


def md_tables(md: str) -> list[list[list[str]]]:
    tables, cur = [], []
    for line in md.splitlines():
        if line.startswith("|"):
            cur.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))])
        elif cur:
            tables.append(cur)
            cur = []
    return tables + ([cur] if cur else [])


def test_markdown_aligns_numbers_right_and_lists_the_footnotes(tmp_path):
    md = md_render(v1("speed", tmp_path))
    env, speed = md_tables(md)
    assert env[0] == ["environment", "value"]  # no empty header cell
    head, rule = speed[0], speed[1]
    align = dict(zip(head, rule, strict=True))
    for c in ("median", "p20-p80", "CI +-", "n", "GB/s", "% copy bw", "vs eager"):
        assert re.fullmatch(r"-+:", align[c]), c
    for c in ("variant", "dtype", "shape", "mode", "backend", "status", "note"):
        assert re.fullmatch(r":-+", align[c]), c
    # Footnotes under the table, one numbered item per distinct note, referenced from the cells.
    after = md.split("## speed", 1)[1].split("## Summary")[0]
    items = re.findall(r"^(\d+)\. (.+)$", after, re.M)
    assert [int(k) for k, _ in items] == list(range(1, len(items) + 1)) and len(items) == 9
    assert items[1][1].startswith("runs in Triton's interpreter on CPU: numerics only")
    refs = {r[head.index("note")] for r in speed[2:]} - {""}
    assert refs == {f"[{k}]" for k, _ in items}


class Cells(HTMLParser):
    """Each table as rows of (tag, class, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[tuple[str, str, str]]]] = []
        self.notes: list[list[tuple[str, str]]] = []
        self.cell: list | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = [tag, a.get("class") or "", ""]
        elif tag == "ol":
            self.notes.append([])
        elif tag == "li" and self.notes:
            self.cell = ["li", a.get("id") or "", ""]

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[2] += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append(tuple(self.cell))
            self.cell = None
        elif tag == "li" and self.cell is not None:
            if self.notes:
                self.notes[-1].append((self.cell[1], self.cell[2]))
            self.cell = None


def test_html_aligns_text_left_and_numbers_right_with_footnotes(tmp_path):
    page = html_render(v1("speed", tmp_path))
    p = Cells()
    p.feed(page)
    env, speed = p.tables[0], p.tables[1]
    assert [c[2] for c in env[0]] == ["environment", "value"]
    header = [c[2] for c in speed[0]]
    classes = {h: {row[i][1] for row in speed} for i, h in enumerate(header)}
    for c in ("median", "GB/s", "vs eager", "n"):
        assert classes[c] == {"num"}, c
    for c in ("shape", "variant", "backend", "note"):
        assert classes[c] == {""}, c  # text: left (the shape 4x512x1024 is not a number)
    (notes,) = [n for n in p.notes if n]
    assert len(notes) == 9 and notes[0][0] == "table-0-note-1"
    assert '<a href="#table-0-note-1">[1]</a>' in page


@pytest.mark.parametrize(
    "cells,numeric",
    [
        (["11.59 ms", "8.46 ms - 13.01 ms", "-"], True),
        (["16.8%", "~1.02x", "189.6!", "1,234", "+3.5%", "1.000-1.050"], True),
        (["48 MiB (3.00x)", "2^-24 (sweep edge)", "0.0012"], True),
        (["4x512x4096"], False),
        (["fp32", "1.0"], False),
        (["-", ""], False),
    ],
)
def test_numeric_columns(cells, numeric):
    assert numeric_column(cells) is numeric
