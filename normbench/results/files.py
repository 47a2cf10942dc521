"""The one boundary from typed results to tidy rows, and the run file.

`tidy_rows(run)` is the only place results become rows: `to_frame` (the CSV, plots and `report`)
and the JSON file are built on it, and `load_run` reads those rows back into typed results by
their `kind`.

JSON schema version 2: {"tool": "normbench", "schema_version": 2, "suite", "created", "wall_s",
"interrupted", "argv", "git", "env", "config", "findings": [{"level", "text"}], "rows": [tidy
rows with their samples]}, published as a JSON Schema (normbench/results/schema/run-v2.schema.json,
`schema_path()`; docs/formats.md "The JSON file"). `argv` and `git` came later within version 2:
a file without them reads back with both unknown. Version-1 files (one flat row per metric, the
suite's own fields in "extra", the summary as lines) are read through normbench.results.v1.

Files are written by normbench.results.writing: atomically, at the user's umask.

A partial file (`<command>-<time>.partial.jsonl`, written by normbench.results.partial while a
suite runs: `result_rows` per finished case, one per line) is read back by `load_run` as an
interrupted run, so `normbench report` renders what a crashed run finished (docs/design.md
"Data flow", step 7).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from normbench.errors import BaselineError
from normbench.results.model import (
    KINDS,
    SCHEMA_VERSION,
    STATUSES,
    Finding,
    Level,
    Result,
    Run,
    UnknownResult,
)
from normbench.results.v1 import row as v1_row

# Where they lived before the writing half moved out: kept for library users' imports.
from normbench.results.writing import (  # noqa: F401, E402
    atomic_write_text,
    file_mode,
    umask,
    write_run_files,
)

if TYPE_CHECKING:
    import pandas as pd

# The columns every row has, in the order the CSV shows them: version 1's first, in its order,
# so a reader by position still works; then the result's kind, the layer options, the shape as
# numbers (rows: the normalized rows M = batch x seq x heads), a category value as text and the
# device label of a merged run; a kind's own fields follow (docs/formats.md "The CSV file").
COLUMNS = (
    "case_id", "suite", "variant", "backend", "dtype", "shape", "mode", "metric", "value", "unit",
    "status", "note", "p20", "p80", "ci_low", "ci_high", "n", "kind", "options", "batch", "seq",
    "heads", "dim", "rows", "value_text", "device",
)  # fmt: skip
TEXT = ("case_id", "variant", "backend", "dtype", "shape", "mode", "metric", "unit", "value_text",
        "created", "note", "options", "kind", "device")  # fmt: skip
NUMBERS = ("value", "p20", "p80", "ci_low", "ci_high")
WHOLE = ("n", "batch", "seq", "heads", "dim", "rows")  # counts and sizes: whole, never negative


def result_rows(suite: str, result: Result, samples: bool = True) -> list[dict[str, Any]]:
    """One result as tidy rows, each led by its suite."""
    out = []
    for row in result.to_rows():
        row = {"suite": suite, **row}
        row.pop("created", None)  # a record's own fields (audit) hold it too: written once
        if result.created:  # a merged run's result: when its run was made
            row["created"] = result.created
        if not samples:
            row.pop("samples", None)
        out.append(row)
    return out


def tidy_rows(run: Run, samples: bool = True) -> list[dict[str, Any]]:
    """Every result of the run as tidy rows: one per case and metric (or per record)."""
    return [row for result in run.results for row in result_rows(run.suite, result, samples)]


def to_frame(run: Run, samples: bool = False) -> pd.DataFrame:
    """The run as a pandas DataFrame, one row per case and metric; without raw samples unless
    asked (they are lists)."""
    return _frame(tidy_rows(run, samples=samples))


def _frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The tidy rows as a DataFrame: COLUMNS first, then any other key in the order it appears."""
    import pandas as pd

    extra = list(dict.fromkeys(k for r in rows for k in r if k not in COLUMNS))
    return pd.DataFrame(rows, columns=[*COLUMNS, *extra])


def export_frame(run: Run, metrics: Sequence[str] = ()) -> pd.DataFrame:
    """`to_frame` for the files others read (CSV, Liger): only the rows of `metrics` (all when
    none is given, normbench.results.metrics.select_rows), and every column whose values are
    whole numbers as pandas' nullable Int64, so `n`, the shape and byte counts are written as
    3, not 3.0, beside the gaps of rows that have none."""
    from normbench.results.metrics import select_rows

    rows = select_rows(tidy_rows(run, samples=False), run.suite, metrics)
    frame = _frame(rows)
    for name in frame.columns:
        given = [r[name] for r in rows if r.get(name) is not None]
        if given and all(isinstance(v, int) and not isinstance(v, bool) for v in given):
            frame[name] = frame[name].astype("Int64")
    return frame


def clean_json(obj: Any) -> Any:
    """JSON has no NaN/inf: write them as null so any parser can read the file."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    return obj


def to_dict(run: Run) -> dict[str, Any]:
    return {
        "tool": "normbench",
        "schema_version": SCHEMA_VERSION,
        "suite": run.suite,
        "created": run.created,
        "wall_s": run.wall_s,
        "interrupted": run.interrupted,
        "argv": run.argv,
        "git": run.git,
        "env": run.env,
        "config": run.config,
        "findings": [f.to_dict() for f in run.findings],
        "rows": tidy_rows(run),
    }


def schema_path() -> Path:
    """The JSON Schema of a version-2 run file, shipped with the package."""
    return Path(__file__).with_name("schema") / "run-v2.schema.json"


def dumps(run: Run) -> str:
    return json.dumps(clean_json(to_dict(run)), indent=1, default=str)


def results_from_rows(rows: list[dict[str, Any]]) -> list[Result]:
    """Group rows by (kind, case, device, ab side), in the order they first appear, and read
    each group back as its kind (an unknown kind kept as its rows, `UnknownResult`). The side
    keeps `ab --a eager --b eager`'s two sides of one case apart in its partial file."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    seen: set[tuple] = set()
    for i, r in enumerate(rows, 1):
        key = (
            r.get("kind") or "case",
            r["case_id"],
            r.get("device") or "",
            str(r.get("side") or ""),
        )
        # One row per metric of a case: a second one (a file edited or joined by hand) would
        # be read as the first by one reader and as the last by another. Kinds this version
        # does not know keep their rows as they are.
        if key[0] in KINDS and r.get("metric") is not None:
            if (*key, r["metric"]) in seen:
                raise ValueError(
                    f"row {i}: case {r['case_id']!r} has a second {r['metric']!r} row (edited "
                    "or joined by hand?); a case holds each metric once"
                )
            seen.add((*key, r["metric"]))
        groups.setdefault(key, []).append(r)
    return [_created(KINDS.get(key[0], UnknownResult).from_rows(g), g)
            for key, g in groups.items()]  # fmt: skip


def _created(result: Result, rows: list[dict[str, Any]]) -> Result:
    """A merged run's result with the time its own run was made (each kind reads its fields;
    this one every result has)."""
    when = rows[0].get("created")  # text, or absent (check_row)
    return replace(result, created=when) if when else result


def _is_number(v: Any) -> bool:
    """A JSON number the reporters can use: not a bool, and an integer only as large as a
    float can hold (a longer one is no measurement, and fails later in float() or str())."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return not isinstance(v, int) or abs(v) <= sys.float_info.max


def finite_number(v: Any) -> float | None:
    """`v` as a float when it is a finite JSON number (not a bool, not NaN or inf), else None."""
    return float(v) if _is_number(v) and math.isfinite(v) else None


def _short(v: Any) -> str:
    """A value for a message: a huge integer is named by its size, not printed."""
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > sys.float_info.max:
        return f"an integer of {len(str(abs(v)))} digits"  # at most 4300: JSON read it
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def check_row(r: Any, where: str) -> None:
    """The types the reporters rely on: a hand-edited or foreign file fails here, in one
    sentence, not in a plot."""
    if not isinstance(r, dict):
        raise TypeError(f"{where} is not an object")
    name = r.get("case_id")
    if not isinstance(name, str) or not name.strip():
        # Every row is keyed by its case: a row without one cannot be matched or shown.
        raise TypeError(f"{where}: 'case_id' must be a case name, got {_short(name)}")
    for key in TEXT:
        if key in r and r[key] is not None and not isinstance(r[key], str):
            raise TypeError(f"{where}: '{key}' must be text, got {r[key]!r}")
    for key in NUMBERS:
        v = r.get(key)
        if v is not None and not _is_number(v):
            raise TypeError(f"{where} ({name}): '{key}' must be a number or null, got {_short(v)}")
    for key in WHOLE:
        v = r.get(key)
        if v is not None and (not _is_number(v) or not isinstance(v, int) or v < 0):
            raise TypeError(f"{where} ({name}): '{key}' must be a whole number, got {_short(v)}")
    samples = r.get("samples") or []
    if not isinstance(samples, (list, tuple)) or not all(_is_number(s) for s in samples):
        raise TypeError(f"{where} ({name}): 'samples' must be a list of numbers")
    if r.get("status", "ok") not in STATUSES:
        raise ValueError(f"{where}: status {r.get('status')!r}: choose from {', '.join(STATUSES)}")


def check_header(data: dict[str, Any]) -> None:
    """The run's own fields, as the reporters use them (a timestamp is parsed, a flag tested)."""
    for key, kind, what in (("created", str, "a timestamp"), ("interrupted", bool, "true or false"),
                            ("env", dict, "an object"), ("config", dict, "an object")):  # fmt: skip
        v = data.get(key)
        if v is not None and not isinstance(v, kind):
            raise TypeError(f"'{key}' must be {what}, got {_short(v)}")
    wall = data.get("wall_s")
    if wall is not None and (not _is_number(wall) or wall < 0):
        raise TypeError(f"'wall_s' must be seconds, got {_short(wall)}")


def _finding(f: Any, i: int) -> Finding:
    """One saved finding: {"text": ..., "level"?: ...}; anything else is one sentence."""
    if not isinstance(f, dict) or not isinstance(f.get("text"), str):
        raise TypeError(f"finding {i + 1} must be an object with a 'text', got {_short(f)}")
    return Finding(f["text"], Level(f.get("level", "result")))


def from_dict(data: dict[str, Any]) -> Run:
    version = data.get("schema_version")
    rows = data["rows"]
    if version == 1:
        rows = [v1_row(data["suite"], r) for r in rows]
        findings = [Finding.parse(line) for line in data.get("summary") or []]
    else:
        findings = [_finding(f, i) for i, f in enumerate(data.get("findings") or [])]
    if not isinstance(rows, list):
        raise TypeError(f"'rows' must be a list of rows, got {_short(rows)}")
    for i, r in enumerate(rows):
        check_row(r, f"row {i + 1}")
    check_header(data)
    return Run(
        suite=data["suite"],
        env=dict(data.get("env") or {}),
        config=dict(data.get("config") or {}),
        results=results_from_rows(rows),
        findings=findings,
        created=data.get("created", ""),
        interrupted=bool(data.get("interrupted")),
        wall_s=float(data.get("wall_s") or 0.0),
        # Older files have neither: unknown, never this process's own.
        argv=list(data["argv"]) if isinstance(data.get("argv"), list) else None,
        git=dict(data["git"]) if isinstance(data.get("git"), dict) else None,
    )


def load_run(path: str | Path) -> Run:
    """Read a saved run (schema version 1 or 2); any problem is one sentence naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BaselineError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BaselineError(f"{path}: is a folder, not a saved run") from None
    except OSError as exc:
        raise BaselineError(f"{path}: cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise BaselineError(f"{path}: not a text file (binary, or not UTF-8)") from None
    if path.name.endswith(PARTIAL_SUFFIX):
        return _load_partial(path, text)
    data = _parse_json(path, text)
    if not isinstance(data, dict) or data.get("tool") != "normbench" or "rows" not in data:
        raise BaselineError(f"{path}: not a normbench run (no 'tool': 'normbench' and 'rows')")
    version = data.get("schema_version")
    if isinstance(version, bool) or version not in (1, SCHEMA_VERSION):  # true == 1 in Python
        raise BaselineError(
            f"{path}: schema_version {version!r}, this normbench reads 1 and {SCHEMA_VERSION}"
        )
    if not isinstance(data.get("suite"), str) or not data["suite"]:
        raise BaselineError(f"{path}: malformed run ('suite' must be a name)")
    try:
        return from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        # e.g. a row that is a list, or a wall_s too large for a float
        raise BaselineError(f"{path}: malformed run ({exc})") from None


def _parse_json(path: Path, text: str, line: int | None = None) -> Any:
    """json.loads, its failures as one sentence naming the file (and the line of a JSON-lines
    file)."""
    at = f" line {line}" if line is not None else ""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(
            f"{path}{at}: not valid JSON (corrupt or truncated at line {exc.lineno}, "
            f"column {exc.colno})"
        ) from None
    except ValueError:
        # Python refuses to read an integer of more than sys.get_int_max_str_digits() digits
        # (a guard against quadratic-time parsing); no measurement is that long.
        raise BaselineError(
            f"{path}{at}: holds an integer of more than {sys.get_int_max_str_digits()} digits, "
            "which no normbench run writes"
        ) from None
    except RecursionError:
        raise BaselineError(f"{path}{at}: nested too deeply to be a normbench run") from None


# --- reading a partial file (written by normbench.results.partial) --------------------------

PARTIAL_SUFFIX = ".partial.jsonl"


def _load_partial(path: Path, text: str) -> Run:
    """A partial file as an interrupted run: its rows, no environment, one warning. A last
    line cut short by the crash is left out and said so."""
    lines = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]
    rows: list[Any] = []
    cut = False
    for number, line in lines:
        try:
            rows.append(_parse_json(path, line, number))
        except BaselineError:
            if number != lines[-1][0]:
                raise
            cut = True
    if not rows:
        raise BaselineError(f"{path}: no finished case in this partial file")
    try:
        for number, r in enumerate(rows, 1):
            check_row(r, f"line {number}")
        suite = rows[0].get("suite")
        if not isinstance(suite, str) or not suite:
            raise ValueError("line 1 has no 'suite'")
        results = results_from_rows(rows)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BaselineError(f"{path}: malformed partial file ({exc})") from None
    note = "; its last line was cut short and is left out" if cut else ""
    finding = Finding(
        f"Partial results: the run stopped before its reports were written; these are the "
        f"{len(results)} results that finished{note}",
        Level.WARNING,
    )
    return Run(suite=suite, env={}, config={}, results=results, findings=[finding],
               created="", interrupted=True, argv=None, git=None)  # fmt: skip
