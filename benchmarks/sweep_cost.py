"""Measure the tool itself: wall time of the default `normbench speed` sweep and the run-to-run
spread of its medians over repeated runs in fresh processes, per cache state.

    .venv/bin/python benchmarks/sweep_cost.py --repeats 5                  # cold (the default)
    .venv/bin/python benchmarks/sweep_cost.py --repeats 5 --cache cold,hot # both, alternating
    .venv/bin/python benchmarks/sweep_cost.py --repeats 5 -- --dim 1024    # extra speed options
    git worktree add --detach ../before 071c2f6
    .venv/bin/python benchmarks/sweep_cost.py --repeats 5 --before ../before   # old code too

With several cache states (and --before) the runs alternate (cold, hot, before, cold, ...), so
all see the same machine over the same minutes. --before DIR runs that checkout's normbench
(`python -m normbench` from DIR: its own package comes first on the path) with its defaults.
Prints a Markdown table per state (figures recorded in docs/benchmarks.md): each case's median
of medians, min, max and spread (max/min - 1), the highest % of its SOL reference (or, for an
older checkout, of the copy bandwidth), and how many runs marked it unreliable. Run it on a quiet
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


def one_run(cache: str, extra: list[str], cwd: Path | None = None) -> tuple[float, dict[str, dict]]:
    """One fresh-process run; `cwd`: another checkout, run with its own defaults."""
    with tempfile.TemporaryDirectory() as out:
        state = [] if cwd else ["--cache", cache]
        cmd = [sys.executable, "-m", "normbench", "speed", *state, "--format", "json",
               "--out", out, *extra]  # fmt: skip
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=cwd)
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
        "| spread of % SOL | runs unreliable |",
        "|---|---|---|---|---|---|---|---|",
    ]
    spreads = []
    for case in runs[0]:
        got = [r[case] for r in runs if case in r]
        values = [c["time"] for c in got]
        spread = max(values) / min(values) - 1
        spreads.append(spread)
        pcts = [c["pct"] for c in got if c.get("pct")]
        pct_spread = f"{max(pcts) / min(pcts) - 1:.1%}" if pcts else "-"
        bad = sum(1 for c in got if c.get("unreliable"))
        lines.append(
            f"| {case} | {statistics.median(values):.3f} | {min(values):.3f} | "
            f"{max(values):.3f} | {spread:.1%} | {max(pcts, default=0.0):.1f} | {pct_spread} "
            f"| {bad} of {len(got)} |"
        )
    reasons = sorted({f"{k}: {c['unreliable']}" for r in runs for k, c in r.items()
                      if c.get("unreliable")})  # fmt: skip
    others = [c["others"] for r in runs for c in r.values() if c.get("others") is not None]
    lines += [
        "",
        f"Run-to-run spread of the medians: median {statistics.median(spreads):.1%}, worst "
        f"{max(spreads):.1%}; other processes' share of the CPUs while cases were timed: "
        f"median {statistics.median(others) if others else float('nan'):.1f}%, "
        f"max {max(others, default=float('nan')):.1f}%.",
        "",
        *(f"- unreliable: {r}" for r in reasons),
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cache", default="cold", help="cache states, comma list: cold,hot")
    parser.add_argument("--before", type=Path, default=None, help="another checkout to time too")
    parser.add_argument("args", nargs="*", help="extra options for normbench speed (after --)")
    ns = parser.parse_args()
    states = [s.strip() for s in ns.cache.split(",") if s.strip()]
    before = f"before ({ns.before})" if ns.before else None
    if before:
        states.append(before)
    walls: dict[str, list[float]] = {s: [] for s in states}
    runs: dict[str, list[dict]] = {s: [] for s in states}
    for i in range(ns.repeats):
        for s in states:
            cwd = ns.before.resolve() if s == before else None
            wall, cases = one_run(s, ns.args, cwd)
            walls[s].append(wall)
            runs[s].append(cases)
            print(f"run {i + 1} ({s}): {wall:.1f} s, {len(cases)} timed cases, load "
                  f"{os.getloadavg()[0]:.2f}", file=sys.stderr)  # fmt: skip
    print(f"`benchmarks/sweep_cost.py --repeats {ns.repeats} --cache {ns.cache}"
          + (f" --before {ns.before}" if ns.before else "")
          + (f" -- {' '.join(ns.args)}" if ns.args else "") + "`\n")  # fmt: skip
    for s in states:
        print("\n".join(table(s, walls[s], runs[s])))


if __name__ == "__main__":
    main()
