"""Reading HEAD without starting git.

Step runners look at HEAD before and after every step that must (or must not) commit, and
the map phase reads each agent's HEAD when it finishes: thousands of times per job. Git keeps
HEAD and branch refs as small files (``HEAD``, loose refs, ``packed-refs``), written by
renaming a lock file over them, so reading them is atomic and costs microseconds, where
``git rev-parse`` costs a process. Anything this reader does not understand (the reftable
backend, an unreadable file, a ref pointing at something that is not an object id) makes it
ask git instead.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from treefork.git.command import git

__all__ = ("head_commit", "index_entries", "read_head")

_OBJECT_ID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_PER_WORKTREE = ("refs/bisect/", "refs/worktree/", "refs/rewritten/")
_MAX_SYMREF_DEPTH = 5


class _Unreadable(Exception):
    """The ref store is in a shape this reader leaves to git."""


_dirs_cache: dict[str, tuple[tuple[int, int], Path, Path]] = {}
"""Git directories found per worktree, with the identity (inode, mtime) of its ``.git``."""


def _git_dirs(worktree: Path) -> tuple[Path, Path]:
    """The worktree's own git directory and the repository's common one.

    Remembered per worktree while its ``.git`` stays the same file (one ``stat`` per call):
    a worktree removed and added again at the same path gets a new ``.git`` file.
    """
    dot_git = worktree / ".git"
    status = os.stat(dot_git)
    identity = (status.st_ino, status.st_mtime_ns)
    cached = _dirs_cache.get(str(worktree))
    if cached is not None and cached[0] == identity:
        return cached[1], cached[2]
    if stat.S_ISDIR(status.st_mode):
        git_dir = dot_git
    else:
        text = _read(dot_git)
        if not text.startswith("gitdir: "):
            raise _Unreadable(dot_git)
        git_dir = worktree / text.removeprefix("gitdir: ")  # relative to the worktree, or absolute
    common_file = git_dir / "commondir"
    common = git_dir / _read(common_file) if common_file.exists() else git_dir
    if (common / "reftable").exists():
        raise _Unreadable(common)
    if len(_dirs_cache) > 4096:
        _dirs_cache.clear()
    _dirs_cache[str(worktree)] = (identity, git_dir, common)
    return git_dir, common


def _read(path: Path | str) -> str:
    """A small text file, stripped (plain ``open``: this runs thousands of times a job)."""
    with open(path, "rb") as file:  # pathlib costs more than the read itself here
        return file.read().decode("utf-8").strip()


def _packed(common: Path, ref: str) -> str | None:
    try:
        text = (common / "packed-refs").read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        if line.endswith(f" {ref}") and not line.startswith(("#", "^")):
            return line.split(" ", 1)[0]
    return None


def _resolve(git_dir: Path, common: Path, ref: str, depth: int) -> str | None:
    if depth > _MAX_SYMREF_DEPTH:
        raise _Unreadable(ref)
    store = git_dir if ref == "HEAD" or ref.startswith(_PER_WORKTREE) else common
    try:
        value: str | None = _read(f"{store}/{ref}")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        value = _packed(common, ref) if store is common else None
    if value is None:
        return None  # an unborn branch, or a deleted one
    if value.startswith("ref: "):
        return _resolve(git_dir, common, value.removeprefix("ref: ").strip(), depth + 1)
    if not _OBJECT_ID.fullmatch(value):
        raise _Unreadable(ref)
    return value


def read_head(worktree: Path) -> str | None:
    """The commit HEAD points at in ``worktree``, read from git's files.

    Returns:
        The object id; None when HEAD's branch does not exist (unborn or deleted).

    Raises:
        OSError: The worktree or its git files cannot be read.
        ValueError: The ref store is in a shape only git itself should read.
    """
    try:
        git_dir, common = _git_dirs(worktree)
        return _resolve(git_dir, common, "HEAD", 0)
    except _Unreadable as error:
        raise ValueError(f"cannot read refs directly: {error}") from error


async def head_commit(worktree: Path) -> str | None:
    """The commit HEAD points at in ``worktree``; None when there is none.

    Reads git's files (see :func:`read_head`); asks ``git rev-parse`` when they are in a
    shape it does not read, or cannot be read. The files are read right here, on the event
    loop: a few small reads from the page cache cost less than handing them to a thread
    (``langgraph dev`` allows file reads on the loop too).
    """
    try:
        return read_head(worktree)
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    result = await git("rev-parse", "--verify", "-q", "HEAD^{commit}", cwd=worktree, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def index_entries(worktree: Path) -> int | None:
    """How many entries the worktree's index holds, from its header; None when unknown
    (no index yet, or one this reader does not recognise)."""
    try:
        git_dir, _ = _git_dirs(worktree)
        with open(git_dir / "index", "rb") as index:
            header = index.read(12)
    except (OSError, UnicodeDecodeError, _Unreadable):
        return None
    if len(header) < 12 or header[:4] != b"DIRC":
        return None
    return int.from_bytes(header[8:12], "big")
