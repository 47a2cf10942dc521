"""Every pointer into docs/ from the code, the tests and the docs lands on a heading.

Code and tests say why a number or a check is what it is by citing a page of docs/: a numbered
section ("## 3. Ideal bytes"), a trap ("### Trap 4: ..." in docs/numerics.md) or a heading by
name (a quoted heading after the page). A citation that lands nowhere sends the reader to
nothing, so this test resolves each one. The notes the project was first built from are not in
the repository, so nothing may point at them. This file spells those names out and is not
scanned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SCAN_DIRS = ("normbench", "tests", "benchmarks", "examples", "docs")
SCAN_FILES = ("README.md", "Makefile", "pyproject.toml")
TEXT_SUFFIXES = {".py", ".md", ".yml", ".yaml", ".toml", ".txt", ".cfg", ".ini", ".sh"}
SELF = Path(__file__).resolve()

# "3", "3 and 5", "3, 2 and 7", "3, 2, and 7".
NUMS = r"\d+(?:(?:\s*,\s*(?:and\s+)?|\s+and\s+)\d+)*"
PAGE = r"(?<![\w/.-])(?:docs/)?(?P<page>[a-z][a-z0-9_-]*)\.md"
# "docs/numerics.md section 3", "numerics.md sections 4 and 5", "docs/numerics.md trap 4".
PAGE_NUMBERED = re.compile(rf"{PAGE},?\s+(?P<kind>[Ss]ections?|[Tt]raps?)\s+(?P<nums>{NUMS})\b")
# 'docs/design.md "Layout" and "Conventions"'.
PAGE_NAMED = re.compile(rf'{PAGE},?\s+(?P<names>"[^"]{{1,60}}"(?:\s+and\s+"[^"]{{1,60}}")*)')
# A page followed by a bare number ("numerics.md 2.4"): say "section" or "trap".
PAGE_BARE_NUMBER = re.compile(rf"{PAGE},?\s+\d")
TRAP = re.compile(rf"\b[Tt]raps?\s+(?P<nums>{NUMS})\b")
SECTION = re.compile(rf"\b[Ss]ections?\s+(?P<nums>{NUMS})\b")
SECTION_SIGN = re.compile(r"§\s*\d")
# The private notes: upper-case names, the shared folder beside the checkout.
PRIVATE = re.compile(r"\b(?:NUMERICS|DESIGN|DIAGNOSTICS)\b|(?:\.\./|/work/)shared\b")


@dataclass(frozen=True)
class Citation:
    source: str  # file relative to the repository root
    text: str  # the citation as written (whitespace collapsed)
    page: str  # docs/<page>.md
    kind: str  # "section", "trap" or "name"
    targets: tuple[str, ...]  # numbers, or heading names


@dataclass(frozen=True)
class Headings:
    sections: frozenset[int]
    traps: frozenset[int]
    names: tuple[str, ...]  # heading texts, lower case, without their number


def _numbers(nums: str) -> tuple[str, ...]:
    return tuple(re.findall(r"\d+", nums))


def flatten(text: str) -> str:
    """One line of prose: Markdown links reduced to their target, line breaks (and the comment
    markers that continue a comment) to one space, so a citation split over lines still reads."""
    text = re.sub(r"\[[^\]\n]*\]\(([^)\s]*)\)", r"\1", text)
    text = re.sub(r"[ \t]*\n[ \t]*(?:#+[ \t]*)?", " ", text)
    return re.sub(r"[ \t]+", " ", text)


def citations(source: str, text: str) -> tuple[list[Citation], list[str]]:
    """The citations in `text` and the problems no heading can fix (a bare number after a page,
    a bare "section N" outside docs/, a section sign)."""
    flat = flatten(text)
    own_page = Path(source).stem if source.startswith("docs/") else None
    found: list[Citation] = []
    problems: list[str] = []
    taken: list[tuple[int, int]] = []
    for m in PAGE_NUMBERED.finditer(flat):
        kind = "trap" if m["kind"].lower().startswith("trap") else "section"
        found.append(Citation(source, m[0], m["page"], kind, _numbers(m["nums"])))
        taken.append(m.span())
    for m in PAGE_NAMED.finditer(flat):
        names = tuple(re.findall(r'"([^"]+)"', m["names"]))
        found.append(Citation(source, m[0], m["page"], "name", names))
    for m in PAGE_BARE_NUMBER.finditer(flat):
        problems.append(f"{source}: {m[0]!r}: say which section or trap ('section N', 'trap N')")

    def inside(span: tuple[int, int]) -> bool:
        return any(a <= span[0] and span[1] <= b for a, b in taken)

    for m in TRAP.finditer(flat):
        if not inside(m.span()):  # the traps live in docs/numerics.md, whoever cites them
            found.append(Citation(source, m[0], "numerics", "trap", _numbers(m["nums"])))
    for m in SECTION.finditer(flat):
        if inside(m.span()):
            continue
        if own_page is not None:  # a docs page citing its own section
            found.append(Citation(source, m[0], own_page, "section", _numbers(m["nums"])))
        else:
            problems.append(f"{source}: {m[0]!r} does not name its page (docs/<page>.md {m[0]})")
    for m in SECTION_SIGN.finditer(flat):
        problems.append(f"{source}: {m[0]!r}: cite as 'docs/<page>.md section N'")
    return found, problems


def parse_headings(markdown: str) -> Headings:
    sections, traps, names = set(), set(), []
    fence = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        m = re.match(r"#{1,6}\s+(.*?)\s*$", line)
        if fence or not m:
            continue
        title = m[1]
        number = re.match(r"(\d+)\.\s+(.*)", title)
        if number:
            sections.add(int(number[1]))
            title = number[2]
        trap = re.match(r"Trap\s+(\d+)\b", title)
        if trap:
            traps.add(int(trap[1]))
        names.append(title.lower())
    return Headings(frozenset(sections), frozenset(traps), tuple(names))


@cache
def headings(page: str) -> Headings | None:
    path = DOCS / f"{page}.md"
    return parse_headings(path.read_text()) if path.is_file() else None


def unresolved(c: Citation) -> list[str]:
    h = headings(c.page)
    if h is None:
        return [f"{c.source}: {c.text!r}: there is no docs/{c.page}.md"]
    missing: list[str] = []
    for t in c.targets:
        if c.kind == "section" and int(t) not in h.sections:
            missing.append(f"section {t}")
        elif c.kind == "trap" and int(t) not in h.traps:
            missing.append(f"trap {t}")
        elif c.kind == "name" and not any(n.startswith(t.lower()) for n in h.names):
            missing.append(f"heading {t!r}")
    return [f"{c.source}: {c.text!r}: no {m} in docs/{c.page}.md" for m in missing]


def scanned_files() -> list[Path]:
    paths = [ROOT / f for f in SCAN_FILES if (ROOT / f).is_file()]
    for d in SCAN_DIRS:
        paths += sorted(
            p
            for p in (ROOT / d).rglob("*")
            if p.is_file() and p.suffix in TEXT_SUFFIXES and "__pycache__" not in p.parts
        )
    return [p for p in paths if p.resolve() != SELF]


@cache
def all_citations() -> tuple[tuple[Citation, ...], tuple[str, ...]]:
    found: list[Citation] = []
    problems: list[str] = []
    for path in scanned_files():
        cs, ps = citations(path.relative_to(ROOT).as_posix(), path.read_text(errors="replace"))
        found += cs
        problems += ps
    return tuple(found), tuple(problems)


# --- the parser on known text --------------------------------------------------------------


def test_parser_reads_every_citation_form():
    text = (
        "# tolerance (docs/numerics.md section 2), a bootstrap 95% CI,\n"
        "# docs/numerics.md\n# sections 3, 2 and 7; traps 6 and 7; Trap 13 (Liger)\n"
        '[docs/numerics.md](docs/numerics.md) section 9; docs/design.md "Layout" and "Conventions"'
    )
    found, problems = citations("normbench/x.py", text)
    got = {(c.page, c.kind, c.targets) for c in found}
    assert got == {
        ("numerics", "section", ("2",)),
        ("numerics", "section", ("3", "2", "7")),
        ("numerics", "trap", ("6", "7")),
        ("numerics", "trap", ("13",)),
        ("numerics", "section", ("9",)),
        ("design", "name", ("Layout", "Conventions")),
    }
    assert problems == []


def test_parser_flags_citations_that_cannot_resolve():
    _, problems = citations("normbench/x.py", "see section 4; numerics.md 2.4; \u00a7 3")
    assert len(problems) == 3
    # Inside docs/ a bare section is the page's own.
    found, problems = citations("docs/numerics.md", "the tensor backward (section 9)")
    assert [(c.page, c.targets) for c in found] == [("numerics", ("9",))] and problems == []


def test_headings_give_sections_traps_and_names():
    h = parse_headings(
        "# T\n## 2. Traps and the rule\n### Trap 4: a large mean\n```\n## 7. code\n```\n"
    )
    assert h.sections == {2} and h.traps == {4}
    assert "traps and the rule" in h.names and "trap 4: a large mean" in h.names


# --- the repository ------------------------------------------------------------------------


def test_the_scan_sees_the_citations():
    # A scan that found nothing would pass every check below.
    found, _ = all_citations()
    pages = {c.page for c in found}
    assert {"numerics", "diagnostics"} <= pages
    assert sum(c.kind == "trap" for c in found) >= 13


def test_every_citation_resolves_to_a_heading():
    found, problems = all_citations()
    bad = list(problems)
    for c in found:
        bad += unresolved(c)
    assert not bad, "citations that land nowhere:\n" + "\n".join(bad)
    assert any(c.page == "design" for c in found)  # the design page is cited and checked too


def test_every_cited_trap_has_its_own_heading():
    h = headings("numerics")
    assert h is not None
    cited = {int(t) for c in all_citations()[0] if c.kind == "trap" for t in c.targets}
    assert cited <= h.traps
    assert h.traps == set(range(1, max(h.traps) + 1)), "traps are numbered 1..N without gaps"


def test_nothing_points_at_the_private_notes():
    hits = []
    for path in scanned_files():
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if PRIVATE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:90]}")
    assert not hits, "cite docs/ instead:\n" + "\n".join(hits)
