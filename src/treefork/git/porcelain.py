"""Merge commits made by ``git merge``, for git older than 2.38 (no ``merge-tree --write-tree``).

The merge runs in a private detached worktree, never in one where the target branch is
checked out: the worktree is created on first use, reset to the branch tip before each
merge (``checkout -f --detach``, cheap when it already is there), and removed by
:meth:`ScratchMerger.close`. A conflict is aborted there (``git merge --abort``), so the
result is the same as with the object store: a merge commit, or a conflict naming its
paths with nothing changed anywhere. Hooks and recorded resolutions (``rerere``) are
switched off, since ``merge-tree`` uses neither.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import anyio

from treefork.errors import GitError, MergeConflictError
from treefork.git.command import git
from treefork.git.locks import RepositoryLock
from treefork.git.refs import head_commit
from treefork.home import treefork_home

__all__ = ("ScratchMerger",)

_PLAIN_MERGE = ("-c", "core.hooksPath=/dev/null", "-c", "rerere.enabled=false")


class ScratchMerger:
    """Makes merge commits with ``git merge --no-ff`` in a private worktree.

    Args:
        cwd: A checkout of the repository.
        label: The branch merged into (named in conflicts).
        folder: Where the private worktree goes; default a new folder under the treefork
            home.
        lock: The repository lock, held while the worktree is added or removed; default
            the lock of the repository in the treefork home.
    """

    def __init__(
        self,
        cwd: Path,
        label: str,
        *,
        folder: Path | None = None,
        lock: RepositoryLock | None = None,
    ) -> None:
        self.cwd = cwd
        self.label = label
        self._folder = folder
        self._lock = lock
        self._worktree: Path | None = None

    async def merge_commit(
        self, tip: str, source: str, message: str, *, env: Mapping[str, str]
    ) -> tuple[str, str] | None:
        """The merge commit of ``source`` into ``tip`` and its tree; None if already merged.

        Raises:
            MergeConflictError: The merge conflicts (it was aborted).
            GitError: git failed otherwise (the merge was aborted).
        """
        worktree = await self._worktree_at(tip)
        await git("checkout", "-q", "-f", "--detach", tip, cwd=worktree)
        result = await git(
            *_PLAIN_MERGE, "merge", "-q", "--no-ff", "--no-edit", "-m", message, source,
            cwd=worktree, env=env, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            await self._abort(worktree, source, result.stderr)
        head = await head_commit(worktree)
        if head is None or head == tip:
            return None  # "Already up to date": the tip contains the source
        tree = await git("rev-parse", f"{head}^{{tree}}", cwd=worktree)
        return head, tree.stdout.strip()

    async def close(self) -> None:
        """Remove the private worktree, if one was made."""
        worktree, self._worktree = self._worktree, None
        if worktree is None:
            return
        assert self._lock is not None  # set when the worktree was made
        with anyio.CancelScope(shield=True):
            async with self._lock.hold():
                await git("worktree", "remove", "--force", str(worktree), cwd=self.cwd, check=False)
            await anyio.to_thread.run_sync(
                lambda: shutil.rmtree(worktree.parent, ignore_errors=True)
            )

    async def _abort(self, worktree: Path, source: str, stderr: str) -> None:
        conflicted = await git(
            "diff", "--name-only", "-z", "--diff-filter=U", cwd=worktree, check=False
        )
        paths = sorted({path for path in conflicted.stdout.split("\0") if path})
        await git("merge", "--abort", cwd=worktree, check=False)
        await git("reset", "-q", "--hard", cwd=worktree, check=False)
        if paths:
            raise MergeConflictError(self.label, source, paths, self.cwd)
        raise GitError(("merge", "--no-ff", source), worktree, 1, stderr)

    async def _worktree_at(self, start: str) -> Path:
        if self._worktree is not None:
            return self._worktree
        if self._lock is None:
            common = await git("rev-parse", "--git-common-dir", cwd=self.cwd)
            common_dir = await anyio.Path(self.cwd / common.stdout.strip()).resolve()
            home = await anyio.to_thread.run_sync(treefork_home)
            self._lock = RepositoryLock(Path(common_dir), home)
        folder = self._folder or (await anyio.to_thread.run_sync(treefork_home)) / "merges"
        path = await anyio.to_thread.run_sync(_new_folder, folder)
        async with self._lock.hold():
            await git("worktree", "add", "-q", "--detach", str(path), start, cwd=self.cwd)
        self._worktree = path
        return path


def _new_folder(parent: Path) -> Path:
    """A path for the worktree, inside a new folder of ``parent``."""
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="merge-", dir=parent)) / "worktree"
