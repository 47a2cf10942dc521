"""The CLI as a user runs it: a small speed sweep end to end, env, list, and bad input."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from normbench.cli import app

runner = CliRunner()
SMALL = ["--dim", "64", "--batch", "2", "--seq", "8", "--time-budget", "0.05", "--quick"]


@pytest.fixture(scope="module")
def speed_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    args = ["speed", "--variant", "rmsnorm,layernorm", "--backend", "eager,composite,triton",
            "--dtype", "bf16", *SMALL, "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    return result, out


def test_speed_writes_three_readable_reports(speed_run):
    result, out = speed_run
    assert result.exit_code == 0, result.output
    files = {p.suffix: p for p in out.iterdir()}
    assert set(files) == {".csv", ".md", ".json"}
    df = pd.read_csv(files[".csv"])
    times = df[df.metric == "time"]
    assert set(times.backend) == {"eager", "composite", "triton"}
    ok = times[times.status == "ok"]
    assert len(ok) == 4 and (ok.value > 0).all() and (ok.p20 <= ok.p80).all()
    run = json.loads(files[".json"].read_text())
    assert run["schema_version"] == 2 and run["env"]["threads"] >= 1
    timed = [r for r in run["rows"] if r["metric"] == "time" and r["status"] == "ok"]
    assert all(len(r["samples"]) == r["n"] for r in timed)
    md = " ".join(files[".md"].read_text().split())  # cells are padded
    assert "| variant | dtype | shape |" in md and "|---" in md


def test_speed_bandwidth_follows_the_byte_model(speed_run):
    _, out = speed_run
    df = pd.read_csv(next(out.glob("*.csv")))
    t = df[(df.metric == "time") & (df.status == "ok")].set_index("case_id").value
    bw = df[df.metric == "bandwidth"].set_index("case_id").value
    case = "rmsnorm/eager/bf16/2x8x64/fwd"
    ideal = 2 * 2 * 16 * 64 + 64 * 2  # 2bMN + N*bw
    assert bw[case] == pytest.approx(ideal / (t[case] * 1e-3) / 1e9, rel=1e-6)


def test_triton_is_skipped_on_cpu_with_the_reason(speed_run):
    result, out = speed_run
    df = pd.read_csv(next(out.glob("*.csv")))
    tri = df[(df.backend == "triton") & (df.metric == "time")]
    assert set(tri.status) <= {"skipped", "error", "mismatch"}
    assert "RMSNorm vs LayerNorm" in result.output


def test_env_and_list():
    result = runner.invoke(app, ["env", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["device"] == "cpu" and info["copy_bandwidth_gbps"] > 0
    assert "no NVIDIA GPU" in info["nvml"]
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    assert "add_rmsnorm" in result.output and "liger" in result.output
    # every diagnose probe, by the name `diagnose` takes
    from normbench.suites.diagnose import PROBES

    assert "diagnose probes" in result.output
    assert all(name in result.output for name in PROBES)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--dim", "0"], "--dim must be a positive integer, got 0"),
        (["--dim", "abc"], "--dim expects whole numbers, got 'abc'"),
        (["--dtype", "fp8"], "unknown dtype 'fp8'"),
        (["--variant", "nosuch"], "unknown variant 'nosuch': choose from layernorm"),
        (["--backend", "nosuch"], "unknown backend 'nosuch'"),
        (["--device", "cuda"], "--device cuda: no CUDA device is available"),
        (["--dim", "1000000", "--batch", "64", "--seq", "4096"], "needs about"),
        (["--mode", "sideways"], "unknown mode 'sideways'"),
        (["--filter", "("], "not a valid regular expression"),
        (["--filter", "nomatch"], "matches none"),
        (["--format", "xml"], "unknown report format"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(args, message, tmp_path):
    result = runner.invoke(app, ["speed", *args, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []
