"""Worktrees: the session, domain and agent checkouts a job works in.

All of them live under the treefork home, never inside the user's repository::

    <home>/worktrees/<repo-key>/<job>/session
    <home>/worktrees/<repo-key>/<job>/domains/<domain>
    <home>/worktrees/<repo-key>/<job>/agents/<domain>/slot-<n>

Agent worktrees come from a per-domain :class:`AgentPool`: a slot is created once and then
reused for the next agent by resetting it to the new base, which costs a fraction of a
``git worktree add`` on a large repository. Ignored dependency folders (``node_modules``,
``.venv``, ``target``) stay warm across reuse; everything else is cleaned.

Nothing here deletes work that is not merged: a worktree with uncommitted changes or a
branch whose tip is not reachable from a given merged branch is refused
(:class:`~treefork.errors.UnmergedWorkError`) unless forced.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from treefork.core import naming
from treefork.errors import GitError, RepositoryError, UnmergedWorkError, WorktreeError
from treefork.git.command import git, git_ok
from treefork.git.locks import RepositoryLock
from treefork.git.repository import RepositoryInfo

__all__ = ("DEFAULT_KEEP", "AgentPool", "Worktree", "WorktreeManager", "repository_key")

logger = logging.getLogger("treefork.git")

DEFAULT_KEEP: tuple[str, ...] = ("node_modules", ".venv", "target")
"""Ignored folders kept warm when an agent worktree is reused."""


@dataclass(frozen=True, slots=True)
class Worktree:
    """A checkout treefork made."""

    path: Path
    branch: str | None
    """The branch checked out there (None when detached)."""


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
            "rev-parse", "--verify", "-q", f"refs/heads/{branch}^{{commit}}",
            cwd=self.repo.root, check=False,
        )
        return result.stdout.strip() if result.returncode == 0 else None

    async def head(self, path: Path) -> str:
        """The commit checked out in a worktree."""
        return (await git("rev-parse", "HEAD", cwd=path)).stdout.strip()

    async def is_ancestor(self, commit: str, of: str) -> bool:
        """Whether ``commit`` is reachable from ``of``."""
        return await git_ok("merge-base", "--is-ancestor", commit, of, cwd=self.repo.root)

    async def dirty_paths(self, path: Path, *, untracked: bool = True) -> list[str]:
        """Paths with uncommitted changes in a worktree (ignored files never count)."""
        mode = "--untracked-files=all" if untracked else "--untracked-files=no"
        result = await git("status", "--porcelain", "-z", mode, cwd=path)
        entries = [entry for entry in result.stdout.split("\0") if entry]
        return [entry[3:] for entry in entries if len(entry) > 3]

    async def registered_worktrees(self) -> dict[Path, str | None]:
        """Every worktree git knows for the repository, with its branch."""
        result = await git("worktree", "list", "--porcelain", cwd=self.repo.root)
        found: dict[Path, str | None] = {}
        current: Path | None = None
        for line in result.stdout.splitlines():
            if line.startswith("worktree "):
                current = Path(line.removeprefix("worktree ")).resolve()
                found[current] = None
            elif line.startswith("branch ") and current is not None:
                found[current] = line.removeprefix("branch refs/heads/")
        return found

    # -- creating --------------------------------------------------------------------------

    async def ensure_worktree(self, path: Path, branch: str, start: str) -> Worktree:
        """A worktree at ``path`` with ``branch`` checked out, created from ``start``.

        Idempotent: an existing worktree of that branch at that path is reused, and an
        existing branch is checked out as it is (its commits are kept), so a resumed job
        picks up where it stopped.
        """
        path = path.resolve()
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
        self, domain: str, *, keep: Sequence[str] = DEFAULT_KEEP, include: Sequence[str] = ()
    ) -> AgentPool:
        """A pool of reusable agent worktrees for one domain."""
        return AgentPool(self, domain, keep=keep, include=include)

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
            raise WorktreeError(path, f"cannot update files to {head[:12]}: {error.stderr.strip()}") from error

    # -- removing --------------------------------------------------------------------------

    async def remove_worktree(self, path: Path, *, force: bool = False) -> None:
        """Remove a worktree; refuses one with uncommitted changes unless ``force``."""
        path = path.resolve()
        if not path.exists():
            async with self.lock.hold():
                await git("worktree", "prune", cwd=self.repo.root)
            return
        if not force:
            dirty = await self.dirty_paths(path)
            if dirty:
                shown = ", ".join(dirty[:10]) + (" ..." if len(dirty) > 10 else "")
                raise UnmergedWorkError(path, f"uncommitted changes in {shown}")
        async with self.lock.hold():
            await git("worktree", "remove", "--force", str(path), cwd=self.repo.root)
        logger.info("Removed worktree %s", path)

    async def delete_branch(self, branch: str, *, merged_into: str | None, force: bool = False) -> None:
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
    holds work that is not merged). ``close`` removes the idle slots.
    """

    def __init__(
        self, manager: WorktreeManager, domain: str, *, keep: Sequence[str], include: Sequence[str]
    ) -> None:
        self.manager = manager
        self.domain = domain
        self.keep = tuple(keep)
        self.include = tuple(include)
        self.folder = manager.root / "agents" / domain
        self._idle: list[Path] = []
        self._slots = 0
        self.created = 0
        """Slots created with ``git worktree add`` (the rest were reused)."""

    async def acquire(self, branch: str, base: str) -> Worktree:
        """A worktree with ``branch`` created at ``base`` and checked out, all else clean.

        Raises:
            WorktreeError: ``branch`` already exists at another commit (it may hold work).
        """
        existing = await self.manager.branch_head(branch)
        if existing is not None and existing != base:
            raise WorktreeError(branch, f"branch exists at {existing[:12]}, not at base {base[:12]}")
        if self._idle:
            path = self._idle.pop()
        else:
            path = await self._new_slot(base)
        await git("checkout", "-q", "-f", "-B", branch, base, cwd=path)
        await git("clean", "-q", "-ffdx", *(f"-e{name}" for name in self.keep), cwd=path)
        await self._copy_included(path)
        return Worktree(path, branch)

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
            await git("worktree", "add", "-q", "--no-checkout", "--detach", str(path), base,
                      cwd=self.manager.repo.root)
        return path

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
            reusable: True once the agent's work is merged (or it made none). A retired
                worktree is left as it is, with its branch, for inspection and retry.
        """
        if not reusable:
            logger.info("Keeping worktree %s (branch %s) with unmerged work", worktree.path, worktree.branch)
            return
        await git("checkout", "-q", "--detach", cwd=worktree.path)
        self._idle.append(worktree.path)

    async def close(self) -> None:
        """Remove idle slots (their agents' work is merged)."""
        idle, self._idle = self._idle, []
        for path in idle:
            # Untracked leftovers of a merged agent are not work; tracked changes would be.
            if await self.manager.dirty_paths(path, untracked=False):
                logger.warning("Keeping worktree %s: it has uncommitted changes", path)
                continue
            await self.manager.remove_worktree(path, force=True)
