"""`speed --baseline`: the saved run read and its fingerprint checked before anything is
measured (BaselineError, exit 3), then the new run judged against it with compare's verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from normbench.results import Run


def read_baseline(
    path: Path | None, device: str, threads: int, force: bool, cache: str = "cold"
) -> Run | None:
    """The baseline run at `path` (None: no baseline), checked as compare will check it, so that
    a wrong one costs no measuring: refused when it holds no timed cases or no raw samples,
    and, unless `force`, when it comes from another device, driver, torch, triton or thread
    count, or was timed with another cache state than `cache`."""
    if path is None:
        return None
    from normbench.compare import check_compatible, load_baseline
    from normbench.compare_pairs import check_cache_states, timing_results
    from normbench.env import fingerprint

    base = load_baseline(path)
    name = f"baseline {path}"
    check_compatible(base.env, fingerprint(device, threads), force, name)
    timing_results(base, lambda r: r.case_id, name)
    check_cache_states(base, {cache}, force, name)
    return base


def against_baseline(base: Run, path: Path, run: Run, threshold: float, force: bool) -> Run:
    """compare's run of `run` against the baseline read from `path`."""
    from normbench.compare import CompareConfig, compare_runs

    names = (f"baseline {path.name}", "this run")
    cmp = compare_runs(base, run, CompareConfig(threshold=threshold, force=force), names)
    cmp.config["base"]["path"] = str(path)
    return cmp
