"""The partial file: while a suite runs, each finished case is appended to
`<command>-<time>.partial.jsonl` in the output folder, one tidy row per line (the rows of the JSON
file, `normbench.results.files.result_rows`), flushed as its case finishes. A crash that kills
the process (a plugin's segfault or `os._exit`) so keeps every case that finished; once the
final reports are written the file is removed (docs/design.md "Data flow", step 7).
`load_run` reads one back as an interrupted run (`normbench report x.partial.jsonl`), and
`pandas.read_json(path, lines=True)` reads it as a tidy frame."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from pathlib import Path

from normbench.results.files import PARTIAL_SUFFIX, clean_json, result_rows
from normbench.results.model import Result


class PartialFile:
    """An append-only JSON-lines file of one suite's finished results: a line is flushed to the
    operating system as soon as its case finishes, so it survives the process being killed. A
    write that fails (a full disk) stops the file, never the run; `failed` says why."""

    def __init__(self, path: Path, suite: str) -> None:
        self.path = path
        self.suite = suite
        self.stem = path.name.removesuffix(PARTIAL_SUFFIX)  # the reports' name too
        self.failed: str | None = None
        self.rows = 0  # written so far: an empty file is not kept
        self.group = ""  # appended to each case id while set (`partial_group`)
        self._fh = open(path, "x", encoding="utf-8")  # noqa: SIM115 (open for the whole run)

    def add(self, result: Result) -> None:
        if self._fh is None:
            return
        try:
            for row in result_rows(self.suite, result):
                if self.group:
                    row = {**row, "case_id": f"{row['case_id']}/{self.group}"}
                self._fh.write(json.dumps(clean_json(row), default=str) + "\n")
                self.rows += 1
            self._fh.flush()
        except OSError as exc:
            self.failed = exc.strerror or type(exc).__name__
            self.close()

    def close(self) -> None:
        if self._fh is not None:
            with suppress(OSError):
                self._fh.close()
            self._fh = None

    def discard(self) -> None:
        """Remove the file, once the final reports hold everything it held."""
        self.close()
        self.path.unlink(missing_ok=True)


_PARTIAL: ContextVar[PartialFile | None] = ContextVar("normbench_partial", default=None)


@contextmanager
def partial_results(out_dir: Path, suite: str, name: str = "") -> Iterator[PartialFile]:
    """While the block runs, the case loop of `suite` appends each finished result to
    out_dir/<name>-<time>.partial.jsonl (`name`: the command, when it runs another suite's
    cases, as calibrate runs speed's; a free name, never an earlier run's), whose stem the
    command's reports then take. The file is
    closed at the end and, if it holds a row, kept: the caller discards it once the reports are
    written. An empty one (a run refused before its first case, a suite without a case loop)
    is removed."""
    stem = f"{name or suite}-{time.strftime('%Y%m%d-%H%M%S')}"
    for k in range(1, 1000):
        try:
            partial = PartialFile(
                Path(out_dir) / f"{stem}{'' if k == 1 else f'-{k}'}{PARTIAL_SUFFIX}", suite
            )
            break
        except FileExistsError:
            continue
    else:
        raise OSError(f"no free name for the partial results of {stem} in {out_dir}")
    token = _PARTIAL.set(partial)
    try:
        yield partial
    finally:
        _PARTIAL.reset(token)
        partial.close()
        if not partial.rows:
            partial.discard()


@contextmanager
def partial_group(group: str) -> Iterator[None]:
    """While the block runs, the open partial file's case ids end in /<group>: a command that
    runs the same cases again (calibrate's repeats) keeps each time apart, where one id would
    read back as one case (`load_run` groups a file's rows by case id)."""
    partial = _PARTIAL.get()
    if partial is None:
        yield
        return
    before, partial.group = partial.group, group
    try:
        yield
    finally:
        partial.group = before


def open_partial() -> PartialFile | None:
    """The partial file the running command writes, if any."""
    return _PARTIAL.get()


def record_finished(suite: str, result: Result) -> None:
    """The case loop's hook: append `result` to the partial file of `suite`, if one is open
    (a library call has none; calibrate's speed runs record to calibrate's)."""
    partial = _PARTIAL.get()
    if partial is not None and partial.suite == suite:
        partial.add(result)
