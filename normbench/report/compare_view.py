"""How a comparison reads: the table shared by the console and the Markdown report, and the
short Markdown summary meant for `$GITHUB_STEP_SUMMARY` or a pull-request comment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from normbench.report.tables import Table, fmt_time_ms, register_view

if TYPE_CHECKING:
    from normbench.results import Row, Run

# Worst first: what a reviewer must look at heads the table.
ORDER = ("regression", "broken", "improvement", "inconclusive", "missing", "new",
         "not compared", "same")  # fmt: skip
MARK = {"regression": "SLOWER", "broken": "BROKEN", "improvement": "faster"}


def _ratio(r: Row) -> str:
    return f"{r.value:.3f}x" if r.value is not None else "-"


def _ci(r: Row) -> str:
    if r.ci_low is None or r.ci_high is None:
        return "-"
    return f"{r.ci_low:.3f}-{r.ci_high:.3f}"


def _pct(r: Row) -> str:
    return f"{r.value - 1:+.1%}" if r.value is not None else "-"


def sorted_rows(run: Run) -> list[Row]:
    rows = [r for r in run.rows if r.metric == "ratio"]
    rank = {v: i for i, v in enumerate(ORDER)}
    return sorted(rows, key=lambda r: rank.get(r.extra.get("verdict", ""), len(ORDER)))


def case_table(run: Run, rows: list[Row] | None = None) -> Table:
    a, b = run.config.get("labels") or ("base", "new")
    cols = ["case", a, b, "change", "ratio", "95% CI", "verdict", "note"]
    out = []
    for r in rows if rows is not None else sorted_rows(run):
        x = r.extra
        out.append([
            r.case_id, fmt_time_ms(x.get("base_ms")), fmt_time_ms(x.get("new_ms")), _pct(r),
            _ratio(r), _ci(r), x.get("verdict", "-"), r.note,
        ])  # fmt: skip
    return ("compare", cols, out)


@register_view("compare")
def compare_view(run: Run) -> list[Table]:
    tables = [case_table(run)]
    geo = next((r for r in run.rows if r.metric == "geomean_ratio"), None)
    if geo is not None:
        tables.append(("suite", ["geometric-mean ratio", "95% CI", "cases"],
                       [[_ratio(geo), _ci(geo), str(geo.n)]]))  # fmt: skip
    return tables


def _md(cols: list[str], rows: list[list[str]]) -> str:
    from normbench.report.markdown import md_table

    return md_table(cols, rows)


def markdown_summary(run: Run) -> str:
    """A verdict line, the cases that need a look, and every case folded under <details>."""
    from normbench.compare import counts, exit_code, geomean, headline

    cfg = run.config
    failed = exit_code(run)
    icon = ":x:" if failed else ":white_check_mark:"
    out = [f"### {icon} normbench compare: {headline(run)}", ""]
    base, new = cfg.get("base", {}), cfg.get("new", {})
    if base or new:
        out.append(
            f"{base.get('name', 'base')} ({base.get('created', '')}) vs "
            f"{new.get('name', 'new')} ({new.get('created', '')}), "
            f"device `{run.env.get('device_name', '?')}`, torch {run.env.get('torch', '?')}."
        )
    geo = geomean(run)
    if geo is not None:
        out.append(f"Geometric-mean ratio new/base: **{_ratio(geo)}** (95% CI {_ci(geo)}).")
    for line in run.summary[1:]:
        if line.startswith(("Warning", "Note")):
            out.append(f"> {line}")
    rows = sorted_rows(run)
    flagged = [r for r in rows if r.extra.get("verdict") not in ("same",)]
    _, cols, table_rows = case_table(run, flagged)
    c = counts(run)
    if flagged:
        out += ["", _md(cols, table_rows)]
    out += ["", f"<details><summary>All {len(rows)} cases ({c['same']} same)</summary>", ""]
    _, cols, table_rows = case_table(run, rows)
    out += [_md(cols, table_rows), "", "</details>", ""]
    out.append(
        f"<sub>Ratio of medians with a block-bootstrap 95% CI; a regression needs the whole CI "
        f"above +{cfg.get('margin', 0.05):.0%} and Holm-corrected significance at alpha "
        f"{cfg.get('alpha', 0.05):g}. See docs/regression-gate.md.</sub>"
    )
    return "\n".join(out) + "\n"


def append_markdown(run: Run, path) -> None:
    """Append the summary to `path` (GitHub's step summary is one file that each step appends
    to, so it is never replaced)."""
    from pathlib import Path

    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(markdown_summary(run))


@register_view("calibrate")
def calibrate_view(run: Run) -> list[Table]:
    cols = ["case", "A/A comparisons", "noise floor", "worst change"]
    rows = []
    for r in run.rows:
        if r.metric == "noise_floor" and not r.case_id.startswith("suite/"):
            worst = r.extra.get("worst_ratio_change_pct")
            rows.append([
                r.case_id, str(r.n), f"{r.value:.1f}%",
                f"{worst:.1f}%" if worst is not None else "-",
            ])  # fmt: skip
    suite = {r.metric: r for r in run.rows if r.case_id.startswith("suite/")}
    out = [("A/A noise per case", cols, rows)]
    if suite:
        floor, margin = suite.get("noise_floor"), suite.get("min_margin")
        out.append((
            "calibration",
            ["noise floor (p99)", "smallest margin, < 1% false alarms", "case comparisons"],
            [[
                f"{floor.value:.1f}%" if floor else "-",
                f"{margin.value:.1f}%" if margin else "-",
                str(margin.n) if margin else "-",
            ]],
        ))  # fmt: skip
    return out
