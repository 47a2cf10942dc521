"""The option rules (normbench.validate) through the CLI: a value out of range, NaN, a list that
names nothing, or a thread count the machine cannot run is one sentence and exit 2, before
anything is measured; repeats in a list are dropped; --debug keeps the exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from normbench import __version__
from normbench.cli import app
from normbench.config import SpeedConfig
from normbench.config_args import SelectionArgs, TimingArgs, build_selection, build_speed_config
from normbench.errors import UsageError
from normbench.registry import DEFAULT_BACKENDS
from normbench.validate import DEPTH_MAX, REPEATS_MAX, SEED_MAX, THREADS_PER_CPU, given
from normbench.variants import VARIANTS

runner = CliRunner()
UNUSED_OUT = Path("unused")  # the configs built here are never run
TINY = ["--variant", "rmsnorm", "--dtype", "fp32", "--dim", "64", "--batch", "1", "--seq", "4"]


def refused(args: list[str], tmp_path, sentence: str) -> str:
    """Run the CLI in-process; it must exit 2 with `sentence`, no traceback, no report."""
    out = tmp_path / "out"
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert sentence in result.output
    assert "Traceback" not in result.output
    assert not out.exists() or list(out.iterdir()) == []
    return result.output


def cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "normbench", *args], capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


# --- 1. threads: capped from the machine, checked before torch hears the count ---------------


def expected_cap() -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return THREADS_PER_CPU * cpus


@pytest.mark.parametrize("threads", ["100000", "20000", "0", "-1"])
def test_threads_outside_the_machine_cap_exit_2(threads, tmp_path):
    # A subprocess: 100000 once segfaulted (139) and 20000 aborted libgomp (1).
    out = tmp_path / "out"
    proc = cli("speed", *TINY, "--threads", threads, "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    cap = expected_cap()
    assert f"--threads must be between 1 and {cap}" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not out.exists()


def test_threads_cap_itself_is_accepted():
    sel = build_selection(SelectionArgs(variant="rmsnorm", dtype="fp32", dim="64", batch="1",
                                        seq="4"))  # fmt: skip
    cap = expected_cap()
    config = build_speed_config(sel, TimingArgs(threads=cap), UNUSED_OUT, ("json",))
    assert config.threads == cap
    with pytest.raises(UsageError, match=f"between 1 and {cap}"):
        SpeedConfig(sel, threads=cap + 1)


# --- 2. time budget: finite and positive; an explicit one wins over --quick -----------------


@pytest.mark.parametrize("budget", ["nan", "inf", "-inf", "-1", "0"])
def test_time_budget_not_finite_positive_exit_2(budget, tmp_path):
    refused(["speed", *TINY, "--time-budget", budget], tmp_path,
            "--time-budget must be a finite positive number of seconds")  # fmt: skip


@pytest.mark.parametrize(
    ("budget", "quick", "expected"), [(3.0, True, 3.0), (None, True, 0.3), (None, False, 1.0),
                                      (0.05, False, 0.05)],
)  # fmt: skip
def test_explicit_time_budget_wins_over_quick(budget, quick, expected):
    sel = build_selection(SelectionArgs(variant="rmsnorm", dtype="fp32", dim="64", batch="1",
                                        seq="4"))  # fmt: skip
    timing = TimingArgs(time_budget=budget, quick=quick)
    config = build_speed_config(sel, timing, UNUSED_OUT, ("json",))
    assert config.time_budget == expected and config.quick is quick


# --- 3. seeds: 0 .. 2**32 - 1 on every command that takes one --------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["speed", *TINY],
        ["memory", *TINY],
        ["stability", *TINY],
        ["calibrate", *TINY],
        ["ab", "--a", "eager", "--b", "composite", *TINY],
        ["diagnose", "--quick"],
        ["compare", "base.json", "new.json"],
    ],
    ids=lambda a: a[0],
)
@pytest.mark.parametrize("seed", ["-5", str(SEED_MAX + 1), "9" * 40])
def test_seed_out_of_range_exit_2(args, seed, tmp_path):
    refused([*args, "--seed", seed], tmp_path, f"--seed must be between 0 and {SEED_MAX}")


def test_largest_seed_is_accepted():
    assert SEED_MAX == 2**32 - 1
    sel = build_selection(SelectionArgs(variant="rmsnorm", dtype="fp32", dim="64", batch="1",
                                        seq="4", seed=SEED_MAX))  # fmt: skip
    case = sel.cases()[0]
    assert sel.seed == SEED_MAX and case.variant == "rmsnorm"


# --- 4. calibrate --repeats: 2 .. REPEATS_MAX --------------------------------------------------


@pytest.mark.parametrize("repeats", ["100000", str(REPEATS_MAX + 1), "1", "0"])
def test_repeats_out_of_range_exit_2(repeats, tmp_path):
    refused(["calibrate", *TINY, "--repeats", repeats], tmp_path,
            f"--repeats must be between 2 and {REPEATS_MAX}")  # fmt: skip


# --- 5. lists: one that names nothing is refused, repeats are dropped -------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["speed", "--dim", ","],
        ["speed", "--variant", ","],
        ["speed", "--backend", ","],
        ["speed", "--dtype", ","],
        ["speed", "--mode", ","],
        ["speed", "--batch", " , "],
        ["memory", "--seq", ","],
        ["stability", "--dist", ","],
        ["audit", "--arch", ","],
        ["diagnose", "--norms", ","],
        ["diagnose", "--depths", ","],
    ],
    ids=lambda a: f"{a[0]}{a[1]}",
)
def test_a_list_that_names_nothing_exit_2(args, tmp_path):
    refused(args, tmp_path, f"{args[1]} '{args[2]}' names nothing")


def test_given_drops_repeats_in_order():
    assert given(["b,a", "b", "c,a"], "--x") == ["b", "a", "c"]
    assert given(None, "--x") == [] and given([], "--x") == []
    with pytest.raises(UsageError, match="--x ',,,' names nothing"):
        given([",", ","], "--x")


def test_repeated_values_time_each_case_once(tmp_path):
    sel = build_selection(SelectionArgs(variant="rmsnorm,rmsnorm", backend="eager,eager",
                                        dtype="fp32,float32", dim="128,64,128,064", batch="1",
                                        seq="4"))  # fmt: skip
    assert sel.dims == (128, 64) and sel.backends == ("eager",) and sel.dtypes == ("fp32",)
    assert sel.variants == ("rmsnorm",) and len(sel.cases()) == 2
    # Through the CLI: one case timed once, in both reports.
    args = ["speed", "--variant", "rmsnorm", "--dtype", "fp32", "--dim", "64,64", "--backend",
            "eager,eager", "--batch", "1", "--seq", "4", "--time-budget", "0.05",
            "--format", "csv,json", "--out", str(tmp_path)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    run = json.loads(next(tmp_path.glob("*.json")).read_text())
    timed = [r for r in run["rows"] if r["metric"] == "time"]
    assert [r["case_id"] for r in timed] == ["rmsnorm/eager/fp32/1x4x64/fwd"]
    df = pd.read_csv(next(tmp_path.glob("*.csv")))
    assert (df.metric == "time").sum() == 1
    assert run["config"]["time_budget"] == 0.05


# --- 6. diagnose: a depth that would fill the memory is refused before a model is built ------


@pytest.mark.parametrize("depths", ["100000", f"6,{DEPTH_MAX + 1}"])
def test_diagnose_depth_over_the_bound_exit_2(depths, tmp_path):
    # A subprocess bounded by a timeout: the old behaviour grew to 22.5 GB before it was stopped.
    out = tmp_path / "out"
    proc = cli("diagnose", "--quick", "--depths", depths, "--out", str(out), timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert f"--depths must be between 1 and {DEPTH_MAX}" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


def test_run_diagnose_refuses_a_deep_model_before_building_it():
    from normbench.suites.diagnose import run_diagnose

    with pytest.raises(UsageError, match=f"at most {DEPTH_MAX}, got {DEPTH_MAX + 1}"):
        run_diagnose(["grad-init"], depths=[DEPTH_MAX + 1])


# --- 7. --debug keeps the code, --version, --help lists the choices --------------------------


def test_debug_usage_error_still_exit_2(tmp_path):
    proc = cli("--debug", "speed", "--time-budget", "nan", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" in proc.stderr  # --debug shows where
    assert proc.stderr.rstrip().splitlines()[-1] == (
        "normbench: --time-budget must be a finite positive number of seconds, got nan"
    )


def test_version():
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"normbench {__version__}"


def test_help_lists_variants_and_backends():
    result = runner.invoke(app, ["speed", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "Variants, comma list: " + ", ".join(VARIANTS) in text
    assert "Backends, comma list: " + ", ".join(DEFAULT_BACKENDS) in text
    assert "(default 1; 0.3 with --quick, which an explicit value overrides)" in text


@pytest.mark.parametrize("level", ["", " ", "fail,warn"])
def test_stability_fail_on_that_is_no_level_exit_2(level, tmp_path):
    # `--fail-on ""` (an unset CI variable) turned the gate off: a FAIL exited 0.
    refused(["stability", "--fail-on", level], tmp_path, "--fail-on")
