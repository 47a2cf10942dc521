"""Does `compare` stay honest when the machine is busy? A/A comparisons of separate one-case runs.

    .venv/bin/python benchmarks/aa_busy.py                    # 20 comparisons, 10 of them busy
    .venv/bin/python benchmarks/aa_busy.py --comparisons 4    # a quick look

Each comparison is what a user does from the CLI: `normbench speed` (one case, --quick, a fresh
process) for the baseline on a quiet machine, another for the new run, then `normbench compare
BASE NEW`. Every other comparison's new run is taken while busy-loop processes load every core
(the machine a CI runner shares). The code is the same on both sides, so the right answers are
"same", "inconclusive" or "unreliable"; a regression or an improvement is a false claim. Prints
a Markdown table (figures recorded in docs/benchmarks.md) with each comparison's ratio, CI,
verdict and exit code.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

CASE = ["--variant", "rmsnorm", "--backend", "eager", "--dtype", "fp32", "--dim", "1024"]


def spin(stop) -> None:
    while not stop.is_set():
        pass


class Load:
    """Busy-loop processes on every core while inside."""

    def __enter__(self) -> Load:
        self.stop = mp.Event()
        self.procs = [
            mp.Process(target=spin, args=(self.stop,)) for _ in range(os.cpu_count() or 1)
        ]
        for p in self.procs:
            p.start()
        time.sleep(0.5)  # let them reach the cores
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for p in self.procs:
            p.join()


def speed(out: Path, extra: list[str]) -> Path:
    cmd = [sys.executable, "-m", "normbench", "speed", *CASE, "--quick", "--format", "json",
           "--out", str(out), *extra]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return max(out.glob("speed-*.json"), key=lambda p: p.stat().st_mtime)


def compare(base: Path, new: Path, out: Path) -> dict:
    cmd = [sys.executable, "-m", "normbench", "compare", str(base), str(new), "--format", "json",
           "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run = json.loads(max(out.glob("compare-*.json"), key=lambda p: p.stat().st_mtime).read_text())
    row = next(r for r in run["rows"] if r["metric"] == "ratio" and r["kind"] == "compare")
    return {"exit": done.returncode, "verdict": row["verdict"], "ratio": row["value"],
            "ci": (row.get("ci_low"), row.get("ci_high")), "note": row.get("note", "")}  # fmt: skip


def unreliable(path: Path) -> str:
    run = json.loads(path.read_text())
    rows = [r for r in run["rows"] if r["metric"] == "time"]
    return "; ".join(r.get("unreliable") or "" for r in rows).strip("; ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comparisons", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help="JSON with every comparison")
    parser.add_argument("args", nargs="*", help="extra options for normbench speed")
    ns = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aa_busy-"))
    env_cache = work / "cache"
    os.environ["NORMBENCH_CACHE_DIR"] = str(env_cache)
    rows = []
    start = time.perf_counter()
    for k in range(ns.comparisons):
        busy = k % 2 == 1
        d = work / f"c{k}"
        (d / "base").mkdir(parents=True)
        (d / "new").mkdir()
        base = speed(d / "base", ns.args)
        if busy:
            with Load():
                new = speed(d / "new", ns.args)
        else:
            new = speed(d / "new", ns.args)
        res = compare(base, new, d)
        res.update(busy=busy, base_unreliable=unreliable(base), new_unreliable=unreliable(new))
        rows.append(res)
        print(f"[{time.perf_counter() - start:5.0f} s] {k + 1}/{ns.comparisons} "
              f"{'busy' if busy else 'quiet'}: {res['verdict']} (exit {res['exit']})",
              file=sys.stderr)  # fmt: skip
    lines = [
        f"# aa_busy: {ns.comparisons} A/A comparisons of separate one-case runs",
        "",
        f"Case: {' '.join(CASE)} --quick {' '.join(ns.args)}; {os.cpu_count()} cores; "
        f"{time.perf_counter() - start:.0f} s in all.",
        "",
        "| # | new run | ratio new/base | 95% CI | verdict | exit | why (unreliable side) |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows, 1):
        lo, hi = r["ci"]
        ci = f"{lo:.3f}-{hi:.3f}" if lo is not None and hi is not None else "-"
        ratio = f"{r['ratio']:.3f}" if r["ratio"] is not None else "-"
        why = r["new_unreliable"] or r["base_unreliable"] or ""
        lines.append(f"| {i} | {'busy' if r['busy'] else 'quiet'} | {ratio} | {ci} | "
                     f"{r['verdict']} | {r['exit']} | {why[:90]} |")  # fmt: skip
    for label, busy in (("quiet", False), ("busy", True)):
        c = Counter(r["verdict"] for r in rows if r["busy"] == busy)
        codes = Counter(r["exit"] for r in rows if r["busy"] == busy)
        lines.append(
            f"\n{label}: "
            + ", ".join(f"{n} {v}" for v, n in sorted(c.items()))
            + "; exit codes "
            + ", ".join(f"{k}: {n}" for k, n in sorted(codes.items()))
        )
    false = sum(r["verdict"] in ("regression", "improvement") for r in rows)
    lines.append(f"\n{'PASS' if false == 0 else 'FAIL'}: {false} false regressions/improvements.")
    print("\n".join(lines))
    out = ns.out or work / "aa_busy.json"
    out.write_text(json.dumps(rows, indent=2))
    print(f"\nEvery comparison: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
