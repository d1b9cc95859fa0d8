"""Integration: a finished domain's branch merges into the session branch."""

from __future__ import annotations

from pathlib import Path

from treefork.errors import TreeforkError
from treefork.git.merge import MergeResult, merge_into_branch
from treefork.runtime import JobRuntime

__all__ = ("merge_domain_into_session", "retire_domain_worktree")


async def merge_domain_into_session(
    runtime: JobRuntime, domain: str, domain_head: str
) -> MergeResult:
    """Merge a domain's head into the session branch (one domain at a time).

    Raises:
        MergeConflictError: The domain conflicts with work already in the session branch;
            the session branch is unchanged.
    """
    async with runtime.session_lock:
        result = await merge_into_branch(
            runtime.repo.root,
            runtime.session_branch,
            domain_head,
            f"treefork: merge domain {domain} into session",
        )
    runtime.emitter.emit("merge", domain=domain, into=runtime.session_branch, commit=result.commit)
    return result


async def retire_domain_worktree(runtime: JobRuntime, worktree: Path) -> str | None:
    """Remove a merged domain's worktree unless it holds uncommitted files.

    Returns:
        The worktree path when it was kept, else None.
    """
    if runtime.settings.keep_worktrees:
        return str(worktree)
    try:
        await runtime.worktrees.remove_worktree(worktree)
    except TreeforkError as error:
        runtime.emitter.emit("worktree", action="kept", path=str(worktree), reason=str(error))
        return str(worktree)
    runtime.emitter.emit("worktree", action="removed", path=str(worktree))
    return None
