"""Hostile plugins and a hostile cache, through the CLI in a subprocess (exits are involved):
a plugin's sys.exit() at import or in its forward, os._exit() in an `ab` worker, NaN or an out of
memory on one side, and a cache folder that cannot be written or holds the wrong JSON. Each must
end with the documented exit code, one sentence, and the reports on disk (issue 19)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

SMALL = ["--dim", "64", "--batch", "2", "--seq", "4", "--variant", "rmsnorm", "--dtype", "fp32"]
TIMED = [*SMALL, "--quick", "--time-budget", "0.05"]

GOOD = """
import torch
def rmsnorm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight
"""


def plugin(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return path


def normbench(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-m", "normbench", *args], cwd=cwd, env=full, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip


def one_report(folder: Path, suite: str, side: str = "") -> dict:
    """The run's JSON report (`side` "A"/"B": an ab run's side)."""
    (path,) = sorted(folder.glob(f"{suite}-????????-??????{'-' + side if side else ''}.json"))
    return json.loads(path.read_text())


def frame(folder: Path, suite: str) -> pd.DataFrame:
    return pd.DataFrame(one_report(folder, suite)["rows"])


# --- sys.exit() in a plugin -------------------------------------------------------------------


def test_sys_exit_at_import_is_one_sentence_naming_the_plugin_exit_2(tmp_path):
    plugin(tmp_path, "quitter", "import sys\nsys.exit(0)\n")
    out = tmp_path / "out"
    for cmd in (["stability", "--fail-on", "FAIL"], ["speed", *TIMED[-3:]]):
        p = normbench([*cmd, "--plugin", "quitter.py", *SMALL, "--out", str(out)], tmp_path)
        assert p.returncode == 2, p.stderr
        assert p.stderr.strip() == (
            "normbench: plugin 'quitter.py' failed to import: called sys.exit(0)"
        )
        assert "Traceback" not in p.stderr
        assert not out.exists()  # nothing was measured


def test_sys_exit_in_forward_is_an_error_row_and_stability_cannot_pass(tmp_path):
    plugin(tmp_path, "quitter", "import sys\ndef rmsnorm(x, weight, eps):\n    sys.exit(0)\n")
    out = tmp_path / "out"
    args = ["stability", "--plugin", "quitter.py", "--backend", "quitter,eager", *SMALL]
    p = normbench([*args, "--fail-on", "FAIL", "--out", str(out), "--format", "json"], tmp_path)
    # Not judged is not a PASS: exit 4 (the gate could not judge), not 0 and not a FAIL's 1.
    assert p.returncode == 4, p.stdout + p.stderr
    rows = frame(out, "stability")
    mine = rows[(rows.backend == "quitter") & (rows.metric == "verdict")]
    ran = mine[mine.status != "skipped"]
    eager = rows[(rows.backend == "eager") & (rows.metric == "verdict") & (rows.status == "ok")]
    assert len(ran) == len(eager) > 0  # every input eager judged, the plugin errored on
    assert set(ran.status) == {"error"}
    assert ran.verdict.isna().all()  # no verdict: never counted as FAIL
    assert ran.note.str.startswith(
        "plugin quitter (plugin file quitter.py): called sys.exit(0)"
    ).all()
    assert f"Cases: {len(eager)} PASS, {len(ran)} error" in p.stdout


def test_sys_exit_in_forward_under_speed_baseline_is_broken_exit_1(tmp_path):
    """The baseline's backend of that name was healthy; now it exits: broken (exit 1), and the
    speed run's error row is on disk."""
    plugin(tmp_path / "good", "kern", GOOD)
    plugin(tmp_path / "bad", "kern", "import sys\ndef rmsnorm(x, weight, eps):\n    sys.exit(0)\n")
    base, new = tmp_path / "base", tmp_path / "new"
    common = ["speed", "--backend", "kern", *TIMED, "--format", "json"]
    p = normbench([*common, "--plugin", "good/kern.py", "--out", str(base)], tmp_path)
    assert p.returncode == 0, p.stderr
    (base_file,) = base.glob("speed-*.json")
    p = normbench(
        [*common, "--plugin", "bad/kern.py", "--out", str(new), "--baseline", str(base_file)],
        tmp_path,
    )
    assert p.returncode == 1, p.stdout + p.stderr
    assert "1 broken" in p.stdout
    rows = frame(new, "speed")
    (row,) = rows[rows.backend == "kern"].itertuples()
    assert row.status == "error"
    assert row.note.startswith("plugin kern (plugin file bad/kern.py): called sys.exit(0)")
    verdicts = [r["verdict"] for r in one_report(new, "compare")["rows"]]
    assert verdicts == ["broken"]


WRONG = """
import torch
def rmsnorm(x, weight, eps):
    return 1.1 * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight
"""


def test_a_wrong_kernel_fails_speed_and_memory_exit_4_with_or_without_a_baseline(tmp_path):
    """A CI job that only times its kernel must not go green on wrong numbers: a mismatch is
    never timed, so the measurement asked for could not be made (exit 4, the reports written)."""
    from normbench.results import Run, load_run
    from normbench.suites import get_suite

    plugin(tmp_path / "bad", "kern", WRONG)
    out = tmp_path / "speed"
    args = ["speed", "--plugin", "bad/kern.py", "--backend", "kern,eager", *TIMED]
    p = normbench([*args, "--format", "json", "--out", str(out)], tmp_path)
    assert p.returncode == 4, p.stdout + p.stderr
    assert "1 mismatch (a mismatch: wrong numbers, never" in " ".join(p.stdout.split())
    rows = frame(out, "speed")
    assert set(rows[rows.backend == "kern"].status) == {"mismatch"}
    assert "ok" in set(rows[rows.backend == "eager"].status)  # the run went on
    # memory's exit code is the same rule on its rows (a memory run of this plugin: the same
    # mismatch, found by the same gate)
    run = load_run(next(out.glob("speed-*.json")))
    assert get_suite("memory").exit_code(None, run) == get_suite("speed").exit_code(None, run) == 4
    assert get_suite("memory").exit_code(None, Run("memory", {}, {}, [])) == 0
    # Under --baseline the gate's code stands where it finds something (broken where the
    # baseline ran: exit 1, test_sys_exit_in_forward_under_speed_baseline_is_broken_exit_1);
    # a mismatch it does not call broken (a kernel new to the baseline) still exits 4.
    base = tmp_path / "base"
    p = normbench(["speed", "--backend", "eager", *TIMED, "--format", "json", "--out",
                   str(base)], tmp_path)  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    p = normbench([*args, "--format", "json", "--out", str(tmp_path / "new"), "--baseline",
                   str(base)], tmp_path)  # fmt: skip
    verdicts = {r["backend"]: r["verdict"] for r in one_report(tmp_path / "new", "compare")["rows"]
                if r["metric"] == "ratio"}  # fmt: skip
    assert verdicts["kern"] == "new"
    # eager's own verdict is a timing on a shared machine: a busy core can make it a confirmed
    # regression (exit 1, the gate's); anything short of that leaves the mismatch's 4.
    assert p.returncode == (1 if verdicts["eager"] == "regression" else 4), p.stdout + p.stderr


# --- ab: one side fails -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, status",
    [
        ("import torch\ndef rmsnorm(x, weight, eps):\n"
         "    return torch.full_like(x, float('nan'))\n", "mismatch"),
        ("def rmsnorm(x, weight, eps):\n    raise ValueError('no')\n", "error"),
        ("import sys\ndef rmsnorm(x, weight, eps):\n    sys.exit(0)\n", "error"),
    ],
)  # fmt: skip
def test_ab_side_b_failing_while_a_ran_is_broken_exit_1(tmp_path, body, status):
    plugin(tmp_path, "side", body)
    out = tmp_path / "out"
    p = normbench(["ab", "--a", "eager", "--b", "plugin:side.py", *TIMED, "--out", str(out)],
                  tmp_path)  # fmt: skip
    assert p.returncode == 1, p.stdout + p.stderr
    assert "FAIL: 0 confirmed regressions, 1 broken" in p.stdout
    (row,) = one_report(out, "ab")["rows"]
    assert row["verdict"] == "broken"
    assert row["note"].startswith(f"ok in A eager, {status} in B side: plugin side")
    # Side A passed its gate and was left untimed (ok, no time); side B is the failure.
    sides = {s: one_report(out, "ab", s)["rows"] for s in "AB"}
    assert [(r["status"], r["value"]) for r in sides["A"]] == [("ok", None)]
    assert [r["status"] for r in sides["B"]] == [status]


def test_os_exit_in_an_ab_worker_is_that_sides_error_never_a_pass(tmp_path):
    """`--b plugin:FILE@.` runs side B in a worker process: a plugin that os._exit()s ends
    only that worker, and the case is broken (exit 1) with the reason."""
    plugin(tmp_path, "killer", "import os\ndef rmsnorm(x, weight, eps):\n    os._exit(0)\n")
    out = tmp_path / "out"
    p = normbench(["ab", "--a", "eager", "--b", "plugin:killer.py@.", "--processes", "1",
                   *TIMED, "--out", str(out)], tmp_path)  # fmt: skip
    assert p.returncode == 1, p.stdout + p.stderr
    (row,) = one_report(out, "ab")["rows"]
    assert row["verdict"] == "broken"
    assert row["note"].startswith("ok in A eager, error in B killer: the worker process died")


# --- stability: could not run is not a FAIL ---------------------------------------------------

OOM = """
import torch
def rmsnorm(x, weight, eps):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
"""


def test_out_of_memory_in_stability_is_an_error_not_a_fail(tmp_path):
    plugin(tmp_path, "hungry", OOM)
    out = tmp_path / "out"
    args = ["stability", "--plugin", "hungry.py", "--backend", "hungry", *SMALL]
    p = normbench([*args, "--fail-on", "FAIL", "--out", str(out), "--format", "json"], tmp_path)
    assert p.returncode == 4, p.stdout + p.stderr
    rows = frame(out, "stability")
    ran = rows[(rows.metric == "verdict") & (rows.status != "skipped")]
    assert len(ran) > 0 and set(ran.status) == {"error"} and ran.verdict.isna().all()
    assert ran.note.str.contains("out of memory: CUDA out of memory").all()
    assert f"Cases: {len(ran)} error" in p.stdout
    summary, gate = p.stdout.split("Cases:")[1].split("--fail-on FAIL:")
    assert "FAIL" not in summary
    assert gate.startswith(f" no case reached FAIL, but {len(ran)} could not run")  # why exit 4
    # Without --fail-on nothing was asked to pass: exit 0.
    p = normbench([*args, "--out", str(tmp_path / "o2"), "--format", "json"], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr


def test_an_implementation_that_raises_is_still_a_fail(tmp_path):
    plugin(tmp_path, "raiser", "def rmsnorm(x, weight, eps):\n    raise ValueError('bad')\n")
    out = tmp_path / "out"
    args = ["stability", "--plugin", "raiser.py", "--backend", "raiser", *SMALL]
    p = normbench([*args, "--fail-on", "FAIL", "--out", str(out), "--format", "json"], tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr
    rows = frame(out, "stability")
    ran = rows[(rows.metric == "verdict") & (rows.status != "skipped")]
    assert set(ran.verdict) == {"FAIL"} and set(ran.status) == {"error"}


def test_run_verdict_and_exit_code_keep_errors_apart_from_fails():
    from normbench.cases import Case, Shape
    from normbench.config import Selection, StabilityConfig
    from normbench.results import Measurement, Run, Status
    from normbench.results.stability import StabilityResult, Verdict
    from normbench.suites.stability import exit_code, run_verdict

    def row(dist: str, verdict: Verdict | None, status: Status) -> StabilityResult:
        case = Case("rmsnorm", "eager", "fp32", Shape(1, 4, 64), "fwd", "cpu", dist)
        value = None if verdict is None else verdict.rank
        m = Measurement("verdict", value, "", status=status, note="x")
        return StabilityResult.of_case(case, [m], verdict=verdict)

    error = row("normal", None, Status.ERROR)
    fail = row("large", Verdict.FAIL, Status.MISMATCH)
    ok = row("tiny", Verdict.PASS, Status.OK)
    sel = Selection(variants=("rmsnorm",), backends=("eager",), dtypes=("fp32",), dims=(64,),
                    batches=(1,), seqs=(4,), modes=("fwd",))  # fmt: skip
    cfg = StabilityConfig(selection=sel, dists=("normal",), fail_on="FAIL")
    expect = {(ok,): ("PASS", 0), (ok, error): ("PASS", 4), (ok, error, fail): ("FAIL", 1)}
    for results, (verdict, code) in expect.items():
        run = Run("stability", {}, {}, list(results))
        assert (run_verdict(run), exit_code(cfg, run)) == (verdict, code)
    run = Run("stability", {}, {}, [ok, error])
    assert exit_code(StabilityConfig(sel, ("normal",)), run) == 0  # no --fail-on


# --- the cache --------------------------------------------------------------------------------


def test_cache_dir_order_normbench_then_xdg_then_home(monkeypatch, tmp_path):
    from normbench.env import cache_dir

    monkeypatch.setenv("NORMBENCH_CACHE_DIR", str(tmp_path / "nb"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "nb"
    monkeypatch.delenv("NORMBENCH_CACHE_DIR")
    assert cache_dir() == tmp_path / "xdg" / "normbench"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # the XDG rule: ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "normbench"


def test_unwritable_cache_warns_once_and_the_run_is_kept(tmp_path):
    (tmp_path / "afile").write_text("")
    out = tmp_path / "out"
    args = ["speed", "--backend", "eager", *TIMED, "--format", "json", "--out", str(out)]
    p = normbench(args, tmp_path, NORMBENCH_CACHE_DIR=str(tmp_path / "afile" / "sub"))
    assert p.returncode == 0, p.stderr
    said = [line for line in p.stderr.splitlines() if line.strip()]
    assert [line for line in said if not line.startswith("normbench speed: ")] == [  # progress
        f"normbench: warning: cannot read the cache {tmp_path}/afile/sub/bandwidth.json "
        "(Not a directory); measuring without it"
    ]
    rows = frame(out, "speed")
    assert list(rows[rows.metric == "time"].status) == ["ok"]


def test_a_cache_holding_a_list_is_measured_again_and_replaced(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "bandwidth.json").write_text("[1, 2]")
    p = normbench(["env", "--json"], tmp_path, NORMBENCH_CACHE_DIR=str(cache))
    assert p.returncode == 0, p.stderr
    assert "the cache holds a JSON list, not an object" in p.stderr
    assert len([line for line in p.stderr.splitlines() if line.strip()]) == 1
    printed = json.loads(p.stdout)["copy_bandwidth_gbps"]
    (entry,) = json.loads((cache / "bandwidth.json").read_text()).values()
    assert round(entry["gbps"], 2) == printed > 0


def test_xdg_cache_home_is_honoured(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NORMBENCH_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    p = subprocess.run([sys.executable, "-m", "normbench", "env", "--json"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr
    (entry,) = json.loads((tmp_path / "xdg" / "normbench" / "bandwidth.json").read_text()).values()
    assert round(entry["gbps"], 2) == json.loads(p.stdout)["copy_bandwidth_gbps"]


REFUSES = """
import torch
from normbench.backends.base import backend_from_functions

def _rms(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight

BACKEND = backend_from_functions("picky", {"rmsnorm": _rms})
_supports = BACKEND.supports
BACKEND.supports = lambda case: (
    f"picky handles N <= 32 only, got N = {case.shape.dim}" if case.shape.dim > 32
    else _supports(case)
)
"""


def test_a_supports_refusal_is_skipped_with_its_reason_in_every_suite(tmp_path):
    plugin(tmp_path, "picky", REFUSES)
    why = "picky handles N <= 32 only, got N = 64"
    common = ["--plugin", "picky.py", "--backend", "picky", "--format", "json"]
    for suite, extra in (("stability", ["--fail-on", "FAIL"]), ("memory", []),
                         ("speed", TIMED[-3:])):  # fmt: skip
        out = tmp_path / suite
        p = normbench([suite, *common, *SMALL, *extra, "--out", str(out)], tmp_path)
        assert p.returncode == 0, p.stdout + p.stderr
        rows = frame(out, suite)
        assert len(rows) > 0 and set(rows.status) == {"skipped"}, suite
        assert set(rows.note) == {why}, suite


NOT_A_REASON = REFUSES.replace('f"picky handles N <= 32 only, got N = {case.shape.dim}"', "42")


def test_a_supports_answer_that_is_no_reason_is_an_error_row_in_every_suite(tmp_path, monkeypatch):
    """supports() -> 42 reached the reports: a traceback after the whole run was measured, a
    JSON that failed the package's own schema, and `report` of it a traceback too. In-process
    (the same code path as the command, without an interpreter start per suite)."""
    from typer.testing import CliRunner

    from normbench.cli import app
    from normbench.registry import unregister_backend

    plugin(tmp_path, "picky", NOT_A_REASON)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    common = ["--plugin", "picky.py", "--backend", "picky", "--format", "json,md"]
    try:
        for suite, extra in (("stability", []), ("memory", []), ("speed", TIMED[-3:])):
            out = tmp_path / suite
            r = runner.invoke(app, [suite, *common, *SMALL, *extra, "--out", str(out)])
            assert r.exit_code in (0, 4), r.output  # a traceback is exit 1
            rows = frame(out, suite)
            assert len(rows) > 0 and set(rows.status) == {"error"}, suite
            assert all("picky.supports() returned an int, not None or a reason" in n
                       for n in rows.note), set(rows.note)  # fmt: skip
            assert list(out.glob("*.md")) and not list(out.glob("*.partial.jsonl"))
            again = runner.invoke(app, ["report", str(next(out.glob("*.json"))), "--out",
                                        str(out / "r")])  # fmt: skip
            assert again.exit_code == 0, again.output
    finally:
        unregister_backend("picky")


QUIT_IN_AVAILABLE = """
import sys
from normbench.backends.base import Backend

class Quitter(Backend):
    name = "quitter"
    description = "calls sys.exit in available()"

    def available(self):
        sys.exit(0)

    def build(self, variant, case):
        raise AssertionError("never built")

BACKEND = Quitter()
"""


def test_sys_exit_outside_a_case_is_never_a_silent_zero(tmp_path):
    """Plugin code run while a command is set up (available(), listing the backends) that
    calls sys.exit(0): one sentence and exit 2, not a silent 0. Inside a case the same call is
    an error row and the other backends run."""
    plugin(tmp_path, "quit_available", QUIT_IN_AVAILABLE)
    p = normbench(["list", "--plugin", "quit_available.py"], tmp_path)
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stderr.strip().endswith(
        "normbench: plugin code called sys.exit(0) while the run was set up; nothing was measured"
    )
    assert "Traceback" not in p.stderr
    out = tmp_path / "out"
    p = normbench(["speed", "--plugin", "quit_available.py", "--backend", "quitter,eager",
                   *TIMED, "--out", str(out), "--format", "json"], tmp_path)  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    rows = frame(out, "speed")
    times = rows[rows.metric == "time"]
    assert set(times[times.backend == "eager"].status) == {"ok"}
    assert set(times[times.backend == "quitter"].status) == {"error"}
