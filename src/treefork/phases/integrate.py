"""Integration: a finished domain merges into the session branch, and an approved job's
session branch into the user's branch."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import anyio.to_thread

from treefork.errors import MergeRefusedError, TreeforkError
from treefork.git.merge import (
    MergeResult,
    merge_into_branch,
    merge_into_checked_out_branch,
    squash_into_branch,
)
from treefork.git.worktrees import WorktreeManager
from treefork.runtime import JobRuntime

__all__ = (
    "artifacts_folder",
    "merge_domain_into_session",
    "merge_session_into_base",
    "refusal_status",
    "retire_domain_worktree",
    "squash_message",
)


def squash_message(domain: str, items: Sequence[str]) -> str:
    """The message of a domain's one commit under ``history: squash``: its items, listed."""
    count = f"{len(items)} item{'s' if len(items) != 1 else ''}"
    listed = "".join(f"\n- {item}" for item in items)
    return f"treefork: {domain} ({count})\n{listed}" if items else f"treefork: {domain}"


async def merge_domain_into_session(
    runtime: JobRuntime, domain: str, domain_head: str, items: Sequence[str] = ()
) -> MergeResult:
    """Merge a domain's head into the session branch (one domain at a time).

    Under ``history: squash`` the domain's changes come in as one commit whose message
    lists ``items`` (the items whose work was merged), not as a merge of its history.

    Raises:
        MergeConflictError: The domain conflicts with work already in the session branch;
            the session branch is unchanged.
    """
    async with runtime.session_lock:
        if runtime.settings.history == "squash":
            result = await squash_into_branch(
                runtime.repo.root,
                runtime.session_branch,
                domain_head,
                squash_message(domain, items),
            )
        else:
            result = await merge_into_branch(
                runtime.repo.root,
                runtime.session_branch,
                domain_head,
                f"treefork: merge domain {domain} into session",
            )
    runtime.emitter.emit("merge", domain=domain, into=runtime.session_branch, commit=result.commit)
    return result


def artifacts_folder(home: Path, job_id: str, domain: str) -> Path:
    """Where a merged domain's uncommitted outputs go: ``<home>/jobs/<job>/artifacts/<domain>``."""
    return home / "jobs" / job_id / "artifacts" / domain


def _copy_outputs(worktree: Path, paths: list[str], folder: Path) -> list[str]:
    copied = []
    for relative in paths:
        source = worktree / relative
        if not source.is_symlink() and not source.exists():
            continue  # a deleted tracked file: nothing to keep
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target, follow_symlinks=False)
        copied.append(relative)
    return copied


async def retire_domain_worktree(runtime: JobRuntime, domain: str, worktree: Path) -> str | None:
    """Remove a merged domain's worktree.

    Files its setup or reduce left uncommitted (an ``items.json``, a report) are outputs of
    the job, not work to merge: they are copied to :func:`artifacts_folder` first (an
    ``artifacts`` event names them), and the worktree goes. If they cannot be copied the
    worktree is kept.

    Returns:
        The worktree path when it was kept, else None.
    """
    if runtime.settings.keep_worktrees:
        return str(worktree)
    try:
        leftovers = await runtime.worktrees.dirty_paths(worktree)
        if leftovers:
            folder = artifacts_folder(runtime.worktrees.home, runtime.job_id, domain)
            copied = await anyio.to_thread.run_sync(_copy_outputs, worktree, leftovers, folder)
            runtime.emitter.emit("artifacts", domain=domain, folder=str(folder), paths=copied)
        await runtime.worktrees.remove_worktree(worktree, force=bool(leftovers))
    except (TreeforkError, OSError) as error:
        runtime.emitter.emit("worktree", action="kept", path=str(worktree), reason=str(error))
        return str(worktree)
    runtime.emitter.emit("worktree", action="removed", path=str(worktree))
    return None


async def merge_session_into_base(
    manager: WorktreeManager, *, base_branch: str, session_branch: str, task: str
) -> MergeResult:
    """Merge a job's session branch into the user's branch (merge review and ``treefork merge``).

    Held under the repository lock: another job may be merging into the same checkout.

    Raises:
        MergeRefusedError: Conflicts, or uncommitted changes touching merged files; nothing
            was changed.
    """
    async with manager.lock.hold():
        return await merge_into_checked_out_branch(
            manager.repo.root,
            base_branch,
            session_branch,
            f"treefork: merge job {manager.job_id}\n\nTask: {task}",
        )


def refusal_status(refused: MergeRefusedError) -> Literal["conflict", "refused"]:
    """How a refused final merge is reported."""
    return "conflict" if "conflicts" in refused.reason else "refused"
