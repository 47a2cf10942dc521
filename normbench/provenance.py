"""Where a run came from, for its file's header: the command line (`argv`) and the git commit of
the checkout being measured (docs/formats.md "The JSON file").

Two checkouts can matter: the current working directory's (a user measuring their own kernels
runs normbench from their repository) and normbench's own source checkout (an editable install
measured at one commit). Each is {"root", "commit", "dirty"}; a place that is no git checkout,
or a machine without git, is None. Nothing here can fail a run: git is asked with a short
timeout and every error means "unknown". The answer is computed once per process and folder.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# git answers `rev-parse` in milliseconds; `status` on a huge or cold checkout can take longer,
# and a run must never wait on it: past the timeout the dirty flag is unknown (None).
TIMEOUT_S = 2.0


def command_line() -> list[str]:
    """The command as typed: the program's name (not the path it was found at), then its
    arguments; `python -m normbench` is named so."""
    if not sys.argv or not sys.argv[0]:
        return ["python", *sys.argv[1:]]
    program = Path(sys.argv[0])
    if program.name == "__main__.py":
        return ["python", "-m", program.parent.name, *sys.argv[1:]]
    return [program.name, *sys.argv[1:]]


def git_info() -> dict[str, Any]:
    """{"cwd": checkout or None, "normbench": checkout or None} (see the module docstring)."""
    try:
        cwd = os.getcwd()
    except OSError:  # the folder was removed under the process
        return {"cwd": None, "normbench": None}
    return {name: dict(c) if c else None for name, c in _git_info(cwd)}


@functools.lru_cache(maxsize=8)
def _git_info(cwd: str) -> tuple[tuple[str, dict[str, Any] | None], ...]:
    here = checkout(Path(cwd))
    source = checkout(Path(__file__).resolve().parent)
    return (("cwd", here), ("normbench", source))


def checkout(folder: Path) -> dict[str, Any] | None:
    """The git checkout that holds `folder`: its root, HEAD commit and whether files differ
    from it (None: could not tell in time); None when `folder` is in no checkout."""
    root = _git(folder, "rev-parse", "--show-toplevel")
    if root is None:
        return _from_files(folder)
    commit = _git(folder, "rev-parse", "HEAD")
    if commit is None:  # a repository without a commit yet
        return None
    status = _git(folder, "status", "--porcelain", "--untracked-files=no")
    return {"root": root, "commit": commit, "dirty": None if status is None else bool(status)}


def _git(folder: Path, *args: str) -> str | None:
    """git's stdout, stripped; None when git is missing, fails, or takes too long."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True,
            timeout=TIMEOUT_S, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _from_files(folder: Path) -> dict[str, Any] | None:
    """Without a working git: the commit read from .git/HEAD (a branch's loose or packed ref),
    no dirty flag. A worktree's `.git` file or anything unusual is "no checkout known"."""
    for root in (folder, *folder.parents):
        head = root / ".git" / "HEAD"
        if not head.is_file():
            continue
        try:
            text = head.read_text().strip()
            if not text.startswith("ref: "):
                return {"root": str(root), "commit": text, "dirty": None}
            ref = text[5:]
            loose = root / ".git" / ref
            if loose.is_file():
                return {"root": str(root), "commit": loose.read_text().strip(), "dirty": None}
            packed = root / ".git" / "packed-refs"
            for line in packed.read_text().splitlines() if packed.is_file() else []:
                sha, _, name = line.partition(" ")
                if name == ref:
                    return {"root": str(root), "commit": sha, "dirty": None}
        except (OSError, UnicodeDecodeError):
            return None
        return None
    return None
