"""Worktrees: the session, domain and agent checkouts a job works in.

All of them live under the treefork home, never inside the user's repository::

    <home>/worktrees/<repo-key>/<job>/session
    <home>/worktrees/<repo-key>/<job>/domains/<domain>
    <home>/worktrees/<repo-key>/<job>/agents/<domain>/slot-<n>

Agent worktrees come from a per-domain :class:`AgentPool`: a slot is created once and then
reused for the next agent by switching it to the new branch at the base commit, which costs
a fraction of a ``git worktree add`` on a large repository. Ignored dependency folders
(``node_modules``, ``.venv``, ``target``) stay warm across reuse; everything else is
cleaned. Only registering and removing worktrees and deleting branches take the repository
lock; checkouts, cleaning and agent work run in parallel.

Nothing here deletes work that is not merged: a worktree with uncommitted changes or a
branch whose tip is not reachable from a given merged branch is refused
(:class:`~treefork.errors.UnmergedWorkError`) unless forced.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from treefork.core import naming
from treefork.errors import (
    GitError,
    RepositoryError,
    TreeforkError,
    UnmergedWorkError,
    WorktreeError,
)
from treefork.git.command import git, git_ok
from treefork.git.locks import RepositoryLock
from treefork.git.refs import head_commit
from treefork.git.repository import RepositoryInfo

__all__ = (
    "DEFAULT_KEEP",
    "AgentChanges",
    "AgentPool",
    "OnCreate",
    "Worktree",
    "WorktreeManager",
    "repository_key",
)

logger = logging.getLogger("treefork.git")

DEFAULT_KEEP: tuple[str, ...] = ("node_modules", ".venv", "target")
"""Ignored folders kept warm when an agent worktree is reused."""


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


OnCreate = Callable[[Path], Awaitable[None]]
"""Runs once in each new agent worktree (after its checkout); raising fails that agent."""


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
        if home.resolve().is_relative_to(repo.root):
            raise RepositoryError(
                repo.root, f"the treefork home {home} lies inside the repository; set TREEFORK_HOME"
            )
        self.repo = repo
        self.job_id = job_id
        self.home = home
        self.root = home / "worktrees" / repository_key(repo) / job_id
        self.lock = RepositoryLock(repo.common_dir, home)

    # -- reading ---------------------------------------------------------------------------

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

    async def dirty_paths(
        self, path: Path, *, untracked: bool = True, folders: bool = False
    ) -> list[str]:
        """Paths with uncommitted changes in a worktree (ignored files never count).

        Args:
            path: The worktree.
            untracked: Count untracked files.
            folders: Name an untracked folder instead of every file in it (faster, and
                lets git use its untracked cache).
        """
        if not untracked:
            options = ["--untracked-files=no"]
        elif folders:
            # Agent worktrees are treefork's own: their index may keep an untracked cache.
            options = ["--untracked-files=normal"]
        else:
            options = ["--untracked-files=all"]
        cache = ["-c", "core.untrackedCache=true"] if folders else []
        result = await git(*cache, "status", "--porcelain", "-z", *options, cwd=path)
        entries = [entry for entry in result.stdout.split("\0") if entry]
        return [entry[3:] for entry in entries if len(entry) > 3]

    async def agent_changes(self, path: Path, base: str) -> AgentChanges:
        """What the agent in ``path`` committed since ``base``, and what it left uncommitted.

        Two git commands in the common case of one commit (status and log, run at once).
        """
        head = await head_commit(path)
        dirty: list[str] = []
        history: list[tuple[str, list[str], list[str]]] = []

        async def read_dirty() -> None:
            dirty.extend(await self.dirty_paths(path, folders=True))

        async def read_history() -> None:
            if head is not None and head != base:
                history.extend(await _history(path, base, head))

        async with anyio.create_task_group() as group:
            group.start_soon(read_dirty)
            group.start_soon(read_history)
        commits = tuple(commit for commit, _, _ in reversed(history))
        if len(history) == 1 and history[0][1] == [base]:
            files = sorted(set(history[0][2]))  # one commit on the base: its own diff
        elif commits:
            assert head is not None
            files = await _changed_files(path, base, head)
        else:
            files = []
        return AgentChanges(head, commits, tuple(files), tuple(dirty))

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
        if path.exists():
            raise WorktreeError(path, "folder exists but is not a worktree of the repository")
        path.parent.mkdir(parents=True, exist_ok=True)
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

    def agent_pool(
        self,
        domain: str,
        *,
        keep: Sequence[str] = DEFAULT_KEEP,
        include: Sequence[str] = (),
        on_create: OnCreate | None = None,
        merged_into: str | None = None,
    ) -> AgentPool:
        """A pool of reusable agent worktrees for one domain (see :class:`AgentPool`)."""
        return AgentPool(
            self, domain, keep=keep, include=include, on_create=on_create, merged_into=merged_into
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
        if not path.exists():
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
            if not target or not await self.is_ancestor(tip, target):
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


class AgentPool:
    """Reusable agent worktrees for one domain.

    ``acquire`` hands out a worktree with a fresh agent branch at the base commit;
    ``release`` returns it for reuse (after a successful merge) or retires it (when it
    holds work that is not merged). ``close`` removes the idle slots and deletes the
    branches reported merged with :meth:`merged`.

    Args:
        manager: The job's worktree manager.
        domain: The domain the agents work for.
        keep: Ignored folders (any depth) kept warm when a worktree is reused.
        include: Glob patterns of ignored files (``.env``) copied from the user's checkout
            into each agent worktree.
        on_create: Runs once in each new worktree, after its checkout; when it raises, the
            new worktree is removed and the error reaches the agent.
        merged_into: The branch agents merge into; :meth:`close` deletes merged branches
            only if their work is reachable from it.
    """

    def __init__(
        self,
        manager: WorktreeManager,
        domain: str,
        *,
        keep: Sequence[str] = DEFAULT_KEEP,
        include: Sequence[str] = (),
        on_create: OnCreate | None = None,
        merged_into: str | None = None,
    ) -> None:
        self.manager = manager
        self.domain = domain
        self.keep = tuple(keep)
        self.include = tuple(include)
        self.on_create = on_create
        self.merged_into = merged_into
        self.folder = manager.root / "agents" / domain
        self._idle: list[Path] = []
        self._slots = 0
        self._merged: dict[str, str] = {}
        self.created = 0
        """Slots created with ``git worktree add`` (the rest were reused)."""

    async def acquire(self, branch: str, base: str) -> Worktree:
        """A worktree with ``branch`` created at ``base`` and checked out, all else clean.

        Raises:
            WorktreeError: ``branch`` already exists at another commit (it may hold work),
                or ``on_create`` failed in a new worktree.
        """
        if self._idle:
            path = self._idle.pop()
            try:
                await self._switch(path, branch, base)
                await git("clean", "-q", "-ffdx", *(f"-e{name}" for name in self.keep), cwd=path)
                await self._copy_included(path)
            except BaseException:
                self._idle.append(path)  # it was clean, and the switch changed nothing else
                raise
            return Worktree(path, branch)
        path = await self._new_slot(base)
        try:
            await self._switch(path, branch, base)
            await self._copy_included(path)
            if self.on_create is not None:
                await self.on_create(path)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._discard(path, branch, base)
            raise
        return Worktree(path, branch)

    async def _switch(self, path: Path, branch: str, base: str) -> None:
        """Check out a new ``branch`` at ``base`` in ``path``, overwriting tracked files."""
        created = await git("checkout", "-q", "-f", "-b", branch, base, cwd=path, check=False)
        if created.returncode == 0:
            return
        existing = await self.manager.branch_head(branch)
        if existing is None:
            raise GitError(
                ("checkout", "-f", "-b", branch, base), path, created.returncode, created.stderr
            )
        if existing != base:
            raise WorktreeError(
                branch, f"branch exists at {existing[:12]}, not at base {base[:12]}"
            )
        await git("checkout", "-q", "-f", "-B", branch, base, cwd=path)

    async def _new_slot(self, base: str) -> Path:
        self._slots += 1
        self.created += 1
        path = (self.folder / f"slot-{self._slots}").resolve()
        while path.exists():
            self._slots += 1
            path = (self.folder / f"slot-{self._slots}").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        # Only the registration takes the repository lock; the checkout that follows (the
        # expensive part on a large repository) runs in parallel with other agents.
        async with self.manager.lock.hold():
            await git(
                "worktree",
                "add",
                "-q",
                "--no-checkout",
                "--detach",
                str(path),
                base,
                cwd=self.manager.repo.root,
            )
        return path

    async def _discard(self, path: Path, branch: str, base: str) -> None:
        """Remove a new worktree whose preparation failed, and its branch if still empty."""
        try:
            await self.manager.remove_worktree(path, force=True)
        except TreeforkError as error:
            logger.warning("Could not remove worktree %s: %s", path, error)
        await git(
            "update-ref",
            "-d",
            f"refs/heads/{branch}",
            base,
            cwd=self.manager.repo.root,
            check=False,
        )

    async def _copy_included(self, path: Path) -> None:
        """Copy ignored files named by ``include`` globs (``.env``) from the user's checkout."""
        if not self.include:
            return
        source = self.manager.repo.root

        def _copy() -> None:
            for pattern in self.include:
                for found in source.glob(pattern):
                    if not found.is_file():
                        continue
                    target = path / found.relative_to(source)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(found, target)

        await anyio.to_thread.run_sync(_copy)

    async def release(self, worktree: Worktree, *, reusable: bool) -> None:
        """Return a worktree to the pool, or retire it.

        Args:
            worktree: What :meth:`acquire` returned.
            reusable: True once the agent's work is merged (or it made none) and nothing
                is left uncommitted. A retired worktree is left as it is, with its branch,
                for inspection and retry.
        """
        if not reusable:
            logger.info(
                "Keeping worktree %s (branch %s) with unmerged work", worktree.path, worktree.branch
            )
            return
        # The branch stays checked out until the next agent switches the worktree to its
        # own: nothing is written here.
        self._idle.append(worktree.path)

    def merged(self, branch: str, commit: str) -> None:
        """Report that ``branch``'s work, up to ``commit``, is merged: :meth:`close` deletes it."""
        self._merged[branch] = commit

    async def close(self) -> None:
        """Remove idle slots (their agents' work is merged), then delete merged branches."""
        idle, self._idle = self._idle, []

        async def remove(path: Path) -> None:
            # Untracked leftovers of a merged agent are not work; tracked changes would be.
            if await self.manager.dirty_paths(path, untracked=False):
                logger.warning("Keeping worktree %s: it has uncommitted changes", path)
                return
            await self.manager.remove_worktree(path, force=True)

        async with anyio.create_task_group() as group:
            for path in idle:
                group.start_soon(remove, path)
        merged, self._merged = self._merged, {}
        if merged and self.merged_into is not None:
            await self.manager.delete_merged_branches(merged, merged_into=self.merged_into)


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
