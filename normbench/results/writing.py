"""Writing files: atomically, at the user's umask, never over an earlier run's.

Every file is written at the user's umask (0644 under umask 022), as any other program's files
are: a temporary file is created private, given those permissions, then linked or renamed into
place, so the write stays atomic (`atomic_write_text`). A run's reports share one name,
`<stem>[-k].<ext>`, the first k for which none of them exists (`write_run_files`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from glob import escape as glob_escape
from pathlib import Path


def umask() -> int:
    """The process's umask. Linux tells it in /proc/self/status without touching it; elsewhere
    it is read once by setting and restoring it (os.umask has no read-only form, and a umask
    that changes twice while other threads create files is best done only once)."""
    global _umask_read
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    if _umask_read is None:
        _umask_read = os.umask(0o077)
        os.umask(_umask_read)
    return _umask_read


_umask_read: int | None = None


def file_mode() -> int:
    """What open() would give a new file: 0o666 less the umask (0644 under umask 022)."""
    return 0o666 & ~umask()


def atomic_write_text(path: Path, text: str | bytes, overwrite: bool = False) -> Path:
    """Write through a temporary file in the same folder (bytes are written as they are).
    Without `overwrite`, the final name is claimed with a hard link, which fails instead of
    replacing an existing file. mkstemp makes the temporary file private (0600); it gets the
    umask's permissions before it takes the final name, as any file the user makes would."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    binary = isinstance(text, bytes)
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as fh:
            os.fchmod(fh.fileno(), file_mode())
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


def free_stem(out_dir: Path, stem: str) -> str:
    """The first of stem, stem-2, ... that names no file in `out_dir` yet, claimed: chosen
    before a run that writes files of its own as it goes (diagnose's figures), so they share
    the name its reports are then given by `write_run_files`. The claim is a hidden file made
    with O_EXCL (`.<name>.claim`), so two runs started in the same second never pick one name;
    `release_stem` removes it once the run's own files hold the name."""
    out_dir = Path(out_dir)
    for k in range(1, 1000):
        name = stem if k == 1 else f"{stem}-{k}"
        if any(out_dir.glob(f"{glob_escape(name)}.*")):
            continue
        try:
            os.close(os.open(out_dir / _claim(name), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            continue  # another run holds it
        return name
    raise OSError(f"no free report name for {stem} in {out_dir}")


def release_stem(out_dir: Path, name: str) -> None:
    """Give up the claim `free_stem` made (its files, if any, now hold the name)."""
    (Path(out_dir) / _claim(name)).unlink(missing_ok=True)


def _claim(name: str) -> str:
    return f".{name}.claim"


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
