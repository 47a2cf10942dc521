"""Where does the run-to-run spread come from? Processes x visits of one case, per cache state.

    .venv/bin/python benchmarks/spread_cause.py                       # 6 processes x 4 visits
    .venv/bin/python benchmarks/spread_cause.py --case layernorm --dim 1024

Each fresh process times the same case `--visits` times in a row (one speed run per visit, the
suite's own method), then reports how much of its anonymous memory the kernel backed with
transparent huge pages (/proc/self/smaps_rollup: page placement) and the CPU clock it saw. The
spread of the visits' medians is split into the part inside a process (the machine's moment:
neighbours, the memory bus) and the part between processes (what a process keeps for its whole
life: its pages, its heap's layout, its threads' placement): if the second dominates, separate
runs differ for reasons no within-run CI sees. Prints a Markdown table (figures recorded in
docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys
from normbench.env import prepare_cpu_memory
prepare_cpu_memory()
import torch
from normbench.config import Selection, SpeedConfig
from normbench.suites.speed import run_speed
variant, dim, cache = sys.argv[1], int(sys.argv[2]), sys.argv[3]
visits, budget = int(sys.argv[4]), float(sys.argv[5])
sel = Selection((variant,), ("eager",), ("fp32",), (dim,), (4,), (512,), ("fwd",))
cfg = SpeedConfig(sel, threads=torch.get_num_threads(), time_budget=budget, cache=cache)
medians, unreliable, pct = [], [], []
for _ in range(visits):
    (r,) = run_speed(cfg).cases()
    medians.append(r.time.value)
    unreliable.append(r.unreliable or "")
    pct.append(r.value("pct_sol"))
rollup = {}
for line in open("/proc/self/smaps_rollup"):
    parts = line.split()
    if len(parts) >= 2 and parts[1].isdigit():
        rollup[parts[0].rstrip(":")] = int(parts[1])
mhz = [float(l.split(":")[1]) for l in open("/proc/cpuinfo") if l.startswith("cpu MHz")]
print(json.dumps({"medians": medians, "unreliable": unreliable, "pct": pct,
                  "huge": rollup.get("AnonHugePages", 0) / max(1, rollup.get("Anonymous", 1)),
                  "mhz": min(mhz) if mhz else None}))
"""


def one_process(ns, cache: str) -> dict:
    args = [ns.case, str(ns.dim), cache, str(ns.visits), str(ns.budget)]
    out = subprocess.run([sys.executable, "-c", CHILD, *args], check=True, capture_output=True,
                         text=True).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def split(procs: list[dict]) -> tuple[float, float]:
    """(within-process sd, between-process sd) of log medians (one-way random effects)."""
    logs = [[math.log(m) for m in p["medians"]] for p in procs]
    v = len(logs[0])
    within = statistics.mean(statistics.variance(x) for x in logs)
    means = [statistics.mean(x) for x in logs]
    between = max(0.0, statistics.variance(means) - within / v)
    return math.sqrt(within), math.sqrt(between)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="rmsnorm")
    parser.add_argument("--dim", type=int, default=4096)
    parser.add_argument("--processes", type=int, default=6)
    parser.add_argument("--visits", type=int, default=4)
    parser.add_argument("--budget", type=float, default=0.5)
    parser.add_argument("--cache", default="cold,hot")
    ns = parser.parse_args()
    states = [s for s in ns.cache.split(",") if s]
    procs: dict[str, list[dict]] = {s: [] for s in states}
    for i in range(ns.processes):
        for s in states:  # alternating, so both states see the same minutes
            procs[s].append(one_process(ns, s))
            print(f"process {i + 1} ({s}) done", file=sys.stderr)
    print(
        f"`benchmarks/spread_cause.py --case {ns.case} --dim {ns.dim} --processes "
        f"{ns.processes} --visits {ns.visits}`: {ns.case}/eager/fp32/4x512x{ns.dim}/fwd\n"
    )
    for s in states:
        print(f"### {s}\n")
        print("| process | visit medians (ms) | % SOL | huge-page share | unreliable visits |")
        print("|---|---|---|---|---|")
        for i, p in enumerate(procs[s], 1):
            ms = ", ".join(f"{m:.3f}" for m in p["medians"])
            pct = ", ".join(f"{x:.0f}" for x in p["pct"] if x is not None)
            bad = sum(1 for u in p["unreliable"] if u)
            print(f"| {i} | {ms} | {pct} | {p['huge']:.0%} | {bad} |")
        within, between = split(procs[s])
        allm = [m for p in procs[s] for m in p["medians"]]
        firsts = [p["medians"][0] / statistics.median(p["medians"][1:]) - 1 for p in procs[s]]
        print(f"\nWithin a process: {within:.1%} (1 sd of log median); between processes: "
              f"{between:.1%}; all visits: max/min - 1 = {max(allm) / min(allm) - 1:.1%}; "
              f"first visit vs the process's later ones: median {statistics.median(firsts):+.1%}"
              ".\n")  # fmt: skip


if __name__ == "__main__":
    main()
