"""Worktrees: the session, domain and agent checkouts a job works in.

All of them live under the treefork home, never inside the user's repository::

    <home>/worktrees/<repo-key>/<job>/session
    <home>/worktrees/<repo-key>/<job>/domains/<domain>
    <home>/worktrees/<repo-key>/<job>/agents/<domain>/slot-<n>

Agent worktrees come from a per-domain pool (:mod:`treefork.git.pool`) and are reused from
agent to agent. Only registering and removing worktrees and deleting branches take the
repository lock; checkouts, cleaning and agent work run in parallel.

Nothing here deletes work that is not merged: a worktree with uncommitted changes or a
branch whose tip is not reachable from a given merged branch is refused
(:class:`~treefork.errors.UnmergedWorkError`) unless forced.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio

from treefork.core import naming
from treefork.errors import (
    GitError,
    RepositoryError,
    UnmergedWorkError,
    WorktreeError,
)
from treefork.git.command import git, git_ok
from treefork.git.locks import RepositoryLock
from treefork.git.merge import changes_contained
from treefork.git.objects import ObjectDatabase, ObjectMissingError, object_database
from treefork.git.refs import head_commit
from treefork.git.repository import RepositoryInfo, commit_identity_env

__all__ = (
    "AgentChanges",
    "Worktree",
    "WorktreeManager",
    "commit_all",
    "read_agent_changes",
    "repository_key",
    "status_with_ignored",
)

logger = logging.getLogger("treefork.git")


@dataclass(frozen=True, slots=True)
class Worktree:
    """A checkout treefork made."""

    path: Path
    branch: str | None
    """The branch checked out there (None when detached)."""


@dataclass(frozen=True, slots=True)
class AgentChanges:
    """What an agent left in its worktree, compared with the commit it started from."""

    head: str | None
    """The commit checked out (None when HEAD has no commit)."""
    commits: tuple[str, ...]
    """Commits since the base, oldest first; the last one is ``head``."""
    files: tuple[str, ...]
    """Files that differ between the base and ``head``, sorted."""
    dirty: tuple[str, ...]
    """Uncommitted changes: modified, staged and untracked paths (ignored ones never)."""
    ignored: tuple[str, ...] = ()
    """Ignored paths present (a folder ignored as a whole is named, not its files)."""
    on_base: bool = False
    """The commits grow from the base alone (no other history merged in): the base is
    then the merge base with any branch that contains it and none of them."""


def repository_key(repo: RepositoryInfo) -> str:
    """Folder name for one repository under the treefork home: readable and unique."""
    digest = hashlib.sha1(str(repo.common_dir).encode()).hexdigest()[:8]
    return f"{repo.root.name}-{digest}"


class WorktreeManager:
    """Creates, resets and removes the worktrees of one job.

    Args:
        repo: The user's repository.
        job_id: The job (part of every branch and folder name).
        home: The treefork home.
    """

    def __init__(self, repo: RepositoryInfo, job_id: str, home: Path) -> None:
        # ``home`` comes resolved from :func:`treefork.home.treefork_home`, like
        # ``repo.root``: comparing them needs no filesystem access here.
        if home.is_relative_to(repo.root):
            raise RepositoryError(
                repo.root, f"the treefork home {home} lies inside the repository; set TREEFORK_HOME"
            )
        self.repo = repo
        self.job_id = job_id
        self.home = home
        self.root = home / "worktrees" / repository_key(repo) / job_id
        self.lock = RepositoryLock(repo.common_dir, home)
        self._objects: ObjectDatabase | bool | None = False

    # -- reading ---------------------------------------------------------------------------

    async def objects(self) -> ObjectDatabase | None:
        """The repository's object database (None when git must do its reading and writing)."""
        if self._objects is False:
            self._objects = await anyio.to_thread.run_sync(object_database, self.repo.common_dir)
        assert not isinstance(self._objects, bool)
        return self._objects

    async def branch_head(self, branch: str) -> str | None:
        """The commit a branch points at, or None if it does not exist."""
        result = await git(
            "rev-parse",
            "--verify",
            "-q",
            f"refs/heads/{branch}^{{commit}}",
            cwd=self.repo.root,
            check=False,
        )
        return result.stdout.strip() if result.returncode == 0 else None

    async def head(self, path: Path) -> str:
        """The commit checked out in a worktree.

        Raises:
            WorktreeError: HEAD has no commit there.
        """
        commit = await head_commit(path)
        if commit is None:
            raise WorktreeError(path, "HEAD does not point at a commit")
        return commit

    async def is_ancestor(self, commit: str, of: str) -> bool:
        """Whether ``commit`` is reachable from ``of``."""
        return await git_ok("merge-base", "--is-ancestor", commit, of, cwd=self.repo.root)

    async def dirty_paths(self, path: Path, *, untracked: bool = True) -> list[str]:
        """Paths with uncommitted changes in a worktree (ignored files never count).

        Args:
            path: The worktree.
            untracked: Count untracked files (each one named).
        """
        option = "--untracked-files=all" if untracked else "--untracked-files=no"
        result = await git("status", "--porcelain", "-z", option, cwd=path)
        entries = [entry for entry in result.stdout.split("\0") if entry]
        return [entry[3:] for entry in entries if len(entry) > 3]

    async def status_with_ignored(self, path: Path) -> tuple[list[str], list[str]]:
        """Uncommitted paths and ignored paths present (see :func:`status_with_ignored`)."""
        return await status_with_ignored(path)

    async def agent_changes(self, path: Path, base: str) -> AgentChanges:
        """What the agent in ``path`` committed since ``base``, and what it left uncommitted
        (see :func:`read_agent_changes`)."""
        return await read_agent_changes(path, base, await self.objects())

    async def commit_all(self, path: Path, message: str) -> None:
        """Commit everything uncommitted in a worktree (``git add -A``; ignored files never),
        with the repository's hooks and identity (treefork's when it has none).

        Raises:
            GitError: ``add`` or ``commit`` failed (a hook refused, for instance).
        """
        await commit_all(path, message)

    async def registered_worktrees(self) -> dict[Path, str | None]:
        """Every worktree git knows for the repository, with its branch."""
        result = await git("worktree", "list", "--porcelain", cwd=self.repo.root)
        return await anyio.to_thread.run_sync(_parse_worktree_list, result.stdout)

    # -- creating --------------------------------------------------------------------------

    async def ensure_worktree(self, path: Path, branch: str, start: str) -> Worktree:
        """A worktree at ``path`` with ``branch`` checked out, created from ``start``.

        Idempotent: an existing worktree of that branch at that path is reused, and an
        existing branch is checked out as it is (its commits are kept), so a resumed job
        picks up where it stopped.
        """
        path = Path(await anyio.Path(path).resolve())
        registered = await self.registered_worktrees()
        if path in registered:
            if registered[path] != branch:
                raise WorktreeError(path, f"exists with branch {registered[path]}, not {branch}")
            return Worktree(path, branch)
        if await anyio.Path(path).exists():
            raise WorktreeError(path, "folder exists but is not a worktree of the repository")
        await anyio.Path(path.parent).mkdir(parents=True, exist_ok=True)
        exists = await self.branch_head(branch) is not None
        arguments = (
            ["worktree", "add", str(path), branch]
            if exists
            else ["worktree", "add", "-b", branch, str(path), start]
        )
        async with self.lock.hold():
            await git(*arguments, cwd=self.repo.root)
        logger.info("Created worktree %s on branch %s", path, branch)
        return Worktree(path, branch)

    async def create_branch(self, branch: str, start: str) -> bool:
        """Create ``branch`` at ``start`` unless it exists (it is then left as it is, with
        its commits: a resumed job goes on from there). Returns whether it was created."""
        # Compare-and-swap against "no such ref": an existing branch is never moved.
        ref = f"refs/heads/{branch}"
        created = await git("update-ref", ref, start, "", cwd=self.repo.root, check=False)
        if created.returncode == 0:
            return True
        if await self.branch_head(branch) is not None:
            return False
        raise GitError(
            ("update-ref", ref, start, ""), self.repo.root, created.returncode, created.stderr
        )

    async def session_worktree(self, start: str) -> Worktree:
        """The job's session worktree (branch ``treefork/<job>/session``)."""
        return await self.ensure_worktree(
            self.root / "session", naming.session_branch(self.job_id), start
        )

    async def domain_worktree(self, domain: str, start: str) -> Worktree:
        """A domain's worktree (branch ``treefork/<job>/domains/<domain>``)."""
        return await self.ensure_worktree(
            self.root / "domains" / domain, naming.domain_branch(self.job_id, domain), start
        )

    # -- synchronising ---------------------------------------------------------------------

    async def sync_worktree(self, path: Path, checked_out: str) -> None:
        """Bring a worktree's files up to its branch after the branch moved underneath.

        Merges computed in the object store move the branch ref without touching the
        worktree; this updates index and files from ``checked_out`` (the commit they match)
        to HEAD, keeping unrelated local changes and refusing to overwrite others.
        """
        head = await self.head(path)
        if head == checked_out:
            return
        try:
            await git("read-tree", "-m", "-u", checked_out, head, cwd=path)
        except GitError as error:
            raise WorktreeError(
                path, f"cannot update files to {head[:12]}: {error.stderr.strip()}"
            ) from error

    async def move_back(self, path: Path, commit: str) -> str | None:
        """Move the branch checked out in ``path`` back to ``commit`` if it moved away.

        Uncommitted changes are kept (``git reset --keep``); git refuses, changing nothing,
        if one of them is in a file that would change.

        Returns:
            The commit the branch was at, or None when it had not moved.

        Raises:
            GitError: git refused.
        """
        head = await head_commit(path)
        if head == commit:
            return None
        await git("reset", "-q", "--keep", commit, cwd=path)
        return head

    # -- removing --------------------------------------------------------------------------

    async def remove_worktree(self, path: Path, *, force: bool = False) -> None:
        """Remove a worktree; refuses one with uncommitted changes unless ``force``."""
        path = Path(await anyio.Path(path).resolve())
        if not await anyio.Path(path).exists():
            async with self.lock.hold():
                await git("worktree", "prune", cwd=self.repo.root)
            return
        if not force:
            dirty = await self.dirty_paths(path)
            if dirty:
                shown = ", ".join(dirty[:10]) + (" ..." if len(dirty) > 10 else "")
                raise UnmergedWorkError(path, f"uncommitted changes in {shown}")
        if path.is_relative_to(self.home / "worktrees"):
            # Deleting the files is the slow part of `git worktree remove` on a large
            # repository; it needs no lock. Only the `.git` file stays for git to find.
            await anyio.to_thread.run_sync(_empty_folder_but_git_file, path)
        async with self.lock.hold():
            await git("worktree", "remove", "--force", str(path), cwd=self.repo.root)
        logger.info("Removed worktree %s", path)

    async def delete_merged_branches(
        self, branches: Mapping[str, str], *, merged_into: str
    ) -> list[str]:
        """Delete branches whose work is merged, in one transaction.

        Args:
            branches: Branch name to the commit it was merged at; a branch that has moved
                since, or whose commit is not reachable from ``merged_into``, is kept.
            merged_into: The branch their work was merged into.

        Returns:
            The branches deleted.
        """
        target = await self.branch_head(merged_into) if branches else None
        if target is None:
            return []
        prefix = os.path.commonpath([f"refs/heads/{branch}" for branch in branches])
        listing = await git(
            "for-each-ref",
            f"--merged={target}",
            "--format=%(objectname) %(refname)",
            prefix,
            cwd=self.repo.root,
        )
        merged = dict(line.split(" ", 1)[::-1] for line in listing.lines)
        doomed = [
            (branch, commit)
            for branch, commit in branches.items()
            if merged.get(f"refs/heads/{branch}") == commit
        ]
        if not doomed:
            return []
        commands = "".join(f"delete refs/heads/{branch} {commit}\n" for branch, commit in doomed)
        async with self.lock.hold():
            result = await git(
                "update-ref", "--stdin", cwd=self.repo.root, input=commands.encode(), check=False
            )
        if result.returncode != 0:
            logger.warning("Keeping merged branches: %s", result.stderr.strip())
            return []
        return [branch for branch, _ in doomed]

    async def delete_branch(
        self, branch: str, *, merged_into: str | None, force: bool = False
    ) -> None:
        """Delete a branch whose commits are all reachable from ``merged_into``.

        Raises:
            UnmergedWorkError: The branch holds commits ``merged_into`` does not have.
        """
        tip = await self.branch_head(branch)
        if tip is None:
            return
        if not force:
            target = merged_into and await self.branch_head(merged_into)
            if not target or not (
                await self.is_ancestor(tip, target)
                or await changes_contained(self.repo.root, tip, target)  # squashed
            ):
                raise UnmergedWorkError(branch, f"commits not merged into {merged_into}")
        async with self.lock.hold():
            await git("update-ref", "-d", f"refs/heads/{branch}", tip, cwd=self.repo.root)

    async def remove_job_folder_if_empty(self) -> None:
        """Remove the job's folder under the home once no worktree is left in it."""

        def _remove() -> None:
            for folder in sorted(self.root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            if self.root.exists() and not any(self.root.iterdir()):
                self.root.rmdir()

        await anyio.to_thread.run_sync(_remove)


async def commit_all(path: Path, message: str) -> None:
    """Commit everything uncommitted in a worktree (``git add -A``; ignored files never),
    with the repository's hooks and identity (treefork's when it has none).

    Raises:
        GitError: ``add`` or ``commit`` failed (a hook refused, for instance).
    """
    await git("add", "-A", cwd=path)
    await git("commit", "-q", "-m", message, cwd=path, env=await commit_identity_env(path))


async def status_with_ignored(path: Path) -> tuple[list[str], list[str]]:
    """Uncommitted paths (untracked folders named as a whole) and ignored paths present
    (folders ignored as a whole named, not their files), from one ``git status``."""
    result = await git(
        "status", "--porcelain", "-z", "--untracked-files=normal", "--ignored=matching",
        cwd=path,
    )  # fmt: skip
    dirty: list[str] = []
    ignored: list[str] = []
    for entry in result.stdout.split("\0"):
        if len(entry) > 3:
            (ignored if entry.startswith("!!") else dirty).append(entry[3:])
    return dirty, ignored


async def read_agent_changes(
    path: Path, base: str, objects: ObjectDatabase | None = None
) -> AgentChanges:
    """What the agent in ``path`` committed since ``base``, and what it left uncommitted.

    One git command (status) when the agent's commits form a line from ``base``: they
    and the files they changed are read from ``objects`` (the repository's object
    database); otherwise, or without one, ``git log`` too, run alongside.
    """
    head = await head_commit(path)
    dirty: list[str] = []
    ignored: list[str] = []
    history: list[tuple[str, list[str], list[str]]] = []
    line: tuple[list[str], list[str]] | None = None

    async def read_dirty() -> None:
        found, present = await status_with_ignored(path)
        dirty.extend(found)
        ignored.extend(present)

    async def read_history() -> None:
        nonlocal line
        if head is None or head == base:
            return
        if objects is not None:
            line = await anyio.to_thread.run_sync(_line_of_commits, objects, base, head)
        if line is None:
            history.extend(await _history(path, base, head))

    async with anyio.create_task_group() as group:
        group.start_soon(read_dirty)
        group.start_soon(read_history)
    if line is not None:
        in_line, changed = line
        return AgentChanges(
            head, tuple(in_line), tuple(changed), tuple(dirty), tuple(ignored), on_base=True
        )
    commits = tuple(commit for commit, _, _ in reversed(history))
    on_base = bool(commits) and all(
        parent == base or parent in commits for _, parents, _ in history for parent in parents
    )
    if len(history) == 1 and history[0][1] == [base]:
        files = sorted(set(history[0][2]))  # one commit on the base: its own diff
    elif commits:
        assert head is not None
        files = await _changed_files(path, base, head)
    else:
        files = []
    return AgentChanges(head, commits, tuple(files), tuple(dirty), tuple(ignored), on_base)


def _line_of_commits(
    objects: ObjectDatabase, base: str, head: str
) -> tuple[list[str], list[str]] | None:
    """The commits from ``base`` to ``head`` and the files they changed, when they form a
    plain line; None when they do not or an object is not found (git is asked then)."""
    try:
        commits = objects.line_of_commits(head, base)
        if commits is None:
            return None
        return commits, objects.changed_paths(
            objects.commit(base).tree, objects.commit(head).tree
        )
    except ObjectMissingError:
        return None


async def _history(path: Path, base: str, head: str) -> list[tuple[str, list[str], list[str]]]:
    """Commits in ``head`` but not in ``base``, newest first: (commit, parents, files)."""
    result = await git(
        "log",
        "-z",
        "--no-renames",
        "--name-only",
        "--format=%x01%H %P",
        head,
        f"^{base}",
        "--",
        cwd=path,
    )
    history = []
    for record in result.stdout.split("\x01")[1:]:
        header, _, names = record.partition("\0")
        commit, *parents = header.split()
        files = [name for name in names.lstrip("\n").split("\0") if name]
        history.append((commit, parents, files))
    return history


async def _changed_files(path: Path, old: str, new: str) -> list[str]:
    result = await git("diff", "--name-only", "-z", "--no-renames", old, new, cwd=path)
    return sorted(name for name in result.stdout.split("\0") if name)


def _parse_worktree_list(listing: str) -> dict[Path, str | None]:
    """``git worktree list --porcelain`` as resolved paths and their branches."""
    found: dict[Path, str | None] = {}
    current: Path | None = None
    for line in listing.splitlines():
        if line.startswith("worktree "):
            current = Path(line.removeprefix("worktree ")).resolve()
            found[current] = None
        elif line.startswith("branch ") and current is not None:
            found[current] = line.removeprefix("branch refs/heads/")
    return found


def _empty_folder_but_git_file(path: Path) -> None:
    for child in path.iterdir():
        if child.name == ".git":
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
