"""Result rows and runs: tidy, versioned, joinable; saved atomically and never overwritten."""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from normbench.errors import BaselineError

SCHEMA_VERSION = 1
STATUSES = ("ok", "skipped", "mismatch", "error")


@dataclass(frozen=True)
class Row:
    """One case and one metric. Timing rows also carry the distribution and raw samples."""

    case_id: str
    suite: str
    variant: str
    backend: str
    dtype: str
    shape: str
    mode: str
    metric: str
    value: float | None
    unit: str
    status: str = "ok"
    note: str = ""
    p20: float | None = None
    p80: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    samples: tuple[float, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r}: choose from {', '.join(STATUSES)}")

    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        d = asdict(self)
        d["samples"] = list(self.samples)
        if not samples:
            d.pop("samples")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Row:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["samples"] = tuple(kw.get("samples") or ())
        kw["extra"] = dict(kw.get("extra") or {})
        return cls(**kw)


@dataclass
class Run:
    suite: str
    env: dict[str, Any]
    config: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    interrupted: bool = False
    schema_version: int = SCHEMA_VERSION
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": "normbench",
            "schema_version": self.schema_version,
            "suite": self.suite,
            "created": self.created,
            "wall_s": self.wall_s,
            "interrupted": self.interrupted,
            "env": self.env,
            "config": self.config,
            "summary": self.summary,
            "rows": [r.to_dict() for r in self.rows],
        }

    def frame(self):
        """A pandas DataFrame, one row per case and metric (no raw samples)."""
        import pandas as pd

        cols = [f.name for f in fields(Row) if f.name not in ("samples", "extra")]
        data = [{k: getattr(r, k) for k in cols} for r in self.rows]
        return pd.DataFrame(data, columns=cols)

    def metric(self, name: str) -> list[Row]:
        return [r for r in self.rows if r.metric == name]


def _clean(obj: Any) -> Any:
    """JSON has no NaN/inf: write them as null so any parser can read the file."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def dumps(run: Run) -> str:
    return json.dumps(_clean(run.to_dict()), indent=1, default=str)


def load_run(path: str | Path) -> Run:
    """Read a saved run; any problem is one sentence naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BaselineError(f"{path}: no such file") from None
    except OSError as exc:
        raise BaselineError(f"{path}: cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise BaselineError(f"{path}: not a text file (binary, or not UTF-8)") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(
            f"{path}: not valid JSON (corrupt or truncated at line {exc.lineno}, "
            f"column {exc.colno})"
        ) from None
    if not isinstance(data, dict) or data.get("tool") != "normbench" or "rows" not in data:
        raise BaselineError(f"{path}: not a normbench run (no 'tool': 'normbench' and 'rows')")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BaselineError(
            f"{path}: schema_version {version!r}, this normbench reads {SCHEMA_VERSION}"
        )
    try:
        rows = [Row.from_dict(r) for r in data["rows"]]
        return Run(
            suite=data["suite"],
            env=dict(data.get("env") or {}),
            config=dict(data.get("config") or {}),
            rows=rows,
            summary=list(data.get("summary") or []),
            created=data.get("created", ""),
            interrupted=bool(data.get("interrupted")),
            wall_s=float(data.get("wall_s") or 0.0),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # e.g. a row that is a list
        raise BaselineError(f"{path}: malformed run ({type(exc).__name__}: {exc})") from None


def atomic_write_text(path: Path, text: str | bytes, overwrite: bool = False) -> Path:
    """Write through a temporary file in the same folder (bytes are written as they are).
    Without `overwrite`, the final name is claimed with a hard link, which fails instead of
    replacing an existing file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    binary = isinstance(text, bytes)
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # FileExistsError if an earlier run owns the name
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_run_files(
    out_dir: Path, stem: str, contents: dict[str, str | bytes | Callable[[str], str | bytes]]
) -> dict[str, Path]:
    """Write {extension: text} as out_dir/stem[-k].ext, choosing the first k for which no file
    of any of the extensions exists, so one run's reports share a name and none is overwritten.
    A callable value is called with the chosen name (stem[-k]) once it is known, for a report
    that links its sibling files (the Markdown linking its plots)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for k in range(1, 1000):
        name = stem if k == 1 else f"{stem}-{k}"
        paths = {ext: out_dir / f"{name}.{ext}" for ext in contents}
        if any(p.exists() for p in paths.values()):
            continue
        written: dict[str, Path] = {}
        try:
            for ext, text in contents.items():
                written[ext] = atomic_write_text(paths[ext], text(name) if callable(text) else text)
        except FileExistsError:
            continue  # another process took this name between the check and the link
        return written
    raise OSError(f"no free report name for {stem} in {out_dir}")
