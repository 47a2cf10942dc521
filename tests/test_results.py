import json

import pytest

from normbench.errors import BaselineError
from normbench.report import parse_formats, write_reports
from normbench.results import Finding, Level, Measurement, Run, Status, dumps, load_run, to_frame
from normbench.results.speed import SpeedResult
from normbench.variants.base import Shape

SHAPE = Shape(1, 2, 8)


def small_run():
    results = [
        SpeedResult("rmsnorm/eager/fp32/1x2x8/fwd", variant="rmsnorm", backend="eager",
                    dtype="fp32", shape=SHAPE, mode="fwd", block_size=1, measurements=(
                        Measurement("time", 1.5, "ms", p20=1.4, p80=1.6, ci_low=1.45,
                                    ci_high=1.55, n=3, samples=(1.4, 1.5, 1.6)),
                        Measurement("bandwidth", 0.1, "GB/s"))),
        SpeedResult("rmsnorm/triton/fp32/1x2x8/fwd", variant="rmsnorm", backend="triton",
                    dtype="fp32", shape=SHAPE, mode="fwd", measurements=(
                        Measurement("time", None, "ms", status="skipped", note="interpreter"),)),
    ]  # fmt: skip
    findings = [Finding("one line"), Finding("a warning", Level.WARNING)]
    return Run("speed", {"device_name": "cpu: test"}, {"k": 1}, results, findings)


def test_json_round_trip_keeps_samples_and_types(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(dumps(small_run()))
    run = load_run(path)
    assert run.results == small_run().results  # every field, shape as numbers, back as written
    first, skipped = run.of(SpeedResult)
    assert first.time.samples == (1.4, 1.5, 1.6) and first.shape == SHAPE
    assert skipped.status is Status.SKIPPED and skipped.note == "interpreter"
    assert run.findings == small_run().findings
    assert run.summary == ["one line", "Warning: a warning"]
    assert json.loads(path.read_text())["schema_version"] == 2


def test_to_frame_is_one_tidy_row_per_case_and_metric():
    df = to_frame(small_run())
    assert list(df.metric) == ["time", "bandwidth", "time"]
    assert list(df.dim) == [8, 8, 8] and list(df.block_size.fillna(0)) == [1, 1, 0]
    assert "samples" not in df.columns and "samples" in to_frame(small_run(), samples=True)


def test_a_version_1_file_still_loads(tmp_path):
    row = {
        "case_id": "rmsnorm/eager/fp32/1x2x8/fwd", "suite": "speed", "variant": "rmsnorm",
        "backend": "eager", "dtype": "fp32", "shape": "1x2x8", "mode": "fwd", "metric": "time",
        "value": 1.5, "unit": "ms", "status": "ok", "note": "", "n": 3, "samples": [1.5],
        "extra": {"block_size": 4, "options": ""},
    }  # fmt: skip
    data = {"tool": "normbench", "schema_version": 1, "suite": "speed", "env": {}, "config": {},
            "summary": ["Warning: hot"], "rows": [row]}  # fmt: skip
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(data))
    run = load_run(path)
    (r,) = run.of(SpeedResult)
    assert r.shape == SHAPE and r.block_size == 4 and r.time.value == 1.5
    assert run.findings == [Finding("hot", Level.WARNING)]


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


def test_a_kind_this_normbench_does_not_know_is_kept_whole(tmp_path):
    # A newer normbench's (or a plugin suite's) rows: loaded, re-saved and loaded again, nothing
    # is lost, and the generic table still shows them.
    from normbench.report.tables import generic_view
    from normbench.results import UnknownResult

    row = {"kind": "future", "case_id": "x/1", "metric": "speed_of_light", "value": 3.0,
           "unit": "c", "status": "ok", "note": "", "foo": 42}  # fmt: skip
    data = {"tool": "normbench", "schema_version": 2, "suite": "future", "env": {},
            "config": {}, "findings": [], "rows": [row]}  # fmt: skip
    path = tmp_path / "future.json"
    path.write_text(json.dumps(data))
    (r,) = load_run(path).results
    assert isinstance(r, UnknownResult) and r.kind_name == "future"
    again = tmp_path / "again.json"
    again.write_text(dumps(load_run(path)))
    (saved,) = json.loads(again.read_text())["rows"]
    assert saved["kind"] == "future" and saved["foo"] == 42 and saved["value"] == 3.0
    ((_, _, lines),) = generic_view(load_run(again))
    assert lines == [["x/1", "speed_of_light", "3", "c", "ok", ""]]


def test_a_version_1_speed_memory_case_keeps_its_own_ideal_bytes(tmp_path):
    # speed --memory, an untimed (interpreted) case: the time row has no extra, the saved_bytes
    # row's extra held the memory ideal. The case's ideal_bytes is the byte model's, not that.
    base = {"case_id": "rmsnorm/triton/fp32/1x2x8/fwd", "suite": "speed", "variant": "rmsnorm",
            "backend": "triton", "dtype": "fp32", "shape": "1x2x8", "mode": "fwd",
            "status": "ok", "note": ""}  # fmt: skip
    rows = [
        {**base, "metric": "time", "value": None, "unit": "ms", "status": "skipped"},
        {**base, "metric": "saved_bytes", "value": 72, "unit": "B",
         "extra": {"ideal_bytes": 72, "ratio": 1.0, "input_bytes": 64}},
    ]  # fmt: skip
    data = {"tool": "normbench", "schema_version": 1, "suite": "speed", "env": {}, "config": {},
            "summary": [], "rows": rows}  # fmt: skip
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(data))
    (r,) = load_run(path).of(SpeedResult)
    assert r.ideal_bytes is None and r.saved_input_bytes == 64
    assert r.value("saved_bytes") == 72 and r.status is Status.SKIPPED
