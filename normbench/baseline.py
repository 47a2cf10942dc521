"""`speed --baseline`: the saved run read and its fingerprint checked before anything is
measured (BaselineError, exit 3), then the new run judged against it with compare's verdicts."""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from normbench.errors import BaselineError, UsageError

if TYPE_CHECKING:
    from normbench.results import Run


# A speed run's own report, not its gab, gab-bigger or liger file (which share its stem).
_SPEED_RUN = re.compile(r"speed-\d{8}-\d{6}(-\d+)?\.json")


def baseline_file(path: Path | None) -> Path | None:
    """--baseline FILE, or a folder holding one speed run (a CI cache restored into `base/`):
    its file. `base/speed-*.json` also matched the run's `.gab.json` file, which the shell then
    passed as a second argument (exit 2)."""
    if path is None or not path.is_dir():
        return path
    runs = sorted(p for p in path.iterdir() if _SPEED_RUN.fullmatch(p.name))
    if not runs:
        raise BaselineError(f"baseline {path}: no speed run (speed-<timestamp>.json) in it")
    if len(runs) > 1:
        names = ", ".join(p.name for p in runs[:3]) + (", ..." if len(runs) > 3 else "")
        raise UsageError(f"--baseline {path}: it holds {len(runs)} speed runs ({names}): name one")
    return runs[0]


def read_baseline(
    path: Path | None,
    device: str,
    threads: int,
    force: bool,
    cache: str = "cold",
    planned: Collection[str] = (),
) -> Run | None:
    """The baseline run at `path` (None: no baseline), checked as compare will check it, so that
    a wrong one costs no measuring: refused when it holds no timed cases or no raw samples, or
    none of the `planned` case ids (this run's selection: a bf16 run against an fp32 baseline
    was measured in full, then compared nothing), and, unless `force`, when it comes from
    another device, driver, torch, triton or thread count, or was timed with another cache
    state than `cache`."""
    if path is None:
        return None
    from normbench.compare import check_compatible, load_baseline
    from normbench.compare_pairs import check_cache_states, timing_results
    from normbench.env import fingerprint

    base = load_baseline(path)
    name = f"baseline {path}"
    check_compatible(base.env, fingerprint(device, threads), force, name)
    timed = timing_results(base, lambda r: r.case_id, name)
    check_cache_states(base, {cache}, force, name)
    if planned and not set(planned) & set(timed):
        theirs = _selection(timed)
        raise BaselineError(
            f"{name} has none of this run's {len(planned)} cases (it holds {theirs}; this "
            f"run {_selection(planned)}): choose the same --variant, --dtype, --dim and "
            "--backend, or another baseline"
        )
    return base


def _selection(case_ids: Collection[str]) -> str:
    """'rmsnorm, layernorm / eager / fp32 / 4x512x1024, ... / fwd': each part of the ids
    (variant/backend/dtype/shape/mode), its values in order, three at most."""
    parts: list[dict[str, None]] = [{} for _ in range(5)]
    for cid in case_ids:
        for i, v in enumerate(cid.split("/")[:5]):
            parts[i][v] = None
    return " / ".join(", ".join(list(p)[:3]) + (", ..." if len(p) > 3 else "") for p in parts if p)


def against_baseline(base: Run, path: Path, run: Run, threshold: float, force: bool) -> Run:
    """compare's run of `run` against the baseline read from `path`."""
    from normbench.compare import CompareConfig, compare_runs

    names = (f"baseline {path.name}", "this run")
    cmp = compare_runs(base, run, CompareConfig(threshold=threshold, force=force), names)
    cmp.config["base"]["path"] = str(path)
    return cmp


def comparison_formats(formats: tuple[str, ...]) -> tuple[str, ...]:
    """speed --baseline: the comparison's files, in the run's formats, but every comparison
    metric (--metrics chose the speed run's rows: `bandwidth` is none of the comparison's) and
    no gab-bigger file (a comparison has no bigger-is-better metric: it could only be `[]`)."""
    from normbench.formats import Formats

    return Formats([f for f in formats if f != "gab-bigger"])
