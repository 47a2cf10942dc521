"""`make gpu-check` on a machine without a GPU: the plan (its steps, exact commands and budget
inside 8 minutes), the install that never touches torch nor reaches the network for peers, the
one-sentence refusal without CUDA, a step stopped at its budget, and the summary it writes."""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from normbench.config import Selection, SpeedConfig
from normbench.results import dumps
from normbench.suites.speed import run_speed

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


gc = load("gpu_check")
summary = load("gpu_check_summary")


def test_the_plan_is_the_issues_in_order_within_8_minutes(tmp_path, capsys):
    out = tmp_path / "check"
    assert gc.main(["--dry-run", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    steps = gc.plan(out, None)
    assert [s.name for s in steps] == ["install", "env", "pytest", "speed", "memory", "stability"]
    assert gc.budget_s(steps) <= gc.LIMIT_S and f"{gc.budget_s(steps)} s in all" in text
    assert not out.exists()  # a dry run writes nothing
    speed = " ".join(steps[3].commands[0])
    assert "speed --backend eager,compile,triton" in speed and "--mode fwd,bwd" in speed
    for step in steps[3:]:  # the same shapes, on CUDA, one folder
        cmd = " ".join(step.commands[0])
        assert "--device cuda --dtype bf16 --dim 1024,2048,4096,8192 --batch 8 --seq 2048" in cmd
        assert f"--out {out / 'runs'}" in cmd and cmd in text
    assert steps[2].commands[0][2:5] == ("pytest", "-m", "gpu")


def test_a_rerun_of_some_steps_keeps_install_and_env(tmp_path, capsys):
    out = tmp_path / "check"
    every = gc.plan(out, None)
    chosen = gc.choose(every, "stability,pytest")
    assert [s.name for s in chosen] == ["install", "env", "pytest", "stability"]
    assert gc.main(["--dry-run", "--out", str(out), "--steps", "speed"]) == 0
    text = capsys.readouterr().out
    budget = gc.budget_s(gc.choose(every, "speed"))  # install, env and speed's
    assert text.startswith(f"gpu-check plan: 3 steps, {budget} s in all") and "3. speed (" in text
    rows = gc.left_out(every, chosen)
    assert [(r.name, r.status) for r in rows] == [("speed", "left out"), ("memory", "left out")]
    for bad in ("spead", ",", "pytest,nosuch"):
        assert gc.main(["--dry-run", "--out", str(out), "--steps", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"gpu-check: --steps {bad!r}: name steps among install, env, ")
        assert err.count("\n") == 1
    assert not out.exists()


def test_without_cuda_it_says_so_in_one_sentence(tmp_path):
    out = tmp_path / "check"
    proc = subprocess.run([sys.executable, str(BENCH / "gpu_check.py"), "--out", str(out)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.startswith("gpu-check: no CUDA device: torch ")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not out.exists()


def fake_wheels(folder: Path) -> None:
    folder.mkdir()
    for name in ("liger_kernel-0.5.10-py3-none-any.whl", "torch-2.5.1-cp311-cp311-linux_x86_64.whl",
                 "nvidia_cudnn_cu12-9.1.0.70-py3-none-manylinux2014_x86_64.whl",
                 "triton-3.1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                 "typer-0.12.0-py3-none-any.whl",
                 "nvidia_cutlass_dsl-4.1.0-cp311-cp311-manylinux_2_28_x86_64.whl",
                 "nvidia_cutlass_dsl_libs_cu13-4.8.1-cp312-cp312-manylinux_2_28_x86_64.whl",
                 ):  # fmt: skip
        (folder / name).write_bytes(b"")


def test_install_keeps_torch_and_takes_peers_from_the_folder_only(tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    fake_wheels(wheels)
    monkeypatch.setattr(gc, "satisfied", lambda req: not req.startswith("rich"))
    have = {"typer": "0.12.0", "torch": "2.5.1"}  # no normbench, no liger-kernel yet
    monkeypatch.setattr(gc, "installed", have.get)
    steps = gc.plan(tmp_path / "out", wheels)
    deps, project, peers = steps[0].commands
    # Missing deps: resolved from the folder alone, with torch/triton/nvidia-* pinned.
    assert deps[-1].startswith("rich") and "--constraint" in deps
    assert deps[deps.index("--no-index") + 1 : deps.index("--no-index") + 3] == (
        "--find-links", str(wheels))  # fmt: skip
    assert project[-2:] == ("-e", str(gc.ROOT)) and "--no-deps" in project
    assert "--no-index" in peers and "--no-deps" in peers
    installed_wheels = sorted(Path(a).name for a in peers if a.endswith(".whl"))
    assert installed_wheels == [  # typer is there already; torch's stack is never installed
        "liger_kernel-0.5.10-py3-none-any.whl",
        "nvidia_cutlass_dsl-4.1.0-cp311-cp311-manylinux_2_28_x86_64.whl",
        "nvidia_cutlass_dsl_libs_cu13-4.8.1-cp312-cp312-manylinux_2_28_x86_64.whl",  # QuACK's
    ]
    assert "liger" in " ".join(steps[3].commands[0])  # its peer joins the timed backends
    assert not any("torch" in a or "triton" in a for cmd in steps[0].commands for a in cmd
                   if not a.startswith(str(tmp_path)))  # fmt: skip


def test_what_is_never_installed_and_what_is_pinned():
    assert gc.kept("torch") and gc.kept("nvidia-cublas-cu12") and gc.kept("nvidia_nccl_cu12")
    assert not gc.kept("nvidia-ml-py")  # NVML's binding is a dependency of normbench
    assert not gc.kept("nvidia-cutlass-dsl")  # QuACK's CuTe DSL: a peer's, installed
    names = {gc.req_name(r) for r in gc.requirements()}
    assert {"typer", "pandas", "nvidia-ml-py", "pytest"} <= names
    # jsonschema (like ruff) serves the CPU suite only; a GPU image lacking it is fine.
    assert not names & {"torch", "triton", "ruff", "jsonschema"}
    pins = gc.pins()
    from importlib.metadata import version

    # The distribution's version, which pip compares: a CUDA wheel from PyPI is "2.11.0" while
    # torch.__version__ says "2.11.0+cu130".
    assert f"torch=={version('torch')}" in pins and all("==" in p for p in pins)


def test_python_3_10_reads_the_same_requirements(monkeypatch):
    # No tomllib before 3.11: pip's own tomli reads pyproject. (A regex over the quoted strings
    # read "The file", quoted in a comment, as a requirement and crashed the plan.)
    expected = gc.requirements()
    monkeypatch.setitem(sys.modules, "tomllib", None)  # import tomllib raises ImportError
    assert gc.requirements() == expected
    assert all(gc.req_name(r) for r in expected) and len(expected) >= 8


def test_the_stack_is_what_torch_pulls_in_not_a_peers_cuda_library(monkeypatch):
    # torch 2.11's metadata, cut down: its CUDA libraries come through cuda-toolkit's extras.
    reqs = {
        "torch": ["jinja2", 'cuda-toolkit[cublas,cudart]==13.0.2; platform_system == "Linux"',
                  'nvidia-cudnn-cu13==9.19.0.56; platform_system == "Linux"', "triton==3.6.0",
                  'opt-einsum>=3.3; extra == "opt-einsum"'],
        "cuda-toolkit": ['nvidia-cublas==13.*; extra == "cublas"',
                         'nvidia-cuda-runtime==13.*; extra == "cudart"',
                         'nvidia-cuda-nvcc==13.*; extra == "nvcc"'],
        "jinja2": ["MarkupSafe>=2.0"],
    }  # fmt: skip

    leaves = {
        "nvidia-cublas",
        "nvidia-cuda-runtime",
        "nvidia-cudnn-cu13",
        "triton",
        "markupsafe",
        "nvidia-cuda-nvcc",
        "opt-einsum",
    }  # installed, needing nothing

    def requires(name):
        if name in reqs or name in leaves:
            return reqs.get(name, [])
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "requires", requires)  # the module gpu_check reads
    gc._torch_stack.cache_clear()
    try:
        stack = gc._torch_stack()
    finally:
        gc._torch_stack.cache_clear()
    assert stack == {"torch", "jinja2", "markupsafe", "cuda-toolkit", "nvidia-cublas",
                     "nvidia-cuda-runtime", "nvidia-cudnn-cu13", "triton"}  # fmt: skip
    # An extra nobody asked for is not the stack, nor is a peer's library named like one.
    assert not {"nvidia-cuda-nvcc", "opt-einsum"} & stack
    assert not gc.kept("nvidia-cutlass-dsl-libs-cu13") and gc.kept("nvidia-cublas")


def test_a_step_past_its_budget_gets_sigterm_then_stops(tmp_path, monkeypatch):
    monkeypatch.setattr(gc, "GRACE_S", 1)
    flag = tmp_path / "term"
    code = ("import signal, sys, time\n"
            f"signal.signal(signal.SIGTERM, lambda *a: (open({str(flag)!r}, 'w').close(), "
            "sys.exit(130)))\n"
            "time.sleep(60)\n")  # fmt: skip
    step = gc.Step("slow", "sleeps", 3, ((sys.executable, "-c", code),), "slow.log")
    import time

    r = gc.run_step(step, tmp_path, time.monotonic() + 100)
    assert r.status == "timed out" and 1.5 < r.wall_s < 3.5 and flag.exists()
    ok = gc.run_step(gc.Step("ok", "", 5, ((sys.executable, "-c", "print(1)"),), "ok.log"),
                     tmp_path, time.monotonic() + 100)  # fmt: skip
    assert ok.status == "ok" and (tmp_path / "ok.log").read_text() == "1\n"
    late = gc.run_step(step, tmp_path, time.monotonic() + 0.5)  # under GRACE_S left
    assert late.status == "not run"


def test_install_goes_on_past_a_dependency_it_cannot_get(tmp_path):
    # Offline, a missing dependency fails; the project and the peers' wheels still go in.
    marker = tmp_path / "peers-installed"
    fail = (sys.executable, "-c", "raise SystemExit(1)")
    peers = (sys.executable, "-c", f"open({str(marker)!r}, 'w').close()")
    import time

    step = gc.Step("install", "", 20, (fail, peers), "install.log", keep_going=True)
    r = gc.run_step(step, tmp_path, time.monotonic() + 100)
    assert r.status == "failed" and r.detail.startswith("exit 1: ") and marker.exists()
    marker.unlink()
    r = gc.run_step(gc.Step("speed", "", 20, (fail, peers), "s.log"), tmp_path,
                    time.monotonic() + 100)  # fmt: skip
    assert r.status == "failed" and not marker.exists()  # other steps stop at a failure
    # A normbench step's code is said in words: speed exits 4 on a backend's wrong numbers.
    four = (sys.executable, "-c", "raise SystemExit(4)")
    r = gc.run_step(gc.Step("speed", "", 20, (four,), "s.log"), tmp_path, time.monotonic() + 100)
    assert r.detail.startswith("exit 4 (a backend gave wrong numbers (a mismatch row), or the")


def test_pip_fails_fast_where_no_index_can_be_reached(tmp_path, monkeypatch):
    monkeypatch.setattr(gc, "satisfied", lambda req: not req.startswith("rich"))
    deps = gc.plan(tmp_path / "out", None)[0].commands[0]
    assert deps[-1].startswith("rich") and "--no-index" not in deps  # an index, if one answers
    assert deps[deps.index("--retries") + 1] == "0" and deps[deps.index("--timeout") + 1] == "5"


def test_pip_download_args_name_this_python_and_platform():
    args = gc.pip_download_args()
    v = sys.version_info
    assert f"--python-version {v.major}.{v.minor}" in args and "--platform " in args
    assert f"--abi cp{v.major}{v.minor}" in args and args.startswith("--only-binary=:all:")


@pytest.fixture(scope="module")
def speed_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("speed")
    sel = Selection(("rmsnorm",), ("eager", "triton"), ("fp32",), (64,), (1,), (8,), ("fwd",))
    return run_speed(SpeedConfig(sel, threads=1, time_budget=0.05, quick=True, out=out))


def test_the_summary_reads_what_the_steps_left(tmp_path, speed_run):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "speed-1.json").write_text(dumps(speed_run))
    (tmp_path / "env.json").write_text(json.dumps(speed_run.env))
    (tmp_path / "pytest.log").write_text(
        "tests/gpu/test_a_gpu.py::test_one PASSED [ 33%]\n"
        "tests/gpu/test_a_gpu.py::test_two FAILED [ 66%]\n"
        "tests/gpu/test_b_gpu.py::test_three SKIPPED (needs two CUDA devices) [100%]\n"
        "SKIPPED [1] tests/gpu/test_b_gpu.py:9: needs two CUDA devices\n"
    )
    steps = [gc.StepResult("speed", "timed out", 150.2, 150, "stopped at its 150 s budget")]
    text = summary.write_summary(tmp_path, steps).read_text()
    eager = next(r for r in speed_run.cases() if r.backend == "eager")
    pct = 100 * eager.value("bandwidth") / speed_run.env["copy_bandwidth_gbps"]
    assert f"{eager.value('bandwidth') / 1e3:.2f} TB/s ({pct:.0f}%)" in text
    assert "| speed  | timed out" in text or "| speed | timed out" in text
    assert "1 failed, 1 passed, 1 skipped" in text
    assert "- FAILED tests/gpu/test_a_gpu.py::test_two" in text
    assert "skipped: needs two CUDA devices" in text
    triton = next(r for r in speed_run.cases() if r.backend == "triton")
    assert triton.note.split(" (")[0] in text  # why the interpreter was not timed
    assert "no memory run in runs/" in text and "no stability run in runs/" in text
    # Every peer is accounted for, timed or not and why: here none imports.
    peers = text.split("## Peers")[1].split("##")[0]
    for name, (module, _) in gc.PEERS.items():
        line = next(x for x in peers.splitlines() if x.startswith(f"| {name} "))
        assert "not timed" in line and f"No module named '{module}'" in line


def test_the_folder_packs_into_one_archive(tmp_path):
    # A machine that hands back 8 files two folders down could not return the check's ~20.
    import tarfile

    folder = tmp_path / "gc"
    (folder / "runs").mkdir(parents=True)
    (folder / "summary.md").write_text("# summary\n")
    (folder / "runs" / "speed-1.json").write_text("{}")
    archive = gc.pack(folder, tmp_path / "out" / "gc.tgz")
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["gc", "gc/runs", "gc/runs/speed-1.json",
                                          "gc/summary.md"]  # fmt: skip
        assert tar.extractfile("gc/summary.md").read() == b"# summary\n"
