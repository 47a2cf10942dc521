"""How a stability run reads: a verdict matrix (input x implementation, worst over N), the
findings with their reasons, the worst case per implementation, declared-semantics differences
and the dynamic range of the 2^k sweep."""

from __future__ import annotations

from typing import TYPE_CHECKING

from normbench.fmt import fmt
from normbench.report.tables import Table
from normbench.results import Status
from normbench.results.stability import StabilityResult, SweepRangeResult
from normbench.verdicts import RANK as VERDICT_RANK

if TYPE_CHECKING:
    from normbench.config import StabilityConfig
    from normbench.results import Run

# ERROR: the case could not run (no verdict: out of memory, the harness or a plugin's sys.exit
# failed on it). Shown above PASS and WARN, below a FAIL, which says the numbers are wrong (as
# normbench.suites.stability ranks it).
RANK = {**VERDICT_RANK, "ERROR": 1.5}
FINDING_COLUMNS = ["implementation", "dtype", "N", "input", "verdict", "tensor", "max ulp",
                   "rel err", "reason"]  # fmt: skip
WORST_COLUMNS = ["implementation", "worst", "PASS", "WARN", "FAIL", "not run", "bitwise repro",
                 "worst case", "reason"]  # fmt: skip
SWEEP_COLUMNS = ["variant", "dtype", "N", "backend", "smallest PASS scale", "largest PASS scale",
                 "reason"]  # fmt: skip
# Every header of the tables but the matrix's one column per backend (headers(config) adds
# them): what --columns may name.
HEADERS = list(dict.fromkeys([
    "dtype", "variant", "input", *FINDING_COLUMNS, *WORST_COLUMNS, "inputs", "note",
    *SWEEP_COLUMNS,
]))  # fmt: skip


def headers(config: StabilityConfig) -> list[str]:
    """HEADERS and the backends the run selects (the verdict matrix's columns)."""
    return [*HEADERS, *config.selection.backends]


def verdict_of(r: StabilityResult) -> str:
    """As a cell: '-' not run, ERROR where the harness failed, else the verdict."""
    if r.status is Status.SKIPPED:
        return "-"
    if r.verdict is None:
        return "ERROR" if r.status is Status.ERROR else "FAIL"
    return r.verdict.value


def _dist(r: StabilityResult) -> str:
    if r.dist:
        return r.dist
    # A version-1 harness-error row kept no dist: it is in the case id.
    tail = r.case_id.split("/")[5:]  # variant/backend/dtype/shape/mode[/dist][/options]
    if tail and tail[-1] == r.options:
        tail = tail[:-1]
    return tail[0] if tail else "normal"


def _dim(r: StabilityResult) -> str:
    return str(r.dim)


def _impl(r: StabilityResult) -> str:
    return f"{r.variant}/{r.backend}"


def matrix(cases: list[StabilityResult]) -> Table:
    backends = list(dict.fromkeys(r.backend for r in cases))
    cells: dict[tuple[str, str, str], dict[str, dict[str, str]]] = {}
    for r in cases:
        key = (r.dtype, r.variant_label, _dist(r))
        cells.setdefault(key, {}).setdefault(r.backend, {})[_dim(r)] = verdict_of(r)
    out = []
    for (dtype, variant, dist), per_backend in cells.items():
        line = [dtype, variant, dist]
        for b in backends:
            judged = {n: v for n, v in per_backend.get(b, {}).items() if v != "-"}
            if not judged:
                line.append("-")
                continue
            worst = max(judged.values(), key=RANK.__getitem__)
            at = [n for n, v in judged.items() if v == worst]
            partial = worst != "PASS" and len(at) < len(judged)
            line.append(f"{worst} (N={','.join(at)})" if partial else worst)
        if any(cell != "-" for cell in line[3:]):
            out.append(line)  # an input no selected implementation runs is in "not run"
    return (
        "stability: verdict per input (worst over N; - not run)",
        ["dtype", "variant", "input", *backends],
        out,
    )


def findings(cases: list[StabilityResult]) -> Table:
    bad = [r for r in cases if verdict_of(r) not in ("PASS", "-")]
    bad.sort(key=lambda r: -RANK[verdict_of(r)])
    out = [
        [f"{r.variant_label}/{r.backend}", r.dtype, _dim(r), _dist(r), verdict_of(r),
         r.tensor or "-", fmt(r.max_ulp), fmt(r.rel, 2), r.reason]
        for r in bad
    ]  # fmt: skip
    return ("stability: findings (WARN, FAIL)", list(FINDING_COLUMNS), out)


def worst_table(cases: list[StabilityResult]) -> Table:
    groups: dict[str, list[StabilityResult]] = {}
    det: dict[str, bool] = {}
    for r in cases:
        groups.setdefault(_impl(r), []).append(r)
        if r.deterministic is not None:
            det[_impl(r)] = det.get(_impl(r), True) and r.deterministic
    out = []
    for impl, rows in groups.items():
        judged = [r for r in rows if verdict_of(r) != "-"]
        if not judged:
            continue  # listed in the "not run" table
        counts = {v: sum(1 for r in judged if verdict_of(r) == v) for v in ("PASS", "WARN", "FAIL")}
        # A case that could not run (ERROR) counts as not run, never as a FAIL.
        not_run = len(rows) - sum(counts.values())
        w = max(judged, key=lambda r: (RANK[verdict_of(r)], r.tol_ratio or 0.0))
        out.append([
            impl, verdict_of(w), str(counts["PASS"]), str(counts["WARN"]), str(counts["FAIL"]),
            str(not_run), {True: "yes", False: "NO"}.get(det.get(impl), "-"),
            f"{w.dtype} N={_dim(w)} {_dist(w)}", w.reason,
        ])  # fmt: skip
    return ("stability: worst case per implementation", list(WORST_COLUMNS), out)


def not_run_table(cases: list[StabilityResult]) -> Table | None:
    """Skipped cases grouped by implementation and reason, with the inputs they cover."""
    groups: dict[tuple[str, str], list[str]] = {}
    for r in cases:
        if r.status is Status.SKIPPED:
            dists = groups.setdefault((_impl(r), r.reason), [])
            if _dist(r) not in dists:
                dists.append(_dist(r))
    if not groups:
        return None
    every = set(map(_dist, cases))
    out = [
        [impl, "all" if set(d) == every else ", ".join(d), reason]
        for (impl, reason), d in groups.items()
    ]
    return ("stability: not run", ["implementation", "inputs", "reason"], out)


def semantics_table(cases: list[StabilityResult]) -> Table | None:
    seen: dict[tuple[str, str], tuple[float, str]] = {}
    for r in cases:
        if not r.semantics:
            continue
        key = (_impl(r), r.dtype)
        ratio = r.semantic_ratio or 0.0
        if key not in seen or ratio > seen[key][0]:
            seen[key] = (ratio, r.semantics)
    if not seen:
        return None
    out = [[impl, dtype, note] for (impl, dtype), (_, note) in seen.items()]
    return (
        "stability: declared semantics vs the contract (largest distance; not errors)",
        ["implementation", "dtype", "note"],
        out,
    )


def _pow(k: int | None, edge: bool) -> str:
    if k is None:
        return "none"
    return f"2^{k}" + (" (sweep edge)" if edge else "")


def sweep_table(ranges: list[SweepRangeResult]) -> Table | None:
    out = []
    for r in ranges:
        head = [r.variant_label, r.dtype, str(r.shape.dim if r.shape else "-"), r.backend]
        high, low = r.high, r.low
        if high is not None and high.status is Status.SKIPPED:
            out.append([*head, "-", "-", high.note])
            continue
        notes = (m.note for m in (low, high) if m is not None and m.note)
        out.append([*head, _pow(r.low_k, bool(r.low_edge)), _pow(r.high_k, bool(r.high_edge)),
                    "; ".join(notes)])  # fmt: skip
    if not out:
        return None
    return ("stability: dynamic range (unit-max inputs x 2^k)", list(SWEEP_COLUMNS), out)


def view(run: Run) -> list[Table]:
    from normbench.report.capture_view import view as captured  # stability --inputs

    cases = run.of(StabilityResult)
    out = [*captured(run), matrix(cases), findings(cases), worst_table(cases)]
    for extra in (semantics_table(cases), sweep_table(run.of(SweepRangeResult)),
                  not_run_table(cases)):  # fmt: skip
        if extra is not None:
            out.append(extra)
    return [t for t in out if t[2]]
