"""Version-1 runs, saved by normbench before the results redesign, re-rendered by today's code:
the console tables, Markdown and CSV must carry the same numbers as the old code printed.

tests/data/v1/*.json.gz are real runs (`speed --quick` twice, `stability --fp16 --dim 1000`,
`memory`, and `compare` of the two speed runs); golden.json.gz holds what the old code rendered
from each (console at a fixed width, Markdown, CSV), produced by `render` below.

Two changes of the look are the point of later work and are undone before comparing: notes are
numbered footnotes under their table now (docs/design.md "Layout": report/footnotes.py), so a
reference such as `[1]` is replaced by its footnote's text; and the environment table's second
header, empty before, is `value`."""

from __future__ import annotations

import gzip
import io
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

DATA = Path(__file__).parent / "data" / "v1"
RUNS = ("speed", "stability", "memory", "compare")
WIDTH = 400  # wide enough that no cell wraps: each table row is one console line


def unpack(name: str, folder: Path) -> Path:
    path = folder / f"{name}.json"
    with gzip.open(DATA / f"{name}.json.gz", "rt") as fh:
        path.write_text(fh.read())
    return path


def render(run) -> dict[str, str]:
    from rich.console import Console

    from normbench.report import console, csv, markdown

    con = Console(width=WIDTH, record=True, file=io.StringIO(), color_system=None)
    console.render(run, con)
    return {"console": con.export_text(), "md": markdown.render(run), "csv": csv.render(run)}


def golden() -> dict[str, dict[str, str]]:
    with gzip.open(DATA / "golden.json.gz", "rt") as fh:
        return json.load(fh)


def with_notes(rows: list[list[str]], note: re.Pattern) -> list[list[str]]:
    """`rows` with each footnote reference replaced by its note and the footnote lines (those
    `note` matches: number, text) dropped; a table's footnotes follow it, numbered from 1."""
    out: list[list[str]] = []
    table: list[list[str]] = []  # the rows since the last footnotes
    notes: dict[str, str] = {}

    def flush() -> None:
        out.extend([notes.get(c[1:-1], c) if re.fullmatch(r"\[\d+\]", c) else c for c in r]
                   for r in table)  # fmt: skip
        table.clear()
        notes.clear()

    for r in rows:
        m = note.fullmatch(r[0]) if len(r) == 1 else None
        if m:
            notes[m.group(1)] = m.group(2)
            continue
        if notes:
            flush()
        table.append(r)
    flush()
    return out


def console_cells(text: str) -> list[list[str]]:
    """Table rows as cells (box drawing and padding dropped), and the lines printed after."""
    out = []
    for line in text.splitlines():
        if not line.strip() or set(line.strip()) <= set("┏┓┗┛┡┩└┘━─┳┻╇┼┬┴┃│╋├┤┌┐ "):
            continue
        out.append([c.strip() for c in re.split(r"[│┃]", line) if c.strip()])
    return with_notes(out, re.compile(r"\[(\d+)\] (.*)"))


def md_cells(text: str) -> list[list[str]]:
    """Every Markdown table row as cells (separator rows dropped), and every other line."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or re.fullmatch(r"\|?[\s:|-]+\|?", line):
            continue
        if line.startswith("|"):
            out.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))])
        else:
            out.append([line])
    out = [["environment", "value"] if r == ["environment", ""] else r for r in out]
    return with_notes(out, re.compile(r"(\d+)\. (.*)"))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, dict[str, str]]:
    from normbench.results import load_run

    folder = tmp_path_factory.mktemp("v1")
    return {name: render(load_run(unpack(name, folder))) for name in RUNS}


@pytest.mark.parametrize("name", RUNS)
def test_console_and_markdown_carry_the_old_numbers(rendered, name):
    old, new = golden()[name], rendered[name]
    assert console_cells(new["console"]) == console_cells(old["console"])
    assert md_cells(new["md"]) == md_cells(old["md"])


@pytest.mark.parametrize("name", RUNS)
def test_csv_keeps_every_old_column_and_value(rendered, name):
    # Rows are grouped by case now (a speedup sits with its case, not at the end): same rows,
    # compared in case and metric order.
    key = ["case_id", "metric"]
    old = pd.read_csv(io.StringIO(golden()[name]["csv"])).sort_values(key, ignore_index=True)
    new = pd.read_csv(io.StringIO(rendered[name]["csv"])).sort_values(key, ignore_index=True)
    assert len(new) == len(old)
    missing = [c for c in old.columns if c not in new.columns]
    assert not missing, f"columns dropped: {missing}"
    pd.testing.assert_frame_equal(new[list(old.columns)], old, check_dtype=False)


def test_compare_of_v1_runs_gives_the_old_verdicts(tmp_path):
    """Today's gate, fed the two version-1 speed runs, reaches the old comparison."""
    from normbench.compare import CompareConfig, compare_files

    cmp = compare_files(unpack("speed", tmp_path), unpack("speed2", tmp_path), CompareConfig())
    new, old = render(cmp), golden()["compare"]
    # The between-run noise is never below the CPU floor (docs/regression-gate.md "Method"), so
    # each case's CI is at least as wide as the floor alone makes it (10% on normal quantiles:
    # a factor exp(2 x 1.96 x 0.10) = 1.48 from end to end), and holds its ratio: the same
    # cases and verdicts, the same headline. (Measured inside the backends the noise is 0.156
    # on 10 df; the old CIs came from the overall MAD, 0.044 on 4.)
    pairs = zip(md_cells(new["md"]), md_cells(old["md"]), strict=True)
    rows = [(a, b) for a, b in pairs if b[-2:-1] == ["inconclusive"]]
    assert len(rows) == 16
    for a, b in rows:
        assert a[:5] == b[:5] and a[6] == b[6] == "inconclusive", (a, b)
        lo, hi = map(float, a[5].split("-"))
        assert lo <= float(a[4].rstrip("x")) <= hi and hi / lo >= math.exp(2 * 1.96 * 0.10), a
    assert "PASS: no confirmed regression (margin +-5%; 16 inconclusive, 4 not compared)" in (
        new["md"]) and "16 inconclusive" in old["md"]  # fmt: skip
