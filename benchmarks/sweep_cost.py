"""Measure the tool itself: wall time of the default `normbench speed` sweep and the run-to-run
spread of its medians over repeated runs in fresh processes, per cache state.

    .venv/bin/python benchmarks/sweep_cost.py --repeats 5                  # cold (the default)
    .venv/bin/python benchmarks/sweep_cost.py --repeats 5 --cache cold,hot # both, alternating
    .venv/bin/python benchmarks/sweep_cost.py --repeats 5 -- --dim 1024    # extra speed options

With several cache states the runs alternate (cold, hot, cold, hot, ...), so both see the same
machine over the same minutes. Prints a Markdown table per state (figures recorded in
docs/benchmarks.md): each case's median of medians, min, max and spread (max/min - 1), the
highest % of its SOL reference, and how many runs marked it unreliable. Run it on a quiet
machine: another process on the same cores is what the unreliable column counts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(cache: str, extra: list[str]) -> tuple[float, dict[str, dict]]:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "normbench", "speed", "--cache", cache, "--format", "json",
               "--out", out, *extra]  # fmt: skip
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        run = json.loads(next(Path(out).glob("*.json")).read_text())
    cases: dict[str, dict] = {}
    for r in run["rows"]:
        if r["status"] != "ok":
            continue
        c = cases.setdefault(r["case_id"], {})
        if r["metric"] == "time":
            c.update(time=r["value"], unreliable=r.get("unreliable"),
                     others=r.get("others_cpu_pct"))  # fmt: skip
        elif r["metric"] in ("pct_sol", "pct_copy_bw"):
            c["pct"] = r["value"]
    return wall, {k: v for k, v in cases.items() if "time" in v}


def table(cache: str, walls: list[float], runs: list[dict[str, dict]]) -> list[str]:
    lines = [
        f"### {cache}: {len(runs)} runs, wall time median {statistics.median(walls):.1f} s "
        f"(min {min(walls):.1f}, max {max(walls):.1f})",
        "",
        "| case | median of medians (ms) | min | max | spread (max/min - 1) | max % SOL "
        "| runs unreliable |",
        "|---|---|---|---|---|---|---|",
    ]
    spreads = []
    for case in runs[0]:
        got = [r[case] for r in runs if case in r]
        values = [c["time"] for c in got]
        spread = max(values) / min(values) - 1
        spreads.append(spread)
        pct = max((c.get("pct") or 0.0) for c in got)
        bad = sum(1 for c in got if c.get("unreliable"))
        lines.append(
            f"| {case} | {statistics.median(values):.3f} | {min(values):.3f} | "
            f"{max(values):.3f} | {spread:.1%} | {pct:.1f} | {bad} of {len(got)} |"
        )
    others = [c["others"] for r in runs for c in r.values() if c.get("others") is not None]
    lines += [
        "",
        f"Run-to-run spread of the medians: median {statistics.median(spreads):.1%}, worst "
        f"{max(spreads):.1%}; other processes' share of the CPUs while cases were timed: "
        f"median {statistics.median(others) if others else float('nan'):.1f}%, "
        f"max {max(others, default=float('nan')):.1f}%.",
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cache", default="cold", help="cache states, comma list: cold,hot")
    parser.add_argument("args", nargs="*", help="extra options for normbench speed (after --)")
    ns = parser.parse_args()
    states = [s.strip() for s in ns.cache.split(",") if s.strip()]
    walls: dict[str, list[float]] = {s: [] for s in states}
    runs: dict[str, list[dict]] = {s: [] for s in states}
    for i in range(ns.repeats):
        for s in states:
            wall, cases = one_run(s, ns.args)
            walls[s].append(wall)
            runs[s].append(cases)
            print(f"run {i + 1} ({s}): {wall:.1f} s, {len(cases)} timed cases, load "
                  f"{os.getloadavg()[0]:.2f}", file=sys.stderr)  # fmt: skip
    print(f"`benchmarks/sweep_cost.py --repeats {ns.repeats} --cache {ns.cache}"
          + (f" -- {' '.join(ns.args)}" if ns.args else "") + "`\n")  # fmt: skip
    for s in states:
        print("\n".join(table(s, walls[s], runs[s])))


if __name__ == "__main__":
    main()
