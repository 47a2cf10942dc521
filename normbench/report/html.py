"""A self-contained HTML index of a run, to open in a browser and read top to bottom: what was
run, the answers (summary), the environment, the plots (embedded, so the file can be mailed or
attached to a CI job on its own), then every table."""

from __future__ import annotations

import base64
from html import escape
from typing import TYPE_CHECKING

from normbench.report.markdown import ENV_KEYS
from normbench.report.tables import tables

if TYPE_CHECKING:
    from normbench.results import Run

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.meta { color: #666; } ul.summary li { margin: 0.3em 0; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 12.5px; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.skipped td { color: #999; } tr.error td { color: #b00; }
tr.mismatch td { color: #b00; font-weight: 600; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #666; font-size: 0.9em; } nav a { margin-right: 1em; }
.warn { background: #fff4e0; padding: 0.5em 1em; border-left: 4px solid #f90; }
"""


# One paragraph per suite on how to read the page (docs/numerics.md sections 3, 2 and 7).
READING = {
    "speed": "GB/s is the variant's ideal byte count (the fewest bytes any implementation must "
    "move) divided by the median time, so backends compare on one scale; the dashed line is this "
    "device's measured copy bandwidth, the practical ceiling. Error bars span p20-p80. Every "
    "case was checked against an fp64 reference before it was timed.",
    "stability": "Each implementation is compared with the fp64 reference of the semantics it "
    "declares. PASS: every element within 2x the error of PyTorch's own low-precision result plus "
    "atol; WARN: up to 4x that bound, or two runs differ bitwise; FAIL: anything worse, with the "
    "reason in words. The sweep scales inputs by 2^k to find where each stays PASS.",
    "compare": "Per case, the ratio of median times new/base with a block-bootstrap 95% CI. A "
    "regression needs the whole CI above 1 + margin and significance after Holm's correction "
    "over all cases; inconclusive means the data cannot tell.",
}


def _table(cols: list[str], rows: list[list[str]]) -> str:
    status_at = cols.index("status") if "status" in cols else None
    head = "".join(f"<th>{escape(c)}</th>" for c in cols)
    body = []
    for r in rows:
        cls = f' class="{escape(r[status_at])}"' if status_at is not None else ""
        cells = "".join(
            f'<td class="num">{escape(v)}</td>' if _numeric(v) else f"<td>{escape(v)}</td>"
            for v in r
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _numeric(text: str) -> bool:
    t = text.replace(",", "").replace("x", "").replace("%", "").split(" ")[0]
    try:
        float(t)
    except ValueError:
        return False
    return True


def render(run: Run, images: dict[str, bytes] | None = None) -> str:
    """The page; `images` maps a figure name to its PNG bytes (embedded as data URIs)."""
    from normbench.report.merge import environment_table

    images = images or {}
    title = f"normbench {run.suite}"
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)} {escape(run.created)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">Run {escape(run.created)}, {run.wall_s:.0f} s, '
        f"{len(run.rows)} result rows.</p>",
    ]
    sections = [("summary", "Summary")] if run.summary else []
    sections += [("environment", "Environment")]
    sections += [("plots", "Plots")] if images else []
    views = tables(run)
    sections += [(f"table-{i}", t) for i, (t, _, _) in enumerate(views)]
    out.append("<nav>" + "".join(f'<a href="#{a}">{escape(t)}</a>' for a, t in sections) + "</nav>")
    if run.interrupted:
        out.append('<p class="warn">Interrupted: the tables hold the cases that finished.</p>')
    if run.summary:
        out.append('<h2 id="summary">Summary</h2><ul class="summary">')
        out += [f"<li>{escape(line)}</li>" for line in run.summary]
        out.append("</ul>")
    if run.suite in READING:
        out.append(f'<p class="meta">How to read: {escape(READING[run.suite])}</p>')
    out.append('<h2 id="environment">Environment</h2>')
    out.append(_table(*environment_table(run, ENV_KEYS)))
    if images:
        out.append('<h2 id="plots">Plots</h2>')
        for name, png in images.items():
            data = base64.b64encode(png).decode("ascii")
            out.append(
                f'<figure><img alt="{escape(name)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{escape(name)}</figcaption></figure>"
            )
    for i, (t, cols, rows) in enumerate(views):
        out.append(f'<h2 id="table-{i}">{escape(t)}</h2>')
        out.append(_table(cols, rows))
    out.append("</body></html>")
    return "\n".join(out) + "\n"
