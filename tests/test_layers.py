"""The layout holds: imports run one way (core -> suites -> report -> cli), with no cycle, counting
the imports inside functions (which hide a cycle from Python but not from a reader); no module
is over about 400 lines without its reason written at its top (docs/design.md "Layout")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "normbench"
LIMIT = 420  # "about 400"
# The layers, lowest first; a module may import its own layer and the ones below.
LAYERS = ("core", "suites", "report", "cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """Every normbench module `path` imports, at the top or inside a function (TYPE_CHECKING
    imports are for annotations only and are left out)."""
    tree = ast.parse(path.read_text())
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only |= {id(n) for child in node.body for n in ast.walk(child)}
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    )
    out = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                out.add(name)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    # Importing a package's submodule runs the package's __init__ first, which is not an edge
    # the reader sees: a module's own package is left out.
    return {
        m: {d for d in imports(p, known) if d != m and not m.startswith(d + ".")}
        for m, p in mods.items()
    }


def layer(module: str) -> str:
    if module in ("normbench.cli", "normbench.__main__") or module.startswith("normbench.cli_"):
        return "cli"
    if module.startswith("normbench.report"):
        return "report"
    if module.startswith("normbench.suites") or module == "normbench.worker.__main__":
        return "suites"  # the worker program runs suites in a child process
    return "core"


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_scan_sees_imports_inside_functions():
    g = graph()
    assert "normbench.results" in g["normbench.suites.speed"] or any(
        d.startswith("normbench.results") for d in g["normbench.suites.speed"]
    )
    assert len(g) > 60


def test_no_import_cycle():
    assert cycles(graph()) == []


def test_imports_run_one_way():
    wrong = [
        f"{m} ({layer(m)}) imports {d} ({layer(d)})"
        for m, deps in graph().items()
        for d in deps
        if LAYERS.index(layer(d)) > LAYERS.index(layer(m))
    ]
    assert wrong == []


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: module_name(p))
def test_long_modules_say_why(path):
    lines = path.read_text().splitlines()
    if len(lines) <= LIMIT:
        return
    head = "\n".join(lines[:15]).lower()
    assert "over 400 lines" in head or "longer than 400" in head, (
        f"{module_name(path)} has {len(lines)} lines: split it, or say at its top why it is one"
    )
