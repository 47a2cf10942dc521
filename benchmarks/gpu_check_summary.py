"""summary.md of a GPU check (gpu_check.py): the device, each step's outcome, the pytest results,
speed as TB/s and % of the measured copy bandwidth per backend (the Triton kernels against the
goal: 90% of the copy forward, 80% backward), memory against the ideal, stability verdicts, and
every case that did not run with its reason. Read from the folder the check wrote: steps.json,
env.json, pytest.log and the JSON runs under runs/ (normbench.results.load_run)."""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

GOAL = {"fwd": 90.0, "bwd": 80.0}  # % of the copy bandwidth (issue 21)
_TEST = re.compile(r"^(tests/gpu/\S+::\S+)\s+(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)")
_SKIP = re.compile(r"^SKIPPED \[\d+\] ([^:]+(?::\d+)?): (.*)$")


def load_runs(folder: Path) -> dict[str, Any]:
    """The newest run of each suite under `folder` (a partial file when the step was stopped
    before its reports: what finished)."""
    from normbench.results import load_run

    runs: dict[str, Any] = {}
    files = sorted(folder.glob("*.json")) + sorted(folder.glob("*.partial.jsonl"))
    for path in files:
        try:
            run = load_run(path)
        except Exception:  # a file cut short: said in the skips, never a crash of the summary
            continue
        runs.setdefault(run.suite, run)
    return runs


def pytest_outcome(log: Path) -> tuple[Counter, list[str], list[str]]:
    """(outcome counts, failed test ids, skip reasons) from `pytest -v -rA` output."""
    counts: Counter = Counter()
    failed, skips = [], []
    if not log.exists():
        return counts, failed, skips
    for line in log.read_text(errors="replace").splitlines():
        m = _TEST.match(line)
        if m:
            counts[m.group(2).lower()] += 1
            if m.group(2) in ("FAILED", "ERROR"):
                failed.append(m.group(1))
        s = _SKIP.match(line)
        if s and s.group(2) not in skips:
            skips.append(s.group(2))
    return counts, failed, skips


def device_lines(env: dict[str, Any]) -> list[str]:
    keys = ("device_name", "compute_capability", "sm_count", "gpu_memory_gib", "driver", "cuda",
            "torch", "triton", "max_sm_clock_mhz", "copy_bandwidth_gbps")  # fmt: skip
    return [f"- {k}: {env[k]}" for k in keys if k in env]


def md_table(rows: list[dict[str, Any]]) -> str:
    import pandas as pd

    return pd.DataFrame(rows).to_markdown(index=False) if rows else "(none)"


def speed_section(run) -> list[str]:
    """TB/s and % of the copy bandwidth per case and backend, and the kernels' goal."""
    copy = run.env.get("copy_bandwidth_gbps")
    cells: dict[tuple, dict[str, str]] = {}
    goal = []
    for r in run.cases():
        key = (r.variant, r.shape.dim, r.mode)
        row = cells.setdefault(key, {"variant": r.variant, "N": r.shape.dim, "mode": r.mode})
        gbps = r.value("bandwidth")
        if not r.ok or gbps is None:
            row[r.backend] = r.status.value
            continue
        pct = 100 * gbps / copy if copy else None
        row[r.backend] = f"{gbps / 1e3:.2f} TB/s" + (f" ({pct:.0f}%)" if pct else "")
        if r.backend == "triton" and pct is not None and r.mode in GOAL:
            goal.append((key, pct, pct >= GOAL[r.mode]))
    lines = [f"Copy bandwidth measured in this run: {copy} GB/s (the 100% of every cell).", ""]
    lines.append(md_table(list(cells.values())))
    if goal:
        met = sum(ok for *_, ok in goal)
        target = f"fwd >= {GOAL['fwd']:.0f}%, bwd >= {GOAL['bwd']:.0f}% of the copy"
        lines += ["", f"Triton kernels against the goal ({target}): {met} of {len(goal)} cases "
                  "meet it."]  # fmt: skip
        lines += [f"- below: {v} N={n} {m}: {pct:.0f}%" for (v, n, m), pct, ok in goal if not ok]
    return lines


def memory_section(run) -> list[str]:
    rows = []
    for r in run.cases():
        if not r.ok:
            continue
        row = {"variant": r.variant, "backend": r.backend, "N": r.shape.dim}
        for metric in ("saved_bytes", "peak_fwd_bytes", "peak_bytes"):
            ratio = r.ratio(metric)
            row[f"{metric} x ideal"] = "-" if ratio is None else f"{ratio:.2f}"
        rows.append(row)
    return [md_table(rows)]


def stability_section(run) -> list[str]:
    from normbench.results.stability import StabilityResult

    cases = run.of(StabilityResult)
    by = Counter((r.backend, r.verdict.value if r.verdict else r.status.value) for r in cases)
    rows = [{"backend": b, "verdict": v, "cases": n} for (b, v), n in sorted(by.items())]
    bad = [f"- {r.case_id}: {r.verdict.value}: {r.reason}" for r in cases
           if r.verdict is not None and r.verdict.value in ("FAIL", "WARN")]  # fmt: skip
    return [md_table(rows), *([""] + bad if bad else [])]


def peers_section(runs: dict[str, Any]) -> list[str]:
    """Each peer normbench knows, and whether the speed run timed it or why not: the speed step
    takes only those that import, so an absent one would otherwise be missing unexplained."""
    from normbench.backends.external import PeerBackend
    from normbench.registry import backends

    speed = runs.get("speed")
    timed = {r.backend for r in speed.cases() if r.ok} if speed else set()
    rows = []
    for name, backend in backends().items():
        if not isinstance(backend, PeerBackend):
            continue
        if name in timed:
            rows.append({"peer": name, "speed": "timed", "why not": ""})
        else:
            why = backend.available() or "importable, but no speed case of it finished"
            rows.append({"peer": name, "speed": "not timed", "why not": why})
    return [md_table(rows)]


def skipped_section(runs: dict[str, Any]) -> list[str]:
    """Every case that did not run, grouped by suite, backend, status and reason."""
    seen: Counter = Counter()
    for suite, run in runs.items():
        for r in run.cases():
            if not r.ok and r.status.value != "ok":
                seen[(suite, r.backend, r.status.value, r.note)] += 1
    rows = [{"suite": s, "backend": b, "status": st, "cases": n, "why": why}
            for (s, b, st, why), n in sorted(seen.items())]  # fmt: skip
    return [md_table(rows)]


def write_summary(out: Path, steps: list) -> Path:
    """Write out/summary.md from what the steps left; returns its path."""
    from normbench.results import atomic_write_text

    env: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):  # env stopped or failed: the runs' env
        env = json.loads((out / "env.json").read_text())
    runs = load_runs(out / "runs")
    env = env or next((r.env for r in runs.values()), {})
    lines = ["# normbench gpu-check", "", "## Device", "", *device_lines(env), "", "## Steps", ""]
    rows = [{"step": s.name, "status": s.status, "wall s": round(s.wall_s),
             "budget s": s.budget_s, "detail": s.detail} for s in steps]  # fmt: skip
    lines.append(md_table(rows))
    counts, failed, skips = pytest_outcome(out / "pytest.log")
    lines += ["", "## pytest -m gpu", "", ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
              or "no test result in pytest.log"]  # fmt: skip
    lines += [f"- FAILED {t}" for t in failed] + [f"- skipped: {why}" for why in skips]
    for title, suite, section in (("Speed (bf16, 8 x 2048 rows)", "speed", speed_section),
                                  ("Memory", "memory", memory_section),
                                  ("Stability", "stability", stability_section)):  # fmt: skip
        lines += ["", f"## {title}", ""]
        lines += section(runs[suite]) if suite in runs else [f"no {suite} run in runs/"]
    lines += ["", "## Peers", "", *peers_section(runs)]
    lines += ["", "## Not run, and why", "", *skipped_section(runs), ""]
    path = out / "summary.md"
    atomic_write_text(path, "\n".join(lines), overwrite=True)
    return path
