"""Measure the tool itself: wall time of the default `normbench speed` sweep and the run-to-run
spread of its medians over repeated runs.

    .venv/bin/python benchmarks/sweep_cost.py --repeats 5

Prints a Markdown table (figures recorded in docs/benchmarks.md). Run it on a quiet machine:
another process on the same cores inflates both numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(extra: list[str]) -> tuple[float, dict[str, float]]:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "normbench", "speed", "--format", "json", "--out", out, *extra]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        run = json.loads(next(Path(out).glob("*.json")).read_text())
    medians = {
        r["case_id"]: r["value"]
        for r in run["rows"]
        if r["metric"] == "time" and r["status"] == "ok"
    }
    return wall, medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("args", nargs="*", help="extra options for normbench speed")
    ns = parser.parse_args()
    walls, runs = [], []
    for i in range(ns.repeats):
        wall, medians = one_run(ns.args)
        walls.append(wall)
        runs.append(medians)
        print(f"run {i + 1}: {wall:.1f} s, {len(medians)} timed cases", file=sys.stderr)
    print(
        f"Default sweep wall time over {ns.repeats} runs: median {statistics.median(walls):.1f} s"
        f" (min {min(walls):.1f}, max {max(walls):.1f}).\n"
    )
    print("| case | median of medians (ms) | min | max | spread (max/min - 1) |")
    print("|---|---|---|---|---|")
    spreads = []
    for case in runs[0]:
        values = [r[case] for r in runs if case in r]
        spread = max(values) / min(values) - 1
        spreads.append(spread)
        print(
            f"| {case} | {statistics.median(values):.3f} | {min(values):.3f} | "
            f"{max(values):.3f} | {spread:.1%} |"
        )
    print(
        f"\nRun-to-run spread of the medians: median {statistics.median(spreads):.1%}, "
        f"worst {max(spreads):.1%}."
    )


if __name__ == "__main__":
    main()
