"""How a stability run reads: a verdict matrix (input x implementation, worst over N), the
findings with their reasons, the worst case per implementation, declared-semantics differences
and the dynamic range of the 2^k sweep."""

from __future__ import annotations

from typing import TYPE_CHECKING

from normbench.report.tables import Table, fmt, register_view, variant_label

if TYPE_CHECKING:
    from normbench.results import Row, Run

RANK = {"PASS": 0, "WARN": 1, "FAIL": 2, "ERROR": 3}


def verdict_of(r: Row) -> str:
    if r.status == "skipped":
        return "-"
    if r.status == "error" and "verdict" not in r.extra:
        return "ERROR"  # the harness itself failed on this case
    return r.extra.get("verdict", "FAIL")


def _case_rows(run: Run) -> list[Row]:
    # CaseLoop writes a harness failure as an error row (under "time" in runs saved before it
    # took the suite's metric).
    return [
        r for r in run.rows if r.metric == "verdict" or (r.status == "error" and r.metric == "time")
    ]


def _dist(r: Row) -> str:
    if "dist" in r.extra:
        return r.extra["dist"]
    tail = r.case_id.split("/")[5:]  # variant/backend/dtype/shape/mode[/dist][/options]
    if tail and tail[-1] == r.extra.get("options"):
        tail = tail[:-1]
    return tail[0] if tail else "normal"


def _dim(r: Row) -> str:
    return str(r.extra.get("dim") or r.shape.split("x")[-1])


def matrix(run: Run) -> Table:
    rows = _case_rows(run)
    backends = list(dict.fromkeys(r.backend for r in rows))
    cells: dict[tuple[str, str, str], dict[str, dict[str, str]]] = {}
    for r in rows:
        key = (r.dtype, variant_label(r), _dist(r))
        cells.setdefault(key, {}).setdefault(r.backend, {})[_dim(r)] = verdict_of(r)
    out = []
    for (dtype, variant, dist), per_backend in cells.items():
        line = [dtype, variant, dist]
        for b in backends:
            by_n = per_backend.get(b, {})
            judged = {n: v for n, v in by_n.items() if v != "-"}
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


def findings(run: Run) -> Table:
    bad = [r for r in _case_rows(run) if verdict_of(r) not in ("PASS", "-")]
    bad.sort(key=lambda r: -RANK[verdict_of(r)])
    out = [
        [
            f"{variant_label(r)}/{r.backend}",
            r.dtype,
            _dim(r),
            _dist(r),
            verdict_of(r),
            r.extra.get("tensor", "-"),
            fmt(r.extra.get("max_ulp")),
            fmt(r.extra.get("rel"), 2),
            r.note,
        ]
        for r in bad
    ]
    cols = [
        "implementation",
        "dtype",
        "N",
        "input",
        "verdict",
        "tensor",
        "max ulp",
        "rel err",
        "reason",
    ]
    return ("stability: findings (WARN, FAIL)", cols, out)


def worst_table(run: Run) -> Table:
    groups: dict[str, list[Row]] = {}
    for r in _case_rows(run):
        groups.setdefault(f"{r.variant}/{r.backend}", []).append(r)
    det = {}
    for r in run.rows:
        if r.metric == "deterministic":
            key = f"{r.variant}/{r.backend}"
            det[key] = det.get(key, True) and bool(r.value)
    out = []
    for impl, rows in groups.items():
        judged = [r for r in rows if verdict_of(r) != "-"]
        counts = {v: sum(1 for r in judged if verdict_of(r) == v) for v in ("PASS", "WARN", "FAIL")}
        counts["FAIL"] += sum(1 for r in judged if verdict_of(r) == "ERROR")
        if not judged:
            continue  # listed in the "not run" table
        w = max(judged, key=lambda r: (RANK[verdict_of(r)], r.extra.get("tol_ratio") or 0.0))
        where = f"{w.dtype} N={_dim(w)} {_dist(w)}"
        reason = w.note
        verdict = verdict_of(w)
        out.append(
            [
                impl,
                verdict,
                str(counts["PASS"]),
                str(counts["WARN"]),
                str(counts["FAIL"]),
                str(len(rows) - len(judged)),
                {True: "yes", False: "NO"}.get(det.get(impl), "-"),
                where,
                reason,
            ]
        )
    cols = [
        "implementation",
        "worst",
        "PASS",
        "WARN",
        "FAIL",
        "not run",
        "bitwise repro",
        "worst case",
        "reason",
    ]
    return ("stability: worst case per implementation", cols, out)


def not_run_table(run: Run) -> Table | None:
    """Skipped cases grouped by implementation and reason, with the inputs they cover."""
    groups: dict[tuple[str, str], list[str]] = {}
    for r in _case_rows(run):
        if r.status == "skipped":
            dists = groups.setdefault((f"{r.variant}/{r.backend}", r.note), [])
            if _dist(r) not in dists:
                dists.append(_dist(r))
    if not groups:
        return None
    every = set(map(_dist, _case_rows(run)))
    out = [
        [impl, "all" if set(d) == every else ", ".join(d), reason]
        for (impl, reason), d in groups.items()
    ]
    return ("stability: not run", ["implementation", "inputs", "reason"], out)


def semantics_table(run: Run) -> Table | None:
    seen: dict[tuple[str, str], tuple[float, str]] = {}
    for r in _case_rows(run):
        note = r.extra.get("semantics")
        if not note:
            continue
        key = (f"{r.variant}/{r.backend}", r.dtype)
        ulp = r.extra.get("semantic_ratio") or 0.0
        if key not in seen or ulp > seen[key][0]:
            seen[key] = (ulp, note)
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


def sweep_table(run: Run) -> Table | None:
    lows = {r.case_id: r for r in run.rows if r.metric == "safe_scale_min"}
    out = []
    for r in run.rows:
        if r.metric != "safe_scale_max":
            continue
        x = r.extra
        if r.status == "skipped":
            out.append(
                [variant_label(r), r.dtype, str(x.get("dim", "-")), r.backend, "-", "-", r.note]
            )
            continue
        low = lows.get(r.case_id)
        out.append(
            [
                variant_label(r),
                r.dtype,
                str(x.get("dim")),
                r.backend,
                _pow(x.get("low_k"), bool(x.get("low_edge"))),
                _pow(x.get("high_k"), bool(x.get("high_edge"))),
                "; ".join(n for n in ((low.note if low else ""), r.note) if n),
            ]
        )
    if not out:
        return None
    cols = [
        "variant",
        "dtype",
        "N",
        "backend",
        "smallest PASS scale",
        "largest PASS scale",
        "reason",
    ]
    return ("stability: dynamic range (unit-max inputs x 2^k)", cols, out)


@register_view("stability")
def stability_view(run: Run) -> list[Table]:
    out = [matrix(run), findings(run), worst_table(run)]
    for extra in (semantics_table(run), sweep_table(run), not_run_table(run)):
        if extra is not None:
            out.append(extra)
    return [t for t in out if t[2]]
