"""Does the regression gate stay quiet on noise and catch a real slowdown?

    .venv/bin/python benchmarks/aa_detection.py                 # separate runs, as CI measures
    .venv/bin/python benchmarks/aa_detection.py --ab            # also the interleaved `ab` mode
    git worktree add --detach ../base HEAD
    .venv/bin/python benchmarks/aa_detection.py --base ../base [--slow-budget 1]   # across installs

Separate runs (one process, one after the other, the way a CI job measures a baseline and a pull
request) of a small quick case set (layernorm and rmsnorm, eager / composite / torchscript,
fp32, 4 x 128 x {1024, 4096}, forward, `--quick`), each run also measuring `eager_slow15` and
`eager_slow5` (normbench.fixtures: eager plus 15% / 5% of its own time spent repeating part of
its work). Run k is compared with run k-1 (20 comparisons of 12 cases):

- A/A: as measured: no case may be judged a regression;
- 15%: run k with the slowed backend's rows standing in for eager's (a pull request that made
  one backend slower): a regression in at least 19 of 20 comparisons;
- 5%: the same with `eager_slow5`: never an improvement.

With --ab, the same three questions in same-job mode (`normbench ab --a eager --b ...`, A and B
interleaved, 4 cases). Prints the figures (recorded in docs/regression-gate.md) and writes every
verdict to a JSON file. Other processes on the same cores make runs differ: the load average is
printed before and after; re-run on a quiet machine for figures that describe the gate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def tally(cmp) -> dict:
    from normbench.compare import counts
    from normbench.results.compare import CaseComparison

    c = {v.value: n for v, n in counts(cmp).items()}
    cases = cmp.of(CaseComparison)
    ratios = {r.case_id: r.get("ratio") for r in cases}
    return {
        "regression": c.get("regression", 0),
        "improvement": c.get("improvement", 0),
        "same": c.get("same", 0),
        "inconclusive": c.get("inconclusive", 0),
        "between_run_noise": cmp.config.get("between_run_noise"),
        "ratios": {k: m.value for k, m in ratios.items() if m and m.value is not None},
        "ci": {k: [m.ci_low, m.ci_high] for k, m in ratios.items() if m and m.ci_low},
        "verdicts": {r.case_id: r.verdict.value for r in cases},
    }


def view(run, slowed: str | None = None):
    """The run as the suite of eager, composite and torchscript; with `slowed`, the slowed
    backend's cases stand in for eager's (a pull request that made one backend slower)."""
    results = []
    for r in run.results:
        if r.backend == slowed:
            results.append(replace(r, case_id=r.case_id.replace(f"/{slowed}/", "/eager/", 1),
                                   backend="eager"))  # fmt: skip
        elif r.backend in ("composite", "torchscript") or (r.backend == "eager" and not slowed):
            results.append(r)
    return replace(run, results=results)


def separate(ns, sel, speed_config, progress) -> dict:
    """Each run measures the suite and both slowed backends; run k is compared with run k-1 as
    is (A/A) and with its eager rows replaced by a slowed backend's (15%, 5%)."""
    from normbench.compare import CompareConfig, compare_runs
    from normbench.suites.speed import run_speed

    aa, slow15, slow5 = [], [], []
    cmp = CompareConfig(threshold=ns.threshold)
    backends = (*sel.backends, "eager_slow15", "eager_slow5")
    config = replace(speed_config, selection=replace(sel, backends=backends))
    prev = None
    for k in range(ns.comparisons + 1):
        t0 = time.perf_counter()
        run = run_speed(config)
        if prev is not None:
            base = view(prev)
            aa.append(tally(compare_runs(base, view(run), cmp)))
            slow15.append(tally(compare_runs(base, view(run, "eager_slow15"), cmp)))
            slow5.append(tally(compare_runs(base, view(run, "eager_slow5"), cmp)))
        prev = run
        progress(f"separate runs: {k}/{ns.comparisons} done ({time.perf_counter() - t0:.0f} s)")
    return {"aa": aa, "slow15": slow15, "slow5": slow5}


def interleaved(ns, sel, speed_config, progress) -> dict:
    from normbench.compare import CompareConfig
    from normbench.suites.ab import ABConfig, run_ab

    out: dict[str, list] = {"aa": [], "slow15": [], "slow5": []}
    eager = replace(speed_config, selection=replace(sel, backends=("eager",)))
    cmp = CompareConfig(threshold=ns.threshold)
    for k in range(ns.comparisons):
        for key, b in (("aa", "eager"), ("slow15", "eager_slow15"), ("slow5", "eager_slow5")):
            out[key].append(tally(run_ab(ABConfig(eager, "eager", b, cmp)).comparison))
        progress(f"interleaved: {k + 1}/{ns.comparisons} done")
    return out


def across_installs(ns, speed_config, progress) -> dict:
    """The CI gate across two installs (`normbench ab --a @BASE --b @.`): A/A over the default
    quick suite (every default backend, BASE a git worktree of the same commit); 15% and 5% as
    `--a eager@BASE --b eager_slow15` (the slowed backend from this checkout's fixtures)."""
    from normbench.compare import CompareConfig
    from normbench.config_args import SelectionArgs, build_selection
    from normbench.suites.ab import ABConfig, run_ab
    from normbench.worker import Install

    here, base = Install(sys.executable, str(ROOT)), Install(sys.executable, str(ns.base))
    suite = build_selection(SelectionArgs(device="cpu"))  # the default quick suite
    eager_sel = replace(suite, backends=("eager",))
    cmp = CompareConfig(threshold=ns.threshold)
    out: dict[str, list] = {"aa": [], "slow15": [], "slow5": []}
    plugins = ("normbench.fixtures",)
    # The slowed questions may take a longer budget (a CI gate's, not --quick's); an A/A of the
    # same eager cases at that budget is added so that its false alarms are counted too.
    slow_config = replace(speed_config, selection=eager_sel,
                          time_budget=ns.slow_budget or speed_config.time_budget)  # fmt: skip
    if ns.slow_budget:
        out["aa_eager"] = []
    for k in range(ns.comparisons):
        if not ns.no_suite_aa:
            aa = ABConfig(replace(speed_config, selection=suite), "", "", cmp,
                          specs=(f"@{ns.base}", "@."), installs=(base, here),
                          processes=ns.processes)  # fmt: skip
            out["aa"].append(tally(run_ab(aa).comparison))
        pairs = [("slow15", "eager_slow15"), ("slow5", "eager_slow5")]
        if ns.slow_budget:
            pairs.append(("aa_eager", "eager"))
        for key, b in pairs:
            cfg = ABConfig(slow_config, "eager", b, cmp,
                           specs=(f"eager@{ns.base}", f"{b}@."), installs=(base, here),
                           plugins=plugins, processes=ns.processes)  # fmt: skip
            out[key].append(tally(run_ab(cfg).comparison))
        progress(f"across installs: {k + 1}/{ns.comparisons} done")
    return out


def eager(case: str) -> bool:
    return "/eager" in case or case.count("/") == 3  # ab ids carry no backend


def report(mode: str, res: dict, n: int) -> list[str]:
    aa_reg = sum(c["regression"] for c in res["aa"])
    aa_imp = sum(c["improvement"] for c in res["aa"])
    aa_cases = sum(len(c["ratios"]) for c in res["aa"])  # compared cases
    caught = sum(
        1 for c in res["slow15"] if any(v == "regression" for k, v in c["verdicts"].items()
                                        if eager(k))
    )  # fmt: skip
    caught_cases = sum(
        v == "regression" for c in res["slow15"] for k, v in c["verdicts"].items() if eager(k)
    )
    cases15 = sum(1 for c in res["slow15"] for k in c["verdicts"] if eager(k))
    # Only the eager cases were slowed: a verdict on another case is noise.
    other15 = sum(
        v == "regression" for c in res["slow15"] for k, v in c["verdicts"].items() if not eager(k)
    )
    imp5 = sum(c["improvement"] for c in res["slow5"])
    reg5 = sum(1 for c in res["slow5"] if c["regression"])
    ratios15 = sorted(r for c in res["slow15"] for k, r in c["ratios"].items() if eager(k))
    ratios5 = sorted(r for c in res["slow5"] for k, r in c["ratios"].items() if eager(k))
    taus = sorted(c["between_run_noise"] or 0.0 for c in res["aa"])
    med = lambda xs: xs[len(xs) // 2] if xs else float("nan")  # noqa: E731
    ok = aa_reg == 0 and caught >= n - 1 and imp5 == 0
    extra = []
    if res.get("aa_eager"):
        reg = sum(c["regression"] for c in res["aa_eager"])
        imp = sum(c["improvement"] for c in res["aa_eager"])
        cases = sum(len(c["ratios"]) for c in res["aa_eager"])
        extra.append(
            f"| A/A of the slowed questions' eager cases, same budget: cases judged a "
            f"regression | {reg} of {cases} ({imp} judged an improvement) | 0 |"
        )
        ok = ok and reg == 0
    return [
        f"## {mode}",
        "",
        "| question | result | target |",
        "|---|---|---|",
        f"| A/A: cases judged a regression | {aa_reg} of {aa_cases} ({len(res['aa'])} "
        f"comparisons; {aa_imp} judged an improvement) | 0 |",
        f"| 15% slower: comparisons with a regression | {caught} of {len(res['slow15'])} "
        f"({caught_cases} of {cases15} slowed cases; {other15} regressions among the others) "
        f"| >= {n - 1} of {n} |",
        f"| 5% slower: cases judged an improvement | {imp5} (comparisons with a regression: "
        f"{reg5} of {len(res['slow5'])}) | 0 |",
        f"| measured slowdown of eager_slow15 / eager_slow5 (median ratio) | "
        f"{med(ratios15):.3f} / {med(ratios5):.3f} | 1.15 / 1.05 |",
        f"| A/A between-run noise estimated by compare (median, max; 1 sd of log ratio) | "
        f"{med(taus):.3f}, {max(taus, default=0):.3f} | - |",
        *extra,
        "",
        f"{'PASS' if ok else 'FAIL'}: {mode}.",
        "",
    ]


def cases_line(ns, sel) -> str:
    if ns.base:  # across_installs: the default quick suite, and its eager cases
        slow = ns.slow_budget or ns.time_budget
        return (
            f"A/A over the default quick suite ({ns.time_budget} s per case and side), the "
            f"slowed questions on its eager cases ({slow} s), {ns.processes} worker "
            "process(es) per side"
        )
    return f"{', '.join(c.id for c in sel.cases())} (quick, {ns.time_budget} s per case)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comparisons", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="default: torch's")
    parser.add_argument("--threshold", type=float, default=0.05)
    parser.add_argument("--time-budget", type=float, default=0.3)
    parser.add_argument("--ab", action="store_true", help="also the interleaved ab mode")
    parser.add_argument("--ab-only", action="store_true", help="only the interleaved ab mode")
    parser.add_argument("--slow-budget", type=float, default=None,
                        help="with --base: seconds per case and side for the slowed questions "
                        "(and an eager A/A at that budget)")  # fmt: skip
    parser.add_argument("--no-suite-aa", action="store_true",
                        help="with --base: skip the A/A of the whole default suite")  # fmt: skip
    parser.add_argument("--base", type=Path, default=None,
                        help="a checkout of the base commit (git worktree): measure the gate "
                        "across two installs (ab @BASE vs @.) instead")  # fmt: skip
    parser.add_argument("--processes", type=int, default=None,
                        help="with --base: worker processes per side (default: ab's)")  # fmt: skip
    parser.add_argument("--dim", default="1024,4096")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--out", type=Path, default=None, help="JSON with every verdict")
    ns = parser.parse_args()
    if ns.processes is None:
        from normbench.suites.ab import DEFAULT_PROCESSES

        ns.processes = DEFAULT_PROCESSES
    os.environ.setdefault("NORMBENCH_CACHE_DIR", tempfile.mkdtemp(prefix="normbench-bench-"))
    from normbench.env import prepare_cpu_memory

    prepare_cpu_memory()  # as the CLI does, before torch: huge pages and the steady heap

    import torch

    from normbench.config import Selection, SpeedConfig
    from normbench.fixtures import register_slowed

    register_slowed(0.15)
    register_slowed(0.05)
    threads = ns.threads or torch.get_num_threads()
    dims = tuple(int(d) for d in ns.dim.split(","))
    sel = Selection(("layernorm", "rmsnorm"), ("eager", "composite", "torchscript"), ("fp32",),
                    dims, (4,), (ns.seq,), ("fwd",), device="cpu")  # fmt: skip
    speed_config = SpeedConfig(sel, threads=threads, time_budget=ns.time_budget, quick=True)
    start = time.perf_counter()
    before = loadavg()

    def progress(msg: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f} s, load {loadavg()}] {msg}", file=sys.stderr)

    results, lines = {}, []
    if ns.base:
        results["installs"] = across_installs(ns, speed_config, progress)
        lines += report("across installs (ab @BASE vs @., worker processes)",
                        results["installs"], ns.comparisons)  # fmt: skip
    elif not ns.ab_only:
        results["separate"] = separate(ns, sel, speed_config, progress)
        lines += report("separate runs (CI: baseline job vs PR job)", results["separate"],
                        ns.comparisons)  # fmt: skip
    if ns.ab or ns.ab_only:
        results["interleaved"] = interleaved(ns, sel, speed_config, progress)
        lines += report("interleaved ab (same job)", results["interleaved"], ns.comparisons)
    wall = time.perf_counter() - start
    head = [
        f"# aa_detection: {ns.comparisons} comparisons per question, margin {ns.threshold:.0%}",
        "",
        f"Cases: {cases_line(ns, sel)}, {threads} thread(s), torch {torch.__version__}.",
        f"Wall time {wall:.0f} s; load average (1, 5, 15 min) before: {before}, "
        f"after: {loadavg()} on {os.cpu_count()} cores.",
        "",
    ]
    print("\n".join(head + lines))
    out = (
        ns.out
        or Path(tempfile.gettempdir()) / f"aa_detection-{time.strftime('%Y%m%d-%H%M%S')}.json"
    )
    args = {k: str(v) if isinstance(v, Path) else v for k, v in vars(ns).items()}
    out.write_text(json.dumps({"args": args | {"out": str(out)}, "load_before": before,
                               "load_after": loadavg(), "wall_s": wall, "results": results},
                              indent=1))  # fmt: skip
    print(f"Every verdict: {out}")


if __name__ == "__main__":
    main()
