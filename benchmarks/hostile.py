"""Replay a catalogue of bad and hostile inputs across every command and count what went wrong.

    .venv/bin/python benchmarks/hostile.py                 # the whole catalogue
    .venv/bin/python benchmarks/hostile.py --only compare  # one command's entries

Each entry is one `normbench` command line, run in a fresh process in a scratch folder (with
its own NORMBENCH_CACHE_DIR), with the exit code the docs promise (README.md "Exit codes"). An
entry went wrong when it printed a Python traceback, exited with another code, or measured
something and left no reports for it (lost data). Prints the totals and every entry that went
wrong (figures recorded in docs/benchmarks.md "Hostile inputs").
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# A selection that finishes in a second or two wherever a bad option is (wrongly) accepted.
TINY = ["--variant", "rmsnorm", "--backend", "eager", "--dim", "64", "--batch", "1", "--seq", "8",
        "--mode", "fwd"]  # fmt: skip
FAST = [*TINY, "--quick", "--time-budget", "0.05"]
MEASURING = ("speed", "memory", "stability")


@dataclass(frozen=True)
class Entry:
    args: tuple[str, ...]
    code: int | tuple[int, ...]  # the documented exit code (or the codes that are each right)
    why: str

    @property
    def codes(self) -> tuple[int, ...]:
        return self.code if isinstance(self.code, tuple) else (self.code,)


def catalogue(work: Path) -> list[Entry]:
    """The bad inputs, built against files made in `work`."""
    afile = work / "afile"
    afile.write_text("not a folder\n")
    base, other = _runs(work)
    garbage = work / "garbage.json"
    garbage.write_text("{not json")
    as_list = work / "list.json"
    as_list.write_text("[1, 2, 3]")
    wrong_types = _mutated(base, work / "types.json", value="fast")
    huge_int = work / "huge.json"
    huge_int.write_text(base.read_text().replace('"n": ', '"n": ' + "9" * 5000 + ', "_n": ', 1))
    nan = _mutated(base, work / "nan.json", value=float("nan"))
    out: list[Entry] = []

    def add(args, code, why):
        out.append(Entry(tuple(str(a) for a in args), code, why))

    bad_values = {
        "--dim": ["0", "-1", "abc", ",", "", "1e9", "nan"],
        "--batch": ["0", "-3", "x"],
        "--seq": ["0", "-1"],
        "--dtype": ["fp8", ",", "FP33"],
        "--variant": ["nosuch", ","],
        "--backend": ["nosuch", ","],
        "--mode": ["sideways", ","],
        "--device": ["tpu", "cuda:x"],
        "--threads": ["0", "-1", "100000", "abc"],
        "--time-budget": ["nan", "-1", "inf", "0"],
        "--seed": ["-5", str(2**70)],
        "--format": ["xml", "none,csv", ""],
        "--filter": ["[", "nomatch-at-all"],
        "--out": [str(afile), "/proc/normbench", str(afile / "sub"), str(work / ("x" * 300))],
    }
    for cmd in MEASURING:
        for opt, values in bad_values.items():
            if cmd == "stability" and opt == "--time-budget":
                continue  # stability has no timing options
            for v in values:
                rest = [a for a in (FAST if cmd == "speed" else TINY)]
                rest = _drop(rest, opt)
                if cmd != "speed" and opt not in ("--time-budget",):
                    rest = [a for a in rest if a not in ("--quick",)]
                args = [cmd, *rest, opt, v]
                if opt != "--out":
                    args += ["--out", str(work / "reports")]
                add(args, 2, f"{cmd} {opt} {v!r}")
    # compare: baselines (3), new runs and options (2), nothing judged (4).
    add(["compare", work / "missing.json", other], 3, "missing baseline")
    add(["compare", garbage, other], 3, "baseline not JSON")
    add(["compare", as_list, other], 3, "baseline a JSON list")
    add(["compare", wrong_types, other], 3, "baseline rows of the wrong type")
    add(["compare", huge_int, other], 3, "baseline with a 5000-digit integer")
    add(["compare", base, garbage], 2, "new run not JSON")
    add(["compare", base, wrong_types], 2, "new run rows of the wrong type")
    add(["compare", base, huge_int], 2, "new run with a 5000-digit integer")
    add(["compare", base, work / "missing.json"], 2, "missing new run")
    mem = _suite_run(work, "memory", TINY)
    add(["compare", base, mem], 2, "a memory run given as the new run")
    add(["compare", mem, base], 3, "a memory run given as the baseline")
    add(["compare", base, other, "--seed", "-5"], 2, "compare --seed -5")
    add(["compare", base, other, "--threshold", "abc"], 2, "compare --threshold abc")
    add(["compare", base, other, "--threshold", "90%"], 2, "compare --threshold 90%")
    add(["compare", base, other, "--out", afile], 2, "compare --out a file")
    add(["compare", base, other, "--format", "xml"], 2, "compare --format xml")
    # NaN timings: refused when read (3) or read and not compared (4); never a PASS.
    add(["compare", nan, other], (3, 4), "NaN baseline timings")
    add(["compare", base, _renamed(other, work / "renamed.json")], 4, "no case in common")
    # report
    add(["report", work / "missing.json"], 2, "report of a missing file")
    add(["report", garbage], 2, "report of a non-JSON file")
    add(["report", as_list], 2, "report of a JSON list")
    add(["report", huge_int], 2, "report with a 5000-digit integer")
    add(["report", work], 2, "report of a folder")
    add(["report", base, "--out", afile], 2, "report --out a file")
    add(["report", base, "--format", "none,csv"], 2, "report --format none,csv")
    # calibrate, ab, audit, diagnose, env, list
    for v in ("0", "-1", "100000", "x"):
        add(["calibrate", *FAST, "--repeats", v], 2, f"calibrate --repeats {v}")
    for opt, v in (("--threads", "0"), ("--time-budget", "nan"), ("--dim", ","),
                   ("--out", str(afile))):  # fmt: skip
        add(["calibrate", *_drop(FAST, opt), opt, v], 2, f"calibrate {opt} {v}")
    for a, b in (("nosuch", "eager"), ("eager", "nosuch"), ("", "eager"), ("eager", ""),
                 ("plugin:missing.py", "eager"), ("eager", "@/nonexistent")):  # fmt: skip
        add(["ab", "--a", a, "--b", b, *_drop(FAST, "--backend")], 2, f"ab --a {a!r} --b {b!r}")
    for v in ("0", "100", "x"):
        add(["ab", "--a", "eager", "--b", "eager", "--processes", v, *_drop(FAST, "--backend")],
            2, f"ab --processes {v}")  # fmt: skip
    add(["ab", "--a", "eager", "--b", "eager", *_drop(FAST, "--backend"), "--out", afile], 2,
        "ab --out a file")  # fmt: skip
    for v in ("sm_0", ",", "x86"):
        add(["audit", "--arch", v], 2, f"audit --arch {v!r}")
    for args in (["nosuch-probe"], ["--depths", "100000"], ["--depths", "0"], ["--depths", ","],
                 ["--depths", "x"], ["--norms", "nosuch"], ["--out", str(afile)]):  # fmt: skip
        add(["diagnose", "--quick", *args], 2, f"diagnose {' '.join(args)}")
    # A stray comma beside a value is ignored, as in a shell list (`--dim 64,`): it runs.
    add(["speed", *_drop(FAST, "--dim"), "--dim", "64,,", "--out", str(work / "reports")], 0,
        "speed --dim '64,,'")  # fmt: skip
    add(["env", "--device", "tpu"], 2, "env --device tpu")
    add(["list", "--nosuch"], 2, "list --nosuch")
    add(["nosuch-command"], 2, "an unknown command")
    add(["speed", "--nosuch-option"], 2, "an unknown option")
    add(["speed", *FAST, "--debug", "--dim", "0"], 2, "--debug keeps usage errors at 2")
    # plugins
    for name, body in (("exit_import", "import sys\nsys.exit(0)\n"),
                       ("raise_import", "raise RuntimeError('boom')\n"),
                       ("syntax", "def (:\n"), ("empty", "x = 1\n")):  # fmt: skip
        path = work / f"{name}.py"
        path.write_text(body)
        add(["speed", *FAST, "--plugin", path], 2, f"plugin {name}")
    add(["speed", *FAST, "--plugin", work / "missing_plugin.py"], 2, "missing plugin")
    return out


def _drop(args: list[str], opt: str) -> list[str]:
    """`args` without `opt` and its value."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == opt:
            skip = True
            continue
        out.append(a)
    return out


def _runs(work: Path) -> tuple[Path, Path]:
    """Two tiny real speed runs (the baseline and the new run of the compare entries)."""
    paths = []
    for name in ("base", "other"):
        out = work / name
        cmd = [sys.executable, "-m", "normbench", "speed", *FAST, "--format", "json",
               "--out", str(out)]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True)
        paths.append(next(out.glob("speed-*.json")))
    return paths[0], paths[1]


def _suite_run(work: Path, suite: str, args: list[str]) -> Path:
    """A tiny real run of another suite."""
    out = work / suite
    cmd = [sys.executable, "-m", "normbench", suite, *args, "--format", "json", "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    return next(out.glob(f"{suite}-*.json"))


def _mutated(path: Path, to: Path, **fields) -> Path:
    data = json.loads(path.read_text())
    for row in data["rows"]:
        if row.get("metric") == "time":
            row.update(fields)
            if "value" in fields and row.get("samples"):
                row["samples"] = ["x" if fields["value"] == "fast" else fields["value"]] * len(
                    row["samples"]
                )
    to.write_text(json.dumps(data))
    return to


def _renamed(path: Path, to: Path) -> Path:
    data = json.loads(path.read_text())
    for row in data["rows"]:
        row["case_id"] = row["case_id"].replace("rmsnorm", "nocommon")
        row["variant"] = "nocommon"
    to.write_text(json.dumps(data))
    return to


def _reports(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.suffix in (".json", ".csv", ".md", ".gz")]


def replay(entry: Entry, work: Path) -> dict:
    scratch = Path(tempfile.mkdtemp(dir=work, prefix="run-"))
    env = {**os.environ, "NORMBENCH_CACHE_DIR": str(work / "cache"), "COLUMNS": "120"}
    before = set(_reports(work / "reports")) if (work / "reports").exists() else set()
    t0 = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "normbench", *entry.args], cwd=scratch,
                              env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
        code, err = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired:
        code, err = -1, "timed out after 300 s"
    after = set(_reports(work / "reports")) if (work / "reports").exists() else set()
    measured = code in (0, 1, 4, 130) and entry.args[0] in (*MEASURING, "calibrate", "ab")
    lost = measured and not (after - before) and not _reports(scratch)
    return {
        "args": list(entry.args), "why": entry.why, "expected": list(entry.codes), "code": code,
        "traceback": "Traceback (most recent call last)" in err, "lost": lost,
        "seconds": round(time.perf_counter() - t0, 1), "tail": err.strip().splitlines()[-1:],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="only the entries of this command")
    parser.add_argument("--out", type=Path, default=None, help="JSON with every entry")
    ns = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="normbench-hostile-"))
    entries = [e for e in catalogue(work) if ns.only in (None, e.args[0])]
    results = []
    for i, e in enumerate(entries, 1):
        results.append(replay(e, work))
        r = results[-1]
        bad = r["traceback"] or r["code"] not in r["expected"] or r["lost"]
        print(f"[{i}/{len(entries)}] {'WRONG' if bad else 'ok   '} exit {r['code']} "
              f"(expected {r['expected']}) {e.why}", file=sys.stderr)  # fmt: skip
    tb = [r for r in results if r["traceback"]]
    wrong = [r for r in results if r["code"] not in r["expected"]]
    lost = [r for r in results if r["lost"]]
    print(f"# hostile: {len(results)} bad inputs across every command\n")
    print("| | entries |\n|---|---|")
    print(f"| a Python traceback | {len(tb)} |\n| a wrong exit code | {len(wrong)} |")
    handled = sum(1 for r in results if r not in tb and r not in wrong and r not in lost)
    print(f"| measured data lost | {len(lost)} |")
    print(f"| handled (one sentence, documented code) | {handled} |")
    for r in sorted({id(x): x for x in tb + wrong + lost}.values(), key=lambda x: x["why"]):
        print(f"\n- {r['why']}: exit {r['code']} (expected {r['expected']})"
              f"{', traceback' if r['traceback'] else ''}{', data lost' if r['lost'] else ''}: "
              f"{' '.join(r['tail'])[:160]}")  # fmt: skip
    path = ns.out or work / "hostile.json"
    with gzip.open(path.with_suffix(".json.gz"), "wt") as f:
        json.dump(results, f, indent=1)
    print(f"\nEvery entry: {path.with_suffix('.json.gz')}", file=sys.stderr)


if __name__ == "__main__":
    main()
