import json

import pytest

from normbench.errors import BaselineError
from normbench.report import parse_formats, write_reports
from normbench.results import Row, Run, dumps, load_run


def small_run():
    rows = [
        Row("rmsnorm/eager/fp32/1x2x8/fwd", "speed", "rmsnorm", "eager", "fp32", "1x2x8", "fwd",
            "time", 1.5, "ms", p20=1.4, p80=1.6, ci_low=1.45, ci_high=1.55, n=3,
            samples=(1.4, 1.5, 1.6), extra={"block_size": 1}),
        Row("rmsnorm/triton/fp32/1x2x8/fwd", "speed", "rmsnorm", "triton", "fp32", "1x2x8", "fwd",
            "time", None, "ms", status="skipped", note="interpreter"),
    ]  # fmt: skip
    return Run("speed", {"device_name": "cpu: test"}, {"k": 1}, rows, summary=["one line"])


def test_json_round_trip_keeps_samples(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(dumps(small_run()))
    run = load_run(path)
    assert run.rows[0].samples == (1.4, 1.5, 1.6)
    assert run.rows[1].status == "skipped" and run.rows[1].note == "interpreter"
    assert json.loads(path.read_text())["schema_version"] == 1


def test_reports_never_overwrite(tmp_path):
    first = write_reports(small_run(), tmp_path, ("csv", "md", "json"), stem="speed-x")
    second = write_reports(small_run(), tmp_path, ("csv", "md", "json"), stem="speed-x")
    assert first["json"].name == "speed-x.json"
    assert second["json"].name == "speed-x-2.json"
    assert {p.name for p in tmp_path.iterdir()} == {
        "speed-x.csv", "speed-x.md", "speed-x.json",
        "speed-x-2.csv", "speed-x-2.md", "speed-x-2.json",
    }  # fmt: skip


@pytest.mark.parametrize(
    "content,problem",
    [
        ('{"rows": [', "not valid JSON"),
        ('{"a": 1}', "not a normbench run"),
        ('{"tool": "normbench", "schema_version": 99, "rows": []}', "schema_version 99"),
        ('{"tool": "normbench", "schema_version": 1, "rows": [{"x": 1}]}', "malformed run"),
    ],
)
def test_bad_run_files_are_one_sentence(tmp_path, content, problem):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(BaselineError, match=problem) as info:
        load_run(path)
    assert str(path) in str(info.value)


def test_missing_file():
    with pytest.raises(BaselineError, match="no such file"):
        load_run("/nonexistent/run.json")


def test_formats():
    assert parse_formats("csv,md") == ("csv", "md")
    assert parse_formats("none") == ()
    with pytest.raises(ValueError, match="unknown report format 'xml'"):
        parse_formats("xml")
