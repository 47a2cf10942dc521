"""The output folder, made ready before anything is measured: created if missing, and proved to
be a folder this process can write in (a probe file is created and removed), so that a bad
`--out` is one sentence and exit 2 at the start, never a traceback after the measuring, with the
results lost (docs/design.md "Data flow", step 7)."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from normbench.errors import UsageError

# What each OSError means for a folder the user named, in words a person can act on.
_REASONS = {
    errno.EEXIST: "a file of that name exists (give a folder)",
    errno.ENOTDIR: "part of the path is a file, not a folder",
    errno.ENAMETOOLONG: "a name in the path is too long for the file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.ENOENT: "the file system there does not take new files",
}


def _reason(exc: OSError) -> str:
    return _REASONS.get(exc.errno or 0, exc.strerror or type(exc).__name__)


def _probe(folder: Path) -> None:
    """Create and remove a file in `folder`: OSError when it takes no new files."""
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".normbench-probe-", suffix=".tmp")
    os.close(fd)
    os.unlink(probe)


def prepare_out(out: str | Path, option: str = "--out") -> Path:
    """Create `out` if needed and check that reports can be written in it; refuse in one
    sentence (UsageError, exit 2) otherwise. Returns the folder."""
    from normbench.formats import is_stdout

    path = Path(out)
    if is_stdout(path):  # `--out -`: the report goes to stdout, no folder is made or needed
        return path
    where = f"{option} {str(path)[:120]}{'...' if len(str(path)) > 120 else ''}"
    try:
        if path.exists() and not path.is_dir():
            raise UsageError(f"{where}: is a file, not a folder: give a folder for the reports")
        path.mkdir(parents=True, exist_ok=True)
        # mkdir succeeds on folders that refuse files (/proc, a read-only mount seen as root):
        # only writing one proves the reports can be written.
        _probe(path)
    except OSError as exc:
        raise UsageError(f"{where}: cannot write reports there ({_reason(exc)})") from None
    return path


def prepare_reports(out: str | Path, formats: tuple[str, ...], plot: bool = False) -> None:
    """prepare_out before anything is measured (a bad --out is one sentence then, not after),
    when anything will be written: `--format none` without plots makes no folder."""
    if formats or plot:
        prepare_out(out)


def check_md(md: str | Path | None) -> None:
    """`--md FILE`, the file a gate's verdict is appended to (GitHub's step summary): refused in
    one sentence (exit 2) before anything is measured when it could not take it, so a verdict
    is never lost after the run."""
    from normbench.formats import is_stdout

    if md is None:
        return
    path = Path(md)
    where = f"--md {str(path)[:120]}"
    if is_stdout(path):
        raise UsageError(f"{where}: --md appends to a file (e.g. \"$GITHUB_STEP_SUMMARY\"); for "
                         "the Markdown on stdout use --out - --format md")  # fmt: skip
    if path.is_dir():
        raise UsageError(f"{where}: is a folder; give the file to append the verdict to")
    if not path.parent.is_dir():
        raise UsageError(f"{where}: its folder {path.parent} does not exist")
    # Proved by trying, as for --out: os.access says yes to root everywhere and to /proc.
    try:
        if path.exists():
            with open(path, "a", encoding="utf-8"):
                pass  # opened for appending, nothing written: the file is unchanged
        else:
            _probe(path.parent)
    except OSError as exc:
        raise UsageError(f"{where}: cannot write there ({_reason(exc)})") from None
