"""Files for reuse (docs/formats.md): tidy CSV with numeric shape columns, reports at the user's
umask, the JSON's provenance and published schema, `--out -`, github-action-benchmark's and
Liger-Kernel's formats, and `--metrics`.

One small speed run (two cases, every format, plots) is made once, as a user would: the
installed `normbench` in a subprocess under umask 022, from inside a git checkout. The other
suites run in-process on tiny selections."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
from typer.testing import CliRunner

from normbench.cli import app
from normbench.errors import UsageError
from normbench.results import load_run
from normbench.results.files import dumps, schema_path
from normbench.results.metrics import CATALOGUE, check_metrics, select_rows

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
NORMBENCH = Path(sys.executable).with_name("normbench")
SPEED = ["speed", "--variant", "rmsnorm", "--backend", "eager,composite", "--dtype", "fp32",
         "--dim", "64", "--batch", "2", "--seq", "8", "--mode", "fwd", "--quick",
         "--time-budget", "0.02", "--hot"]  # fmt: skip
ALL = "csv,md,json,html,gab,gab-bigger,liger"
STABILITY = ["stability", "--variant", "rmsnorm", "--backend", "eager", "--fp32", "--dim", "64",
             "--dist", "normal,large", "--sweep-range", "-1:1"]  # fmt: skip
# The header of Liger-Kernel's published data, benchmark/data/all_benchmark_data.csv in
# linkedin/Liger-Kernel (read at commit ead96b6, 2026-08).
LIGER_HEADER = ("kernel_name,kernel_provider,kernel_operation_mode,metric_name,metric_unit,"
                "x_name,x_label,x_value,y_value_50,y_value_20,y_value_80,"
                "extra_benchmark_config_str,gpu_name,timestamp,liger_version")  # fmt: skip


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True,
                          text=True).stdout.strip()  # fmt: skip


def make_checkout(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    git(folder, "init", "-q")
    (folder / "kernel.py").write_text("# a user's kernel\n")
    git(folder, "add", "kernel.py")
    git(folder, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "k")
    return folder


def shell(command: list[str], umask: str, cwd: Path) -> subprocess.CompletedProcess:
    """`command` from a shell that set the umask first, as a user's would."""
    line = " ".join(f"'{a}'" for a in command)
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run(["bash", "-c", f"umask {umask} && exec {line}"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def modes(paths: list[Path]) -> dict[str, str]:
    """`stat -c %a` of each file, by name."""
    out = subprocess.run(["stat", "-c", "%n %a", *map(str, paths)], check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return {Path(name).name: mode for name, mode in (line.split() for line in out.splitlines())}


@pytest.fixture(scope="module")
def speed(tmp_path_factory) -> dict:
    """The speed run's files, made under umask 022 from a git checkout."""
    repo = make_checkout(tmp_path_factory.mktemp("user") / "repo")
    out = repo / "reports"
    done = shell([str(NORMBENCH), *SPEED, "--format", ALL, "--plot", "--out", str(out)], "022",
                 repo)  # fmt: skip
    assert done.returncode == 0, done.stderr
    files = sorted(out.iterdir())
    by = {p.name.split(".", 1)[1]: p for p in files}
    return {"repo": repo, "out": out, "files": files, "by": by,
            "json": json.loads(by["json"].read_text())}  # fmt: skip


# --- permissions ---------------------------------------------------------------------------------


def test_every_report_is_644_under_umask_022(speed):
    assert set(speed["by"]) == {"csv", "md", "json", "html", "gab.json", "gab-bigger.json",
                                "liger.csv", "speed.png", "speedup.png"}  # fmt: skip
    assert set(modes(speed["files"]).values()) == {"644"}
    assert not list(speed["out"].glob(".*"))  # no temporary file left behind


def test_every_report_is_640_under_umask_027(speed, tmp_path):
    out = tmp_path / "r"
    done = shell(
        [
            str(NORMBENCH),
            "report",
            str(speed["by"]["json"]),
            "--format",
            "csv,md,json,html,gab,liger",
            "--plot",
            "--out",
            str(out),
        ],
        "027",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    files = sorted(out.iterdir())
    assert {p.suffix for p in files} == {".csv", ".md", ".json", ".html", ".png"}
    assert set(modes(files).values()) == {"640"}


def test_partial_file_follows_the_umask(tmp_path):
    from normbench.results import GenericCase, Measurement
    from normbench.results.partial import partial_results

    old = os.umask(0o027)
    try:
        with partial_results(tmp_path, "speed") as partial:
            partial.add(GenericCase("c", measurements=(Measurement("time", 1.0, "ms"),)))
            mode = os.stat(partial.path).st_mode & 0o777
    finally:
        os.umask(old)
    assert mode == 0o640


# --- the JSON file -------------------------------------------------------------------------------


def schema() -> dict:
    return json.loads(schema_path().read_text())


def test_json_validates_against_the_shipped_schema(speed):
    jsonschema.validate(speed["json"], schema())
    # The schema is not a rubber stamp: a row whose n is a float, or a wrong tool, fails it.
    bad = json.loads(json.dumps(speed["json"]))
    bad["rows"][0]["n"] = 3.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**speed["json"], "tool": "other"}, schema())


def test_json_has_the_command_line_and_the_measured_checkout(speed):
    data = speed["json"]
    assert data["argv"][0] == "normbench" and data["argv"][1:] == [
        *SPEED, "--format", ALL, "--plot", "--out", str(speed["out"])]  # fmt: skip
    here = data["git"]["cwd"]
    assert here == {
        "root": str(speed["repo"]),
        "commit": git(speed["repo"], "rev-parse", "HEAD"),
        "dirty": False,
    }  # fmt: skip (reports/ is untracked: not dirty)
    source = data["git"]["normbench"]
    if (ROOT / ".git").exists():  # normbench's own checkout (an editable install)
        assert source["commit"] == git(ROOT, "rev-parse", "HEAD")
        assert source["root"] == str(ROOT) and isinstance(source["dirty"], bool)


def test_an_older_v2_file_without_provenance_still_loads(speed, tmp_path):
    old = {k: v for k, v in speed["json"].items() if k not in ("argv", "git")}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    run = load_run(path)
    assert run.argv is None and run.git is None  # unknown, never this process's
    again = json.loads(dumps(run))
    assert again["argv"] is None and again["git"] is None
    jsonschema.validate(again, schema())
    assert len(again["rows"]) == len(old["rows"])


def test_checkout_is_read_without_git_and_says_when_dirty(tmp_path, monkeypatch):
    from normbench.provenance import checkout

    repo = make_checkout(tmp_path / "repo")
    head = git(repo, "rev-parse", "HEAD")
    assert checkout(repo) == {"root": str(repo), "commit": head, "dirty": False}
    (repo / "kernel.py").write_text("# changed\n")
    assert checkout(repo)["dirty"] is True
    assert checkout(tmp_path / "elsewhere") is None  # no checkout: None, never an error
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))  # git missing: .git/HEAD read
    (repo / "sub").mkdir()
    assert checkout(repo / "sub") == {"root": str(repo), "commit": head, "dirty": None}
    assert checkout(tmp_path / "elsewhere") is None


# --- the CSV -------------------------------------------------------------------------------------


def test_speed_csv_has_integer_shape_columns_and_counts(speed):
    path = speed["by"]["csv"]
    df = pd.read_csv(path)
    for col in ("batch", "seq", "heads", "dim", "rows"):
        assert df[col].dtype == "int64", col
    assert (df.rows == df.batch * df.seq * df.heads).all() and set(df.rows) == {16}
    # n has gaps (a bandwidth has no samples of its own): written as whole numbers, read as
    # pandas' nullable integers.
    assert not any(v.endswith(".0") for v in pd.read_csv(path, dtype=str).n.dropna())
    typed = pd.read_csv(path, dtype_backend="numpy_nullable")
    assert str(typed.n.dtype) == "Int64"
    samples = {r["case_id"]: len(r["samples"]) for r in speed["json"]["rows"]
               if r["metric"] == "time" and r["status"] == "ok"}  # fmt: skip
    times = typed[typed.metric == "time"].set_index("case_id").n
    assert {k: int(v) for k, v in times.items()} == samples


@pytest.fixture(scope="module")
def stability_stream(tmp_path_factory):
    """stability --format csv --out -, run in an empty folder."""
    folder = tmp_path_factory.mktemp("empty")
    here = os.getcwd()
    os.chdir(folder)
    try:
        result = runner.invoke(app, [*STABILITY, "--format", "csv", "--out", "-"])
    finally:
        os.chdir(here)
    return result, folder


def test_out_dash_streams_one_csv_and_writes_no_file(stability_stream):
    result, folder = stability_stream
    assert result.exit_code == 0, result.output
    df = pd.read_csv(io.StringIO(result.stdout))
    assert len(df) > 20 and set(df.suite) == {"stability"}
    assert "Cases:" in result.stderr and "Cases:" not in result.stdout  # tables on stderr
    assert list(folder.iterdir()) == []  # no report, no partial file, no folder named -


NOISY = """
import ctypes
import torch
from normbench.backends.base import backend_from_functions

libc = ctypes.CDLL(None)
print("loading the noisy plugin")
libc.puts(b"C says hello at import")


def rmsnorm(x, weight, eps):
    print("called")
    libc.puts(b"C called")
    return torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps)


BACKEND = backend_from_functions("noisy", {"rmsnorm": rmsnorm})
"""


def test_out_dash_holds_the_document_alone_whatever_a_plugin_prints(tmp_path):
    # A plugin's print (Python's at import and per call, C's puts) went into the JSON document.
    (tmp_path / "noisy.py").write_text(NOISY)
    args = [sys.executable, "-m", "normbench", "speed", "--plugin", "noisy.py", "--backend",
            "eager,noisy", *SPEED[5:], "--out", "-", "--format", "json"]  # fmt: skip
    p = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    run = json.loads(p.stdout)  # the whole of stdout is the document
    assert {r["backend"] for r in run["rows"]} == {"eager", "noisy"}
    assert "loading the noisy plugin" in p.stderr and "C says hello at import" in p.stderr
    assert "called" in p.stderr and "C called" in p.stderr


def test_stability_csv_has_text_verdicts_and_the_input(stability_stream):
    df = pd.read_csv(io.StringIO(stability_stream[0].stdout))
    assert df.dim.dtype == "int64" and df.rows.dtype == "int64" and set(df.dim) == {64}
    verdicts = df[df.metric == "verdict"]
    assert verdicts.value_text.dtype == object or str(verdicts.value_text.dtype) == "str"
    assert set(verdicts.value_text) <= {"PASS", "WARN", "FAIL"} and len(verdicts) == 2
    assert (verdicts.value_text == verdicts.verdict).all()  # the text beside the field
    rank = {"PASS": 0, "WARN": 1, "FAIL": 2}
    assert (verdicts.value == verdicts.value_text.map(rank)).all()
    assert set(df[df.kind == "stability"].dist) == {"normal", "large"}
    assert set(df[df.kind != "stability"].dist) == {"unit-max"}  # the sweep's rows too
    assert set(df[df.metric == "deterministic"].value_text) == {"yes"}
    assert set(df[df.metric == "sweep_verdict"].value_text) <= {"PASS", "WARN", "FAIL"}


def test_memory_csv_has_integer_shapes_and_byte_counts(tmp_path):
    result = runner.invoke(app, ["memory", "--variant", "rmsnorm", "--backend", "eager",
                                 "--dtype", "fp32", "--dim", "64", "--batch", "2", "--seq", "4",
                                 "--format", "csv", "--out", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    df = pd.read_csv(next(tmp_path.glob("*.csv")))
    for col in ("dim", "rows", "value", "saved_tensors"):
        assert df[col].dtype == "int64", col
    assert set(df.rows) == {8}
    saved = df.set_index("metric").value
    assert saved["ideal_saved_bytes"] == 8 * 64 * 4 + 8 * 4  # x plus one fp32 rstd per row
    assert set(df.metric) <= set(CATALOGUE["memory"])


def test_two_formats_to_stdout_is_one_sentence_and_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, [*SPEED, "--format", "csv,json", "--out", "-"])
    assert result.exit_code == 2
    assert "--out - streams one format" in result.output and "Traceback" not in result.output
    assert result.stdout == "" and list(tmp_path.iterdir()) == []


def test_one_document_per_stdout(speed, monkeypatch, capsys):
    """speed --baseline --out -: the run is streamed, its comparison only shown on stderr."""
    from normbench.cli_render import stream
    from normbench.formats import parse_formats

    run = load_run(speed["by"]["json"])
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    stream(run, parse_formats("csv", "-"))
    first = out.getvalue()
    stream(run, parse_formats("json", "-"))
    assert out.getvalue() == first and len(pd.read_csv(io.StringIO(first))) == len(run.cases()) * 5
    assert "stdout holds the speed run" in capsys.readouterr().err
    # As the CLI runs it: stdout swapped for stderr while the command runs, the document going
    # to the stdout it was given (the second run's note named the wrong stream: a KeyError).
    from normbench import cli_render

    given, doc = io.StringIO(), io.StringIO()
    monkeypatch.setattr(cli_render, "_document", [(given, doc)])
    stream(run, parse_formats("csv", "-"))
    stream(run, parse_formats("json", "-"))
    assert doc.getvalue() == first
    assert "stdout holds the speed run" in capsys.readouterr().err


# --- github-action-benchmark ---------------------------------------------------------------------


def check_gab(entries: object) -> None:
    """github-action-benchmark's documented custom format (its README, "customSmallerIsBetter"
    / "customBiggerIsBetter"): a JSON array; each entry has name, unit (strings) and value (a
    number), and optionally range and extra (strings)."""
    assert isinstance(entries, list) and entries
    for e in entries:
        assert isinstance(e, dict) and {"name", "unit", "value"} <= set(e), e
        assert set(e) <= {"name", "unit", "value", "range", "extra"}, e
        assert isinstance(e["name"], str) and e["name"] and isinstance(e["unit"], str)
        v = e["value"]
        assert isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for key in ("range", "extra"):
            assert key not in e or isinstance(e[key], str)
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names))  # one line per name on the action's chart


def test_gab_is_github_action_benchmarks_format_with_the_runs_times(speed):
    smaller = json.loads(speed["by"]["gab.json"].read_text())
    bigger = json.loads(speed["by"]["gab-bigger.json"].read_text())
    check_gab(smaller)
    check_gab(bigger)
    df = pd.read_csv(speed["by"]["csv"])
    ok = df[df.status == "ok"].set_index(["backend", "metric"]).value
    # Values to 1e-12: pandas before 3.0 parses CSV floats to within an ulp, not round-trip.
    assert {e["name"]: e["unit"] for e in smaller} == {
        f"rmsnorm fp32 2x8x64 fwd {b}": "ms" for b in ("eager", "composite")
    }
    assert {e["name"]: e["value"] for e in smaller} == pytest.approx({
        f"rmsnorm fp32 2x8x64 fwd {b}": ok[(b, "time")] for b in ("eager", "composite")
    }, rel=1e-12)  # fmt: skip
    assert {e["name"]: e["unit"] for e in bigger} == {
        f"rmsnorm fp32 2x8x64 fwd {b} bandwidth": "GB/s" for b in ("eager", "composite")
    }
    assert {e["name"]: e["value"] for e in bigger} == pytest.approx({
        f"rmsnorm fp32 2x8x64 fwd {b} bandwidth": ok[(b, "bandwidth")]
        for b in ("eager", "composite")}, rel=1e-12)  # fmt: skip
    times = df[df.metric == "time"].set_index("backend")
    for e in smaller:
        b = e["name"].split()[-1]
        half = (times.ci_high[b] - times.ci_low[b]) / 2
        assert e["range"] == f"± {half:.4g}" and "samples: " in e["extra"]


def test_gab_with_a_bigger_is_better_metric_only_points_to_gab_bigger(tmp_path):
    result = runner.invoke(app, [*SPEED, "--format", "gab", "--metrics", "bandwidth",
                                 "--out", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 2 and "gab-bigger" in result.output
    assert list(tmp_path.iterdir()) == []  # refused before measuring


@pytest.mark.parametrize("cmd, suite", [
    (["memory"], "memory"),
    (["stability", "--fp16"], "stability without --sweep-range"),
    (["calibrate"], "calibrate"),
    (["ab", "--a", "eager", "--b", "composite"], "ab"),
    (["compare", "base.json", "new.json"], "compare"),
])  # fmt: skip
def test_gab_bigger_of_a_suite_with_no_bigger_is_better_metric_is_refused(tmp_path, cmd, suite):
    """Such a file could only ever be `[]`: refused before measuring (or reading the runs)."""
    result = runner.invoke(app, [*cmd, "--format", "gab-bigger", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"normbench: --format gab-bigger: {suite} has no bigger-is-")
    assert "use --format gab" in result.output
    assert not (tmp_path / "r").exists()


def test_the_refusal_holds_only_where_the_file_would_be_empty():
    from normbench.results.metrics import (
        GAB_DEFAULTS,
        SWEEP_METRICS,
        bigger_is_better,
        check_run_metrics,
    )

    for suite, defaults in GAB_DEFAULTS.items():
        for fmt, bigger in (("gab", False), ("gab-bigger", True)):
            for sweep in (False, True):
                lacking = () if sweep or suite != "stability" else SWEEP_METRICS
                names = [m for m in defaults if m not in lacking]
                empty = not any(bigger_is_better(m) == bigger for m in names)
                try:
                    check_run_metrics(suite, (fmt,), (), lacking, "--sweep-range")
                    refused = False
                except UsageError:
                    refused = True
                assert refused == empty, (suite, fmt, sweep)
    with pytest.raises(UsageError, match="--metrics saved_"):  # judged by what it matches
        check_run_metrics("memory", ("gab-bigger",), ("saved_*",))
    check_run_metrics("stability", ("gab-bigger",), ())  # with a sweep: safe_scale_max


# --- Liger-Kernel --------------------------------------------------------------------------------


def test_liger_csv_has_ligers_header_and_the_runs_quantiles(speed):
    text = speed["by"]["liger.csv"].read_text()
    assert text.splitlines()[0] == LIGER_HEADER
    liger = pd.read_csv(io.StringIO(text))
    df = pd.read_csv(speed["by"]["csv"])
    times = df[(df.metric == "time") & (df.status == "ok")].set_index("backend")
    assert sorted(liger.kernel_provider) == ["composite", "eager"]
    for _, r in liger.iterrows():
        t = times.loc[r.kernel_provider]
        assert (r.kernel_name, r.kernel_operation_mode, r.metric_name, r.metric_unit) == (
            "rms_norm", "forward", "speed", "ms")  # fmt: skip
        assert (r.x_name, r.x_label, r.x_value) == ("H", "hidden size", 64)
        assert (r.y_value_50, r.y_value_20, r.y_value_80) == pytest.approx((t.value, t.p20, t.p80))
        config = json.loads(r.extra_benchmark_config_str)
        assert config["M"] == 16 and config["dtype"] == "torch.float32" and config["eps"] == 1e-6
        assert r.gpu_name == t.device_name and len(r.timestamp) == len("2024-09-03 15:39:14")


# --- --metrics -----------------------------------------------------------------------------------


def test_an_unknown_metric_is_refused_before_measuring_listing_the_suites(tmp_path):
    result = runner.invoke(app, [*SPEED, "--metrics", "time,tme", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    # One sentence, as every other bad value (it was typer's boxed usage error).
    assert result.output.startswith("normbench: --metrics: unknown metric 'tme' for speed: its ")
    assert "time, bandwidth" in result.output and "Usage:" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cmd, name, option", [
    ([*SPEED, "--format", "csv,gab"], "saved_bytes", "--memory"),
    ([*SPEED, "--format", "csv,gab"], "peak_*", "--memory"),
    (["stability", "--fp16", "--format", "csv,gab-bigger"], "safe_scale_max", "--sweep-range"),
])  # fmt: skip
def test_a_metric_the_run_will_not_have_is_refused_naming_its_option(tmp_path, cmd, name, option):
    # speed --metrics saved_bytes without --memory wrote header-only CSVs and a `[]` gab file.
    out = tmp_path / "r"
    result = runner.invoke(app, [*cmd, "--metrics", name, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"normbench: --metrics {name!r}: ")
    assert f"only with {option}: add {option}" in result.output
    assert not out.exists()


@pytest.mark.parametrize("cmd, metrics, fmt", [
    (["stability", "--fp16"], "*_max_ulp", "gab-bigger"),
    (["stability", "--fp16"], "dx_*", "gab-bigger"),
    ([*SPEED], "pct_*", "gab"),
    (["memory"], "peak_*", "gab-bigger"),
])  # fmt: skip
def test_a_pattern_that_matches_no_metric_of_the_files_direction_is_refused(
    tmp_path, cmd, metrics, fmt
):
    """A pattern was only judged when the file was written: `[]` after the whole run."""
    out = tmp_path / "r"
    result = runner.invoke(app, [*cmd, "--metrics", metrics, "--format", fmt, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"normbench: --format {fmt}: --metrics {metrics} has no ")
    assert not out.exists()


def test_patterns_are_judged_by_the_metrics_they_match():
    from normbench.results.metrics import check_run_metrics

    check_run_metrics("stability", ("gab-bigger",), ("*",))  # deterministic is bigger-is-better
    check_run_metrics("stability", ("gab",), ("dx_*",))
    check_run_metrics("speed", ("gab-bigger",), ("pct_*",))  # pct_sol
    check_metrics("stability", ("dweight_*", "y_max_?lp"))  # tensors spelt out: known


def test_the_spelt_out_tensors_are_the_variants_outputs_and_gradients():
    from normbench.results.metrics import TENSORS
    from normbench.variants import VARIANTS

    have = {t for v in VARIANTS.values() for t in (*v.outputs, *("d" + a for a in v.tensor_args))}
    assert set(TENSORS) == have


def test_a_version_1_metric_is_refused_on_a_new_run_but_kept_by_report(tmp_path):
    # speed --metrics pct_copy_bw measured everything and wrote header-only files.
    result = runner.invoke(app, [*SPEED, "--metrics", "pct_copy_bw", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert "only a version-1 speed file has it" in result.output
    assert not (tmp_path / "r").exists()
    from normbench.results.metrics import select_rows as select

    assert select([{"metric": "pct_copy_bw"}], "speed", ("pct_copy_bw",)) == [
        {"metric": "pct_copy_bw"}
    ]


def test_metrics_choose_the_rows_of_the_exports(speed, stability_stream):
    from normbench.report import csv, gab, liger

    run = load_run(speed["by"]["json"])
    only = pd.read_csv(io.StringIO(csv.render(run, ("time", "pct_sol"))))
    assert set(only.metric) == {"time", "pct_sol"} and len(only) == 4
    assert [e["name"] for e in gab.entries(run, metrics=("sol_time",))] == [
        "rmsnorm fp32 2x8x64 fwd eager sol_time",
        "rmsnorm fp32 2x8x64 fwd composite sol_time",
    ]
    assert set(pd.DataFrame(liger.rows(run, ("bandwidth",))).metric_name) == {"bandwidth"}
    stab = pd.read_csv(io.StringIO(stability_stream[0].stdout)).to_dict("records")
    ulps = select_rows(stab, "stability", ("*_max_ulp",))
    assert {r["metric"] for r in ulps} == {"y_max_ulp", "dx_max_ulp", "dweight_max_ulp"}


def test_report_metrics_chooses_the_rows_of_a_saved_run(speed, tmp_path):
    saved = speed["by"]["json"]
    out = tmp_path / "again"
    result = runner.invoke(app, ["report", str(saved), "--format", "csv,gab", "--metrics",
                                 "time", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    (csv_file,) = out.glob("*.csv")
    again = pd.read_csv(csv_file)
    assert set(again.metric) == {"time"} and len(again) == 2
    whole = pd.read_csv(speed["by"]["csv"])
    assert list(again.value) == list(whole[whole.metric == "time"].value)
    (gab_file,) = out.glob("*.gab.json")
    assert [e["unit"] for e in json.loads(gab_file.read_text())] == ["ms", "ms"]
    # A name the saved run does not have: one sentence naming its metrics, nothing written.
    bad = tmp_path / "bad"
    result = runner.invoke(app, ["report", str(saved), "--format", "csv", "--metrics", "tme",
                                 "--out", str(bad)])  # fmt: skip
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "unknown metric 'tme' for speed: this run's metrics are time" in result.output
    assert not bad.exists()


def test_a_suite_without_a_catalogue_is_checked_against_its_run():
    rows = [{"metric": "verdict"}, {"metric": "slope"}]
    assert select_rows(rows, "diagnose", ("slope",)) == [{"metric": "slope"}]
    with pytest.raises(UsageError, match="this run's metrics are verdict, slope"):
        select_rows(rows, "diagnose", ("slop",))
    check_metrics("diagnose", ("anything",))  # nothing to check it against before the run


def test_the_catalogue_holds_every_metric_a_run_has(speed, stability_stream):
    speed_metrics = {r["metric"] for r in speed["json"]["rows"]}
    assert speed_metrics and all(select_rows([{"metric": m}], "speed", CATALOGUE["speed"])
                                 for m in speed_metrics)  # fmt: skip
    stab = set(pd.read_csv(io.StringIO(stability_stream[0].stdout)).metric)
    for m in stab:
        check_metrics("stability", (m,))  # none refused


def test_diagnose_has_no_gab_file_its_numbers_have_no_direction(tmp_path):
    # Its max_safe_scale went into the smaller-is-better file: a safer kernel would alarm.
    for fmt in ("gab", "gab-bigger", "csv,gab"):
        result = runner.invoke(app, ["diagnose", "overflow", "--quick", "--format", fmt,
                                     "--out", str(tmp_path / "r")])  # fmt: skip
        assert result.exit_code == 2, result.output
        assert "have no better direction" in result.output
        assert not (tmp_path / "r").exists()


def test_audit_entries_name_their_arch_so_each_keeps_its_line():
    from normbench.report.gab import entries
    from normbench.results import Run
    from normbench.results.audit import AuditRow

    def audit(*archs):
        rows = [AuditRow.of("rmsnorm_fwd", a, "bf16", 128, registers=60 + i, block=128,
                            num_warps=4) for i, a in enumerate(archs)]  # fmt: skip
        return {e["name"]: e["value"] for e in entries(Run("audit", {}, {}, rows))}

    one, two = audit("sm_90"), audit("sm_80", "sm_90")
    name = "rmsnorm bf16 N=128 fwd triton sm_90 registers"
    assert one[name] == 60 and "rmsnorm bf16 N=128 fwd triton sm_90 spill_bytes" in one
    assert two[name] == 61 and two["rmsnorm bf16 N=128 fwd triton sm_80 registers"] == 60


def test_speed_baseline_with_metrics_and_gab_bigger_still_gives_its_verdict(tmp_path):
    # --metrics bandwidth is no metric of the comparison, and a comparison has no bigger-is-
    # better one: measured in full, then exit 2 with no verdict, or a `[]` file.
    first = runner.invoke(app, [*SPEED, "--format", "json", "--out", str(tmp_path / "b")])
    assert first.exit_code == 0, first.output
    base = next((tmp_path / "b").glob("speed-*.json"))
    out = tmp_path / "n"
    r = runner.invoke(app, [*SPEED, "--baseline", str(base), "--format", "csv,gab-bigger",
                            "--metrics", "bandwidth", "--out", str(out)])  # fmt: skip
    assert r.exit_code in (0, 1, 4), r.output
    assert "PASS" in r.output or "FAIL" in r.output or "CAN'T JUDGE" in r.output
    speed_bigger = next(out.glob("speed-*.gab-bigger.json"))
    assert json.loads(speed_bigger.read_text())  # the speed run's bandwidth entries
    assert not list(out.glob("compare-*.gab-bigger.json"))  # none that could only be []
    cmp_csv = pd.read_csv(next(out.glob("compare-*.csv")))
    assert set(cmp_csv.metric) >= {"ratio"}  # every comparison metric, not the speed run's


def test_speed_baseline_takes_a_folder_and_refuses_a_selection_it_cannot_compare(tmp_path):
    """The README's `--baseline base/speed-*.json` also matched the run's `.gab.json` (exit 2
    from the shell's two arguments); a folder names its one run. A baseline with none of this
    run's cases was measured in full, then compared nothing: refused before measuring."""
    first = runner.invoke(app, [*SPEED, "--format", "json,gab", "--out", str(tmp_path / "b")])
    assert first.exit_code == 0, first.output
    assert len(list((tmp_path / "b").glob("speed-*.json"))) == 2  # the run and its gab file
    out = tmp_path / "n"
    r = runner.invoke(app, [*SPEED, "--baseline", str(tmp_path / "b"), "--out", str(out),
                            "--format", "json"])  # fmt: skip
    assert r.exit_code in (0, 1, 4), r.output
    (cmp,) = out.glob("compare-*.json")
    assert json.loads(cmp.read_text())["config"]["base"]["path"].endswith(".json")
    other = [*SPEED[: SPEED.index("--dim")], "--dim", "96", *SPEED[SPEED.index("--dim") + 2 :]]
    r = runner.invoke(app, [*other, "--baseline", str(tmp_path / "b"), "--out", str(out)])
    assert r.exit_code == 3, r.output
    assert "has none of this run's 2 cases" in r.output and "2x8x64" in r.output
    assert "2x8x96" in r.output
    assert len(list(out.iterdir())) == 2  # nothing measured: only the first comparison's files
    (tmp_path / "b" / "speed-20200101-000000.json").write_text("{}")
    r = runner.invoke(app, [*SPEED, "--baseline", str(tmp_path / "b"), "--out", str(out)])
    assert r.exit_code == 2 and "holds 2 speed runs" in r.output, r.output
    (tmp_path / "e").mkdir()
    r = runner.invoke(app, [*SPEED, "--baseline", str(tmp_path / "e"), "--out", str(out)])
    assert r.exit_code == 3 and "no speed run (speed-<timestamp>.json) in it" in r.output


def _stability_run(tmp_path):
    out = tmp_path / "stab"
    r = runner.invoke(app, ["stability", "--quick", "--variant", "rmsnorm", "--backend", "eager",
                            "--dtype", "fp32", "--dim", "64", "--dist", "normal", "--format",
                            "json", "--out", str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    return out.glob("*.json")


@pytest.mark.parametrize("cmd", [["diagnose", "overflow", "--quick"], ["audit", "--dim", "1024"]])
def test_liger_of_a_suite_without_cases_of_one_hidden_size_is_refused(tmp_path, cmd):
    # Its file was Liger's header alone.
    r = runner.invoke(app, [*cmd, "--format", "csv,liger", "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "--format liger: Liger's benchmark CSV holds" in r.output
    assert not (tmp_path / "r").exists()


def test_report_refuses_the_gab_files_a_saved_run_could_never_fill(tmp_path):
    from normbench.results import Run
    from normbench.results.diagnose import ProbeResult, Verdict

    probe = ProbeResult("lr-sweep", claim="c", source="s", verdict=Verdict.INCONCLUSIVE,
                        numbers={"slope": -0.3}, threshold="t", caveat="c",
                        summary="s")  # fmt: skip
    stability = load_run(next(iter(_stability_run(tmp_path))))  # no --sweep-range
    for run, fmt, words in (
        (Run("diagnose", {}, {}, [probe]), "gab", "no better direction"),
        (Run("memory", {}, {}, []), "gab-bigger", "no bigger-is-better"),
        # A saved stability run without a sweep wrote `[]` (the new run is refused).
        (stability, "gab-bigger", "stability has no bigger-is-better metric"),
        (Run("diagnose", {}, {}, [probe]), "liger", "holds cases of one hidden size"),
    ):
        path = tmp_path / f"{run.suite}.json"
        path.write_text(dumps(run))
        r = runner.invoke(app, ["report", str(path), "--format", fmt, "--out", str(tmp_path / fmt)])
        assert r.exit_code == 2 and words in r.output, r.output
        assert not (tmp_path / fmt).exists()
