"""The whole GPU verification as one command (`make gpu-check`), ending inside 8 minutes on an
H100 or H200 (docs/performance.md "The GPU check").

    python benchmarks/gpu_check.py                    # on a CUDA machine: install, check, summarize
    python benchmarks/gpu_check.py --wheels ~/wheels  # peers and missing deps from a local folder
    python benchmarks/gpu_check.py --dry-run          # anywhere: the exact plan and its budget
    python benchmarks/gpu_check.py --steps pytest     # a rerun of what failed (+ install, env)
    python benchmarks/gpu_check.py --pip-download-args  # on the GPU machine: its wheel tags

In order, each step under its own time budget (a step past it gets SIGTERM, so normbench writes
the reports of the cases that finished, then SIGKILL at the budget's end): install the project
and what it lacks without touching torch, an environment report, `pytest -m gpu`, `normbench
speed` (bf16, N = 1024..8192, fwd and bwd; eager, compile, triton and every peer that imports),
then `memory` and `stability` on the same shapes. One folder gets every JSON run, each step's
log and summary.md (gpu_check_summary.py): TB/s, % of the measured copy bandwidth, pass/fail,
what was skipped and why. Without a CUDA device it says so in one sentence and exits 2.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata as md
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT_S = 480  # what the whole check must end within (issue 21)
GRACE_S = 10  # a step past its budget gets SIGTERM this long before its budget's end
DIMS = "1024,2048,4096,8192"
SHAPE = ["--dtype", "bf16", "--dim", DIMS, "--batch", "8", "--seq", "2048"]
# Peer backends (normbench.backends.external): (the module they import, the distribution that
# provides it).
PEERS = {
    "liger": ("liger_kernel", "liger-kernel"),
    "apex": ("apex", "apex"),
    "quack": ("quack", "quack-kernels"),
    "flashinfer": ("flashinfer", "flashinfer-python"),
}
# Never installed or replaced by the check: the machine's own CUDA stack, that is torch and
# everything its installed requirements pull in, transitively and with the extras asked for
# (torch 2.11 takes its CUDA libraries through cuda-toolkit[cublas,cudart,...], so nvidia-cublas
# is no direct requirement of it); and, without torch's metadata, the names torch's runtime
# wheels have. A peer's own CUDA library is not part of it: nvidia-cutlass-dsl-libs-cu13
# (QuACK's CuTe DSL) ends in -cu13 like them. nvidia-ml-py (NVML's binding) is normbench's.
STACK = re.compile(
    r"^(torch|triton|pytorch-triton(-rocm)?|nvidia-(cublas|cuda-cupti|cuda-nvrtc|cuda-runtime|"
    r"cudnn|cufft|cufile|curand|cusolver|cusparse|cusparselt|nccl|nvjitlink|nvshmem|nvtx)"
    r"(-cu\d+)?)$"
)


def kept(name: str) -> bool:
    """True for a distribution of the machine's torch stack."""
    return bool(STACK.match(canonical(name))) or canonical(name) in _torch_stack()


def _requirement(req: str):
    """A packaging Requirement (pip's own copy where packaging is not installed)."""
    try:
        from packaging.requirements import Requirement
    except ImportError:
        from pip._vendor.packaging.requirements import Requirement
    return Requirement(req)


@functools.cache
def _torch_stack() -> frozenset[str]:
    """torch and the installed distributions its requirements reach, each with the extras its
    requirer asked for (a requirement's marker is evaluated with each of them)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [("torch", frozenset[str]())]
    stack: set[str] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            reqs = md.requires(name) or []
        except md.PackageNotFoundError:
            continue  # not installed: nothing of it to keep
        stack.add(name)
        for req in map(_requirement, reqs):
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras | {""}):
                todo.append((canonical(req.name), frozenset(map(canonical, req.extras))))
    return frozenset(stack)


STABILITY_DISTS = "normal,large,offset,massive,constant,zero,inf"


@dataclass(frozen=True)
class Step:
    name: str
    what: str
    budget_s: int
    commands: tuple[tuple[str, ...], ...]  # run one after another within the budget
    log: str  # file under the output folder
    # Run the later commands after one fails (install: a dependency that cannot be had must
    # not keep the peers' wheels out); the step is failed all the same.
    keep_going: bool = False


@dataclass
class StepResult:
    name: str
    status: str  # ok, failed, timed out, not run
    wall_s: float
    budget_s: int
    detail: str = ""


# --- what the machine has ---------------------------------------------------------------------


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def requirements() -> list[str]:
    """normbench's dependencies and pytest (what the steps import) from pyproject.toml, torch
    and triton left out: the GPU machine's own are what the check measures. The rest of the
    dev extra (ruff, jsonschema) serves the CPU suite only: a GPU image without it is fine."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: pip's own copy of tomli, the same parser
        from pip._vendor import tomli as tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dev = list(project["optional-dependencies"]["dev"])
    reqs = list(project["dependencies"]) + [r for r in dev if req_name(r) == "pytest"]
    # torch's own requirements stay (jinja2 is one): kept() is for what the check must not
    # install or replace, and a requirement torch shares is met already.
    return [r for r in reqs if not STACK.match(canonical(req_name(r)))]


def req_name(req: str) -> str:
    return re.match(r"\s*([A-Za-z0-9][A-Za-z0-9_.-]*)", req).group(1)


def satisfied(req: str) -> bool:
    """Installed at a version the requirement allows (its environment marker honoured)."""
    r = _requirement(req)
    if r.marker is not None and not r.marker.evaluate():
        return True
    have = installed(r.name)
    return have is not None and r.specifier.contains(have, prereleases=True)


def pins() -> list[str]:
    """torch, triton and the nvidia-* runtime wheels at their installed versions: a constraint
    file of these makes pip fail rather than replace them."""
    out = []
    for dist in md.distributions():
        name = dist.metadata["Name"] or ""
        if kept(name):
            out.append(f"{name}=={dist.version}")
    return sorted(set(out))


def wheel_name(path: Path) -> tuple[str, str]:
    """(project, version) of a wheel file name (PEP 427)."""
    parts = path.name.split("-")
    return canonical(parts[0]), parts[1]


def local_wheels(folder: Path | None) -> list[Path]:
    """The wheels of `folder` the check installs: not torch, triton or nvidia-*, not installed
    at that version already."""
    if folder is None:
        return []
    out = []
    for whl in sorted(folder.glob("*.whl")):
        name, version = wheel_name(whl)
        if not kept(name) and installed(name) != version:
            out.append(whl)
    return out


def importable_peers(wheels: list[Path]) -> list[str]:
    """Peers whose module is importable now or whose wheel the install step brings."""
    coming = {wheel_name(w)[0] for w in wheels}
    found = []
    for backend, (module, dist) in PEERS.items():
        try:
            present = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            present = False
        if present or canonical(dist) in coming:
            found.append(backend)
    return found


# --- the plan -----------------------------------------------------------------------------------


def plan(out: Path, wheels_dir: Path | None, py: str = sys.executable) -> list[Step]:
    """The steps, their exact commands and budgets (seconds)."""
    # An offline GPU machine (no index reachable) must fail a missing dependency in seconds,
    # not spend the step's budget on pip's retries.
    pip = (py, "-m", "pip", "install", "--disable-pip-version-check", "--retries", "0",
           "--timeout", "5")  # fmt: skip
    index = ("--no-index", "--find-links", str(wheels_dir)) if wheels_dir else ()
    install: list[tuple[str, ...]] = []
    missing = [r for r in requirements() if not satisfied(r)]
    if missing:
        install.append((*pip, "--constraint", str(out / "pins.txt"), *index, *missing))
    if installed("normbench") is None:
        install.append((*pip, "--no-deps", "--no-build-isolation", "-e", str(ROOT)))
    wheels = local_wheels(wheels_dir)
    if wheels:
        install.append((*pip, "--no-index", "--find-links", str(wheels_dir), "--no-deps",
                        *map(str, wheels)))  # fmt: skip
    peers = importable_peers(wheels)
    runs = str(out / "runs")
    nb = (py, "-m", "normbench")
    common = ("--device", "cuda", *SHAPE, "--out", runs, "--format", "json,md")
    speed = ",".join(["eager", "compile", "triton", *peers])
    # compile is timed by speed only: its compile per case would take memory's budget.
    lean = ",".join(["eager", "triton", *peers])
    stab = ",".join(["eager", "triton", "triton-llama", *peers])
    steps = [
        Step("install", "the project and what it lacks; torch and its stack pinned", 40,
             tuple(install), "install.log", keep_going=True),
        Step("env", "device fingerprint, NVML, measured copy bandwidth", 20,
             ((*nb, "env", "--device", "cuda", "--json"),), "env.json"),
        Step("pytest", "pytest -m gpu: every suite on CUDA, the audit's truth check", 160,
             ((py, "-m", "pytest", "-m", "gpu", "-v", "-rA", "-p", "no:cacheprovider",
               str(ROOT / "tests" / "gpu")),), "pytest.log"),
        Step("speed", f"normbench speed, fwd and bwd: {speed}", 140,
             ((*nb, "speed", "--backend", speed, "--mode", "fwd,bwd", "--quick",
               "--time-budget", "0.25", *common),), "speed.log"),
        Step("memory", f"normbench memory, fwd+bwd: {lean}", 35,
             ((*nb, "memory", "--backend", lean, "--mode", "fwd+bwd", *common),), "memory.log"),
        Step("stability", f"normbench stability: {stab}", 60,
             ((*nb, "stability", "--backend", stab, "--dist", STABILITY_DISTS, *common),),
             "stability.log"),
    ]  # fmt: skip
    return steps


# What a normbench command's exit code says (docs/design.md "Exit codes"), for the steps that
# run one: a failed step's line in the summary says why, not only the number.
NB_STEPS = ("env", "speed", "memory", "stability")
EXIT_MEANING = {
    1: "a check failed: a FAIL with --fail-on, or a regression",
    2: "usage or input error",
    3: "a baseline missing or incompatible",
    4: "a backend gave wrong numbers (a mismatch row), or the gate could not judge",
    130: "interrupted",
}

# Every check installs what the machine lacks and measures the copy bandwidth that the summary
# divides by, so --steps always keeps these two.
ALWAYS = ("install", "env")


def choose(steps: list[Step], names: str | None) -> list[Step]:
    """The steps named in `names` (a comma list; None: all), in the plan's order, with install
    and env always. Raises ValueError with a sentence naming the steps."""
    if names is None:
        return steps
    asked = {n.strip() for n in names.split(",") if n.strip()}
    known = [s.name for s in steps]
    unknown = sorted(asked - set(known))
    if unknown or not asked:
        raise ValueError(f"--steps {names!r}: name steps among {', '.join(known)}")
    return [s for s in steps if s.name in asked or s.name in ALWAYS]


def left_out(steps: list[Step], chosen: list[Step]) -> list[StepResult]:
    """A row in the summary's step table for each step --steps left out."""
    return [StepResult(s.name, "left out", 0.0, s.budget_s, "not in --steps")
            for s in steps if s not in chosen]  # fmt: skip


def budget_s(steps: list[Step]) -> int:
    return sum(s.budget_s for s in steps)


def describe(steps: list[Step], wheels_dir: Path | None) -> str:
    """The plan as printed by --dry-run."""
    total = budget_s(steps)
    lines = [f"gpu-check plan: {len(steps)} steps, {total} s in all ({total // 60} min "
             f"{total % 60} s; the check must end within {LIMIT_S // 60} min)."]  # fmt: skip
    lines.append(f"Peer wheels from: {wheels_dir or 'none (--wheels DIR to install some)'}")
    for i, s in enumerate(steps, 1):
        lines.append(f"{i}. {s.name} ({s.budget_s} s): {s.what} -> {s.log}")
        for cmd in s.commands:
            lines.append("     " + " ".join(_quote(c) for c in cmd))
        if not s.commands:
            lines.append("     (nothing to run: every requirement is met)")
    lines.append("Then summary.md: TB/s, % of the copy bandwidth, pass/fail, skips and why.")
    return "\n".join(lines)


def _quote(arg: str) -> str:
    return arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else repr(arg)


# --- running ------------------------------------------------------------------------------------


def cuda_probe(py: str = sys.executable) -> dict:
    """What torch sees, asked in a child process (so this one holds no CUDA context)."""
    code = (
        "import json, torch\n"
        "ok = torch.cuda.is_available()\n"
        "print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda, 'ok': ok,\n"
        "  'devices': [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]\n"
        "  if ok else []}))\n"
    )
    proc = subprocess.run([py, "-c", code], capture_output=True, text=True, env=child_env())
    if proc.returncode != 0:
        lines = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"ok": False, "error": lines}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def no_cuda_sentence(probe: dict) -> str | None:
    if probe.get("ok"):
        return None
    if "error" in probe:
        why = f"torch cannot be imported ({probe['error']})"
    elif probe.get("cuda") is None:
        why = f"torch {probe['torch']} has no CUDA support"
    else:
        why = f"torch {probe['torch']} (CUDA {probe['cuda']}) finds no GPU"
    return (
        f"gpu-check: no CUDA device: {why}; run it on a machine with an NVIDIA GPU "
        "(`--dry-run` prints the plan anywhere)."
    )


def child_env() -> dict[str, str]:
    """The steps' environment: this checkout first on the path, the compiled kernels (a
    TRITON_INTERPRET set by the user would time Triton's interpreter)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def run_step(step: Step, out: Path, deadline: float) -> StepResult:
    """Run a step's commands under its budget (and the whole check's deadline); its output to
    its log. Past the budget: SIGTERM to its process group GRACE_S before the end, SIGKILL at
    the end."""
    start = time.monotonic()
    end = min(start + step.budget_s, deadline)
    if end - start < GRACE_S:
        return StepResult(step.name, "not run", 0.0, step.budget_s, "the check's time was spent")
    # A JSON step's stdout is its file; its stderr goes beside it.
    err_name = step.log[: -len(".json")] + ".err" if step.log.endswith(".json") else None
    failed: list[str] = []
    with open(out / step.log, "w") as log, open(out / (err_name or step.log), "a") as err:
        for cmd in step.commands:
            proc = subprocess.Popen(cmd, stdout=log, stderr=err if err_name else subprocess.STDOUT,
                                    cwd=ROOT, env=child_env(), start_new_session=True)  # fmt: skip
            try:
                rc = proc.wait(timeout=max(1.0, end - GRACE_S - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGTERM)  # normbench writes what finished
                try:
                    proc.wait(timeout=max(1.0, end - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                wall = time.monotonic() - start
                return StepResult(step.name, "timed out", wall, step.budget_s,
                                  f"stopped at its {step.budget_s} s budget")  # fmt: skip
            if rc != 0:
                known = rc in EXIT_MEANING and step.name in NB_STEPS
                why = f" ({EXIT_MEANING[rc]})" if known else ""
                failed.append(f"exit {rc}{why}: {' '.join(cmd[:5])} ...")
                if not step.keep_going:
                    break
    wall = time.monotonic() - start
    if failed:
        return StepResult(step.name, "failed", wall, step.budget_s, "; ".join(failed))
    return StepResult(step.name, "ok", wall, step.budget_s)


def pip_download_args() -> str:
    """pip download's target options for this interpreter and platform (run it on the GPU
    machine; use them where there is a package index)."""
    try:
        from packaging import tags
    except ImportError:
        from pip._vendor.packaging import tags
    v = sys.version_info
    platforms = []
    for tag in tags.sys_tags():
        if tag.platform != "any" and tag.platform not in platforms:
            platforms.append(tag.platform)
    # Every manylinux tag this interpreter accepts, newest first: a wheel names one glibc
    # (manylinux_2_17 is most of PyPI's), and pip matches the tags it is given.
    portable = [p for p in platforms if p.startswith(("manylinux", "musllinux"))] or platforms
    args = ["--only-binary=:all:", "--python-version", f"{v.major}.{v.minor}",
            "--implementation", "cp", "--abi", f"cp{v.major}{v.minor}"]  # fmt: skip
    for p in portable:
        args += ["--platform", p]
    return " ".join(args)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="folder (default reports/gpu-check-T)")
    ap.add_argument("--wheels", type=Path, default=None, help="local folder of peer wheels")
    ap.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    ap.add_argument("--steps", default=None,
                    help="comma list of the steps to run, e.g. pytest,speed for a rerun of what "
                         "failed (install and env always run; default: all)")  # fmt: skip
    ap.add_argument("--archive", type=Path, default=None,
                    help="also pack the whole folder into this .tar.gz at the end (for a "
                         "machine that hands back only a few files)")  # fmt: skip
    ap.add_argument("--pip-download-args", action="store_true",
                    help="print pip download's options for this Python and platform")  # fmt: skip
    args = ap.parse_args(argv)
    if args.pip_download_args:
        print(pip_download_args())
        return 0
    if args.wheels is not None and not args.wheels.is_dir():
        print(f"gpu-check: --wheels {args.wheels} is not a folder.", file=sys.stderr)
        return 2
    out = args.out or ROOT / "reports" / f"gpu-check-{time.strftime('%Y%m%d-%H%M%S')}"
    every = plan(out, args.wheels)
    try:
        steps = choose(every, args.steps)
    except ValueError as exc:
        print(f"gpu-check: {exc}.", file=sys.stderr)
        return 2
    if args.dry_run:
        print(describe(steps, args.wheels))
        return 0
    sentence = no_cuda_sentence(cuda_probe())
    if sentence:
        print(sentence, file=sys.stderr)
        return 2
    if out.exists() and any(out.iterdir()):
        print(f"gpu-check: {out} is not empty: give a new --out.", file=sys.stderr)
        return 2
    (out / "runs").mkdir(parents=True, exist_ok=True)
    (out / "pins.txt").write_text("\n".join(pins()) + "\n")
    deadline = time.monotonic() + LIMIT_S - 5  # the summary's few seconds
    results = []
    for step in steps:
        print(f"gpu-check: {step.name} ({step.budget_s} s) ...", file=sys.stderr, flush=True)
        results.append(run_step(step, out, deadline))
        r = results[-1]
        print(f"gpu-check: {step.name}: {r.status} in {r.wall_s:.0f} s {r.detail}",
              file=sys.stderr, flush=True)  # fmt: skip
    # The step table in the plan's order, with a row for each step --steps left out.
    by_name = {r.name: r for r in results + left_out(every, steps)}
    table = [by_name[s.name] for s in every]
    (out / "steps.json").write_text(json.dumps([asdict(r) for r in table], indent=2))
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from gpu_check_summary import write_summary

    summary = write_summary(out, table)
    print(f"gpu-check: summary in {summary}", file=sys.stderr)
    if args.archive is not None:
        print(f"gpu-check: the folder packed in {pack(out, args.archive)}", file=sys.stderr)
    return 0 if all(r.status == "ok" for r in results) else 1


def pack(folder: Path, archive: Path) -> Path:
    """The whole folder (summary, runs, logs) as one .tar.gz named `archive`, its entries under
    the folder's name."""
    import tarfile

    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


if __name__ == "__main__":
    sys.exit(main())
