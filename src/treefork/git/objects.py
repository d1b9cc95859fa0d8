"""Git objects read and written in this process, for the bookkeeping around every agent.

For each agent treefork reads what it committed (its commits and the files they changed)
and writes a merge commit. With thousands of agents, a git process for each of those costs
more than the merges themselves, so they go through gitdb, the object database GitPython is
built on: it reads loose objects and packs and writes loose objects, the very files git
reads and writes. Whatever it cannot answer (an object it does not find, a SHA-256
repository, a history that is not a plain line of commits) is left to git by the callers.

Every method blocks (file reads, zlib): call them from a worker thread.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from git.config import GitConfigParser
from git.objects.fun import tree_entries_from_data
from gitdb import GitDB, IStream
from gitdb.exc import BadName, BadObject

from treefork.git.command import git

__all__ = (
    "CommitIdentity",
    "ObjectDatabase",
    "commit_identity",
    "object_database",
)

_TREE_MODE = 0o040000
_GITLINK_MODE = 0o160000
_TREE_CACHE = 4096
"""Parsed trees kept (they never change; the ones of the agents' base are read again and
again)."""


class ObjectMissingError(LookupError):
    """The object database does not hold an object (git may: it is asked instead)."""


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """The parts of a commit the bookkeeping needs."""

    tree: str
    parents: tuple[str, ...]


class ObjectDatabase:
    """Reads commits and trees, and writes commits, of one repository.

    Args:
        objects: The repository's object folder (``<common dir>/objects``).
    """

    def __init__(self, objects: Path) -> None:
        self.path = objects
        self._db = GitDB(str(objects))
        self._lock = threading.Lock()
        self._trees: dict[str, dict[str, tuple[int, str]]] = {}

    # -- reading -------------------------------------------------------------------------

    def _read(self, sha: str, kind: bytes) -> bytes:
        binsha = bytes.fromhex(sha)
        with self._lock:
            try:
                stream = self._db.stream(binsha)
            except (BadObject, BadName):
                # Packed or repacked since the database was opened: look again, once.
                self._db.update_cache(force=True)
                try:
                    stream = self._db.stream(binsha)
                except (BadObject, BadName) as error:
                    raise ObjectMissingError(sha) from error
            data: bytes = stream.read()
        if stream.type != kind:
            raise ObjectMissingError(f"{sha} is a {stream.type.decode()}, not a {kind.decode()}")
        return data

    def commit(self, sha: str) -> CommitInfo:
        """The tree and parents of a commit."""
        data = self._read(sha, b"commit")
        lines = data.split(b"\n", 64)
        if not lines[0].startswith(b"tree "):
            raise ObjectMissingError(f"{sha}: not a commit git wrote")
        parents = []
        for line in lines[1:]:
            if not line.startswith(b"parent "):
                break  # the author line and the rest follow the parents
            parents.append(line[7:].decode())
        return CommitInfo(lines[0][5:].decode(), tuple(parents))

    def tree(self, sha: str) -> Mapping[str, tuple[int, str]]:
        """A tree's entries: name to (mode, object)."""
        cached = self._trees.get(sha)
        if cached is not None:
            return cached
        entries = {
            name: (mode, binsha.hex())
            for binsha, mode, name in tree_entries_from_data(self._read(sha, b"tree"))
        }
        if len(self._trees) >= _TREE_CACHE:
            self._trees.clear()
        self._trees[sha] = entries
        return entries

    def line_of_commits(self, head: str, base: str, *, limit: int = 64) -> list[str] | None:
        """The commits from ``base`` (excluded) to ``head``, oldest first, when they form a
        plain line (each with one parent) that reaches ``base`` within ``limit`` commits;
        None otherwise (git then answers)."""
        commits: list[str] = []
        current = head
        while current != base:
            if len(commits) == limit:
                return None
            parents = self.commit(current).parents
            if len(parents) != 1:
                return None
            commits.append(current)
            current = parents[0]
        commits.reverse()
        return commits

    def changed_paths(self, old_tree: str, new_tree: str) -> list[str]:
        """Files (and submodules) that differ between two trees, sorted, like
        ``git diff --name-only --no-renames``."""
        changed: list[str] = []
        self._compare(old_tree, new_tree, "", changed)
        return sorted(changed)

    def _compare(self, old: str | None, new: str | None, prefix: str, out: list[str]) -> None:
        before = self.tree(old) if old else {}
        after = self.tree(new) if new else {}
        for name in before.keys() | after.keys():
            old_entry, new_entry = before.get(name), after.get(name)
            if old_entry == new_entry:
                continue
            path = prefix + name
            old_is_tree = old_entry is not None and old_entry[0] == _TREE_MODE
            new_is_tree = new_entry is not None and new_entry[0] == _TREE_MODE
            if old_is_tree or new_is_tree:
                self._compare(
                    old_entry[1] if old_is_tree and old_entry else None,
                    new_entry[1] if new_is_tree and new_entry else None,
                    path + "/",
                    out,
                )
            if (old_entry is not None and not old_is_tree) or (
                new_entry is not None and not new_is_tree
            ):
                out.append(path)

    def folders(self, commit: str) -> frozenset[str]:
        """Every folder a checkout of ``commit`` has ("" for the top, ``a/b`` below it),
        submodules included (git makes their folder even when they are not checked out)."""
        found: set[str] = {""}
        pending = [("", self.commit(commit).tree)]
        while pending:
            prefix, tree = pending.pop()
            for name, (mode, sha) in self.tree(tree).items():
                if mode == _TREE_MODE:
                    found.add(prefix + name)
                    pending.append((prefix + name + "/", sha))
                elif mode == _GITLINK_MODE:
                    found.add(prefix + name)
        return frozenset(found)

    # -- writing -------------------------------------------------------------------------

    def write_commit(
        self,
        tree: str,
        parents: Sequence[str],
        message: str,
        identity: CommitIdentity,
    ) -> str:
        """Write a commit object (as ``git commit-tree -m`` does); returns its name."""
        author, committer = identity.lines()
        lines = [f"tree {tree}", *(f"parent {parent}" for parent in parents)]
        lines += [f"author {author}", f"committer {committer}", "", message]
        data = ("\n".join(lines) + "\n").encode()
        with self._lock:
            stored = self._db.store(IStream(b"commit", len(data), io.BytesIO(data)))
        return bytes(stored.binsha).hex()


@dataclass(frozen=True, slots=True)
class CommitIdentity:
    """Who treefork's own commits are by, as ``git var`` says git would write them."""

    author: str
    """``Name <email>``."""
    committer: str
    author_date: str | None = None
    """``<seconds> <offset>`` when fixed (``GIT_AUTHOR_DATE`` set); None means now."""
    committer_date: str | None = None

    def lines(self) -> tuple[str, str]:
        """The author and committer lines of a commit made now."""
        now = _now()
        return (
            f"{self.author} {self.author_date or now}",
            f"{self.committer} {self.committer_date or now}",
        )


def _now() -> str:
    seconds = int(time.time())
    offset = time.localtime(seconds).tm_gmtoff // 60
    sign = "-" if offset < 0 else "+"
    return f"{seconds} {sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"


def _split_ident(ident: str) -> tuple[str, str]:
    """``Name <email> 1700000000 +0100`` as (``Name <email>``, ``1700000000 +0100``)."""
    person, _, date = ident.strip().rpartition("> ")
    return person + ">", date


async def commit_identity(cwd: Path, env: Mapping[str, str]) -> CommitIdentity:
    """The identity git would give a commit made in ``cwd`` with ``env`` added.

    Raises:
        GitError: git has no identity to give (``env`` should hold a fallback).
    """
    author = await git("var", "GIT_AUTHOR_IDENT", cwd=cwd, env=env)
    committer = await git("var", "GIT_COMMITTER_IDENT", cwd=cwd, env=env)
    author_person, author_date = _split_ident(author.stdout)
    committer_person, committer_date = _split_ident(committer.stdout)
    fixed = {**os.environ, **env}
    return CommitIdentity(
        author_person,
        committer_person,
        author_date if fixed.get("GIT_AUTHOR_DATE") else None,
        committer_date if fixed.get("GIT_COMMITTER_DATE") else None,
    )


_databases: dict[Path, ObjectDatabase | None] = {}
_databases_lock = threading.Lock()


def object_database(common_dir: Path) -> ObjectDatabase | None:
    """The shared object database of a repository (by its common git folder); None when
    gitdb cannot serve it (SHA-256 objects, or it cannot be opened)."""
    with _databases_lock:
        if common_dir not in _databases:
            _databases[common_dir] = _open(common_dir)
        return _databases[common_dir]


def _open(common_dir: Path) -> ObjectDatabase | None:
    try:
        config = GitConfigParser(str(common_dir / "config"), read_only=True)
        object_format = str(config.get_value("extensions", "objectformat", "sha1"))
        if object_format.lower() != "sha1":
            return None
        return ObjectDatabase(common_dir / "objects")
    except Exception:  # any trouble here only means: ask git instead
        return None
