"""How a comparison reads: the table shared by the console and the Markdown report, and the
short Markdown summary meant for `$GITHUB_STEP_SUMMARY` or a pull-request comment."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from normbench.compare import CANT_JUDGE, counts, exit_code, geomean, headline
from normbench.fmt import fmt_time_ms
from normbench.report.footnotes import footnoted
from normbench.report.markdown import md_shown
from normbench.report.tables import Table
from normbench.results import Level
from normbench.results.compare import CaseComparison, Verdict

if TYPE_CHECKING:
    from normbench.results import Run
    from normbench.results.compare import GeomeanRatio

# Worst first: what a reviewer must look at heads the table.
ORDER = (
    Verdict.REGRESSION, Verdict.BROKEN, Verdict.IMPROVEMENT, Verdict.UNRELIABLE,
    Verdict.INCONCLUSIVE, Verdict.MISSING, Verdict.NEW, Verdict.NOT_COMPARED, Verdict.SAME,
)  # fmt: skip
# Every header the tables can have with compare's own labels (--columns checks names against
# it; ab's sides are named after their specs).
HEADERS = ["case", "base", "new", "change", "ratio", "95% CI", "verdict", "note",
           "geometric-mean ratio", "cases"]  # fmt: skip
# The summary's icon by exit code: pass, fail, could not judge.
ICONS = {0: ":white_check_mark:", 1: ":x:", CANT_JUDGE: ":warning:"}
# Findings quoted in the Markdown summary: what may make the verdict wrong, and how to read it.
QUOTED = (Level.WARNING, Level.NOTE)


def _ratio(value: float | None) -> str:
    return f"{value:.3f}x" if value is not None else "-"


def _ci(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "-"
    return f"{low:.3f}-{high:.3f}"


def _pct(value: float | None) -> str:
    return f"{value - 1:+.1%}" if value is not None else "-"


def sorted_cases(run: Run) -> list[CaseComparison]:
    rank = {v: i for i, v in enumerate(ORDER)}
    return sorted(run.of(CaseComparison), key=lambda r: rank.get(r.verdict, len(ORDER)))


def case_table(run: Run, cases: list[CaseComparison] | None = None) -> Table:
    a, b = run.config.get("labels") or ("base", "new")
    cols = ["case", a, b, "change", "ratio", "95% CI", "verdict", "note"]
    out = []
    for r in cases if cases is not None else sorted_cases(run):
        m = r.ratio
        out.append([
            r.case_id, fmt_time_ms(r.base_ms), fmt_time_ms(r.new_ms), _pct(m.value),
            _ratio(m.value), _ci(m.ci_low, m.ci_high), r.verdict.value, m.note,
        ])  # fmt: skip
    return ("compare", cols, out)


def _geo_cells(geo: GeomeanRatio) -> list[str]:
    return [_ratio(geo.value), _ci(geo.ci_low, geo.ci_high), str(geo.n)]


def view(run: Run) -> list[Table]:
    tables = [case_table(run)]
    geo = geomean(run)
    if geo is not None:
        tables.append(("suite", ["geometric-mean ratio", "95% CI", "cases"], [_geo_cells(geo)]))
    return tables


def markdown_summary(run: Run) -> str:
    """A verdict line, the cases that need a look, and every case folded under <details>."""
    cfg = run.config
    icon = ICONS.get(exit_code(run), ":x:")
    head = headline(run)
    if run.interrupted:  # cut short (ab, Ctrl-C): the verdicts hold the finished cases only
        icon, head = ":warning:", f"INTERRUPTED, over the finished cases only: {head}"
    out = [f"### {icon} normbench compare: {head}", ""]
    base, new = cfg.get("base", {}), cfg.get("new", {})
    if base or new:
        out.append(
            f"{base.get('name', 'base')} ({base.get('created', '')}) vs "
            f"{new.get('name', 'new')} ({new.get('created', '')}), "
            f"device `{run.env.get('device_name', '?')}`, torch {run.env.get('torch', '?')}."
        )
    geo = geomean(run)
    if geo is not None:
        ratio, ci, _ = _geo_cells(geo)
        out.append(f"Geometric-mean ratio new/base: **{ratio}** (95% CI {ci}).")
    out += [f"> {f.line}" for f in run.findings if f.level in QUOTED]
    cases = sorted_cases(run)
    flagged = [r for r in cases if r.verdict is not Verdict.SAME]
    c = counts(run)
    if flagged:
        out += ["", md_shown(footnoted(case_table(run, flagged)))]
    out += ["", f"<details><summary>All {len(cases)} cases ({c[Verdict.SAME]} same)</summary>", ""]
    out += [md_shown(footnoted(case_table(run, cases))), "", "</details>", ""]
    out.append(
        f"<sub>Ratio of medians with a block-bootstrap 95% CI; a regression needs the whole CI "
        f"above +{cfg.get('margin', 0.05):.0%} and Holm-corrected significance at alpha "
        f"{cfg.get('alpha', 0.05):g}; a case timed while the machine was unreliable is not "
        "judged. See docs/regression-gate.md.</sub>"
    )
    return "\n".join(out) + "\n"


def append_markdown(run: Run, path: str | Path) -> None:
    """Append the summary to `path` (GitHub's step summary is one file that each step appends
    to, so it is never replaced)."""
    path = Path(path)  # checked before measuring (normbench.outdir.check_md)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(markdown_summary(run))
