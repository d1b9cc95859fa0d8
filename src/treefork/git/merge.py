"""Merges computed in the object store.

``git merge-tree --write-tree`` computes the merged tree without touching any working tree
or index; ``commit-tree`` makes the merge commit and ``update-ref`` moves the branch with a
compare-and-swap on its old value. A conflict is detected before anything changes, so no
half-merged state can ever be left behind, and merges into different branches need no lock.

:func:`merge_into_checked_out_branch` brings a finished job into the user's branch: it
computes the merge the same way, checks that the user's uncommitted changes do not overlap
it, then fast-forwards the checkout to the merge commit (git refuses, changing nothing, if
anything would be overwritten).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from treefork.errors import GitError, MergeConflictError, MergeRefusedError
from treefork.git.command import git, git_ok
from treefork.git.repository import commit_identity_env

__all__ = (
    "MergeResult",
    "changed_files",
    "merge_into_branch",
    "merge_into_checked_out_branch",
    "merged_tree",
)


@dataclass(frozen=True, slots=True)
class MergeResult:
    """The outcome of a merge."""

    commit: str
    """The new tip of the target branch (unchanged if there was nothing to merge)."""
    merged: bool
    """False when the source was already contained in the target."""


async def changed_files(cwd: Path, old: str, new: str) -> list[str]:
    """Files that differ between two commits (renames shown as the new path)."""
    if old == new:
        return []
    result = await git("diff", "--name-only", "-z", "--no-renames", old, new, cwd=cwd)
    return sorted(path for path in result.stdout.split("\0") if path)


async def merged_tree(cwd: Path, target: str, source: str, *, label: str) -> str:
    """The tree of merging ``source`` into ``target``, computed in the object store.

    Raises:
        MergeConflictError: The merge conflicts; the conflicting paths are named.
    """
    result = await git(
        "merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", target, source,
        cwd=cwd, ok_codes=(0, 1),
    )
    fields = result.stdout.split("\0")
    tree = fields[0].strip()
    if result.returncode == 1:
        paths = sorted({field for field in fields[1:] if field})
        raise MergeConflictError(label, source, paths, cwd)
    return tree


async def _commit_merge(cwd: Path, tree: str, parents: tuple[str, str], message: str) -> str:
    identity = await commit_identity_env(cwd)
    result = await git(
        "commit-tree", tree, "-p", parents[0], "-p", parents[1], "-m", message,
        cwd=cwd, env=identity,
    )
    return result.stdout.strip()


async def merge_into_branch(cwd: Path, branch: str, source: str, message: str) -> MergeResult:
    """Merge commit ``source`` into ``branch`` without touching any worktree.

    Always makes a merge commit (like ``--no-ff``) unless ``source`` is already contained.

    Raises:
        MergeConflictError: Conflicts; ``branch`` is left exactly as it was.
        GitError: The branch moved while merging (callers serialize merges per branch).
    """
    ref = f"refs/heads/{branch}"
    tip = (await git("rev-parse", "--verify", f"{ref}^{{commit}}", cwd=cwd)).stdout.strip()
    if await git_ok("merge-base", "--is-ancestor", source, tip, cwd=cwd):
        return MergeResult(tip, merged=False)
    tree = await merged_tree(cwd, tip, source, label=branch)
    commit = await _commit_merge(cwd, tree, (tip, source), message)
    await git("update-ref", "-m", f"treefork: {message.splitlines()[0]}", ref, commit, tip, cwd=cwd)
    return MergeResult(commit, merged=True)


async def _checked_out_at(cwd: Path, branch: str) -> Path | None:
    listing = await git("worktree", "list", "--porcelain", cwd=cwd)
    current: Path | None = None
    for line in listing.stdout.splitlines():
        if line.startswith("worktree "):
            current = Path(line.removeprefix("worktree "))
        elif line == f"branch refs/heads/{branch}":
            return current
    return None


async def _overlapping_local_changes(checkout: Path, touched: set[str]) -> list[str]:
    status = await git("status", "--porcelain", "-z", "--untracked-files=all", cwd=checkout)
    entries = [entry for entry in status.stdout.split("\0") if entry]
    local = {entry[3:] for entry in entries if len(entry) > 3}
    return sorted(local & touched)


async def merge_into_checked_out_branch(
    cwd: Path, branch: str, source: str, message: str
) -> MergeResult:
    """Merge ``source`` into the user's ``branch``, updating its checkout if it has one.

    Raises:
        MergeRefusedError: The merge conflicts, or uncommitted changes in the checkout
            touch files the merge changes. Nothing is changed in either case.
    """
    ref = f"refs/heads/{branch}"
    tip = (await git("rev-parse", "--verify", f"{ref}^{{commit}}", cwd=cwd)).stdout.strip()
    if await git_ok("merge-base", "--is-ancestor", source, tip, cwd=cwd):
        return MergeResult(tip, merged=False)
    try:
        tree = await merged_tree(cwd, tip, source, label=branch)
    except MergeConflictError as conflict:
        raise MergeRefusedError(branch, "the merge conflicts in", conflict.paths) from conflict
    commit = await _commit_merge(cwd, tree, (tip, source), message)
    checkout = await _checked_out_at(cwd, branch)
    if checkout is None:
        await git("update-ref", "-m", f"treefork: {message}", ref, commit, tip, cwd=cwd)
        return MergeResult(commit, merged=True)
    touched = set(await changed_files(cwd, tip, commit))
    overlap = await _overlapping_local_changes(checkout, touched)
    if overlap:
        raise MergeRefusedError(
            branch, f"uncommitted changes in {checkout} touch files the merge changes", overlap
        )
    try:
        # commit is a descendant of tip: a fast-forward checkout, refused by git (with
        # nothing changed) if any local change would be overwritten.
        await git("merge", "--ff-only", "-q", commit, cwd=checkout)
    except GitError as error:
        raise MergeRefusedError(branch, f"git refused to update {checkout}: {error.stderr.strip()}") from error
    return MergeResult(commit, merged=True)
