"""Does any row claim more than its speed-of-light reference without saying why?

    .venv/bin/python benchmarks/sol_check.py                      # the issue's two sweeps
    .venv/bin/python benchmarks/sol_check.py -- --cache hot --mode fwd,bwd   # one more sweep

Runs `normbench speed` (fresh processes) with the default options and with `--dim 1024,4096,8192
--dtype bf16`, or with the options given after `--`, and reads each JSON report: per sweep the
timed rows, the highest % SOL, the rows above 100% and how many of them carry the flag and its
reason in the note (normbench's own rule: every one must). Prints a Markdown table (figures
recorded in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

SWEEPS = ([], ["--dim", "1024,4096,8192", "--dtype", "bf16"])


def sweep(args: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "normbench", "speed", "--format", "json", "--out", out, *args]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        run = json.loads(next(Path(out).glob("*.json")).read_text())
    pct = [r for r in run["rows"] if r["metric"] == "pct_sol" and r["value"] is not None]
    above = [r for r in pct if r["value"] > 100]
    flagged = [r for r in above if r.get("note")]
    worst = max(pct, key=lambda r: r["value"], default=None)
    return {
        "args": " ".join(args) or "(defaults)",
        "rows": len(pct),
        "max": worst["value"] if worst else None,
        "max_case": worst["case_id"] if worst else "-",
        "above": len(above),
        "flagged": len(flagged),
        "notes": sorted({r["note"] for r in flagged}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("args", nargs="*", help="options for one normbench speed sweep")
    ns = parser.parse_args()
    results = [sweep(a) for a in ([ns.args] if ns.args else SWEEPS)]
    print("| sweep | timed rows | highest % SOL (case) | rows above 100% | of them flagged |")
    print("|---|---|---|---|---|")
    for r in results:
        top = f"{r['max']:.1f} ({r['max_case']})" if r["max"] is not None else "-"
        print(f"| {r['args']} | {r['rows']} | {top} | {r['above']} | {r['flagged']} |")
    for r in results:
        for note in r["notes"]:
            print(f"\n- {r['args']}: {note}")
    bad = sum(r["above"] - r["flagged"] for r in results)
    print(f"\n{'PASS' if bad == 0 else 'FAIL'}: {bad} rows above 100% without a flag.")


if __name__ == "__main__":
    main()
