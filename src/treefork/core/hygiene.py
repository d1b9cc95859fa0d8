"""Worktree hygiene: which worktrees, folders and branches ``treefork worktree gc`` removes.

The shell gathers facts (jobs from the store and their locks, worktrees git knows, folders
under the treefork home, treefork branches and whether one of the user's branches contains
them); :func:`plan_gc` decides, with a reason for everything it keeps or removes.

Rules:

- A running job (its lock is held) is never touched; neither is a job younger than
  ``older_than``, nor a finished job still awaiting its merge (merge it or discard it).
- Jobs whose work is merged, jobs the user discarded, interrupted jobs (crashed: ``running``
  in the store, nobody holds the lock) and folders or branches no job knows are collected.
- A worktree with uncommitted changes (untracked files included, ignored ones never) is kept
  unless forced; a clean one is removed (an interrupted job recreates what it needs on
  resume). A stale ``git worktree`` entry (its folder is gone) is pruned. A folder under the
  home that git does not know as a worktree is removed when it holds no files, else kept
  unless forced.
- A branch whose tip one of the user's branches contains is deleted; one holding commits no
  user branch has is kept unless forced. A branch checked out in a worktree that stays is
  always kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = (
    "BranchFacts",
    "FolderFacts",
    "GcAction",
    "JobFacts",
    "JobState",
    "WorktreeFacts",
    "job_state",
    "parse_duration",
    "plan_gc",
)

JobState = Literal["running", "open", "closed", "interrupted", "unknown"]
"""running: its lock is held; open: finished, awaiting merge; closed: merged or discarded;
interrupted: crashed while running; unknown: no job in the store has this id."""

ActionKind = Literal["remove_worktree", "prune", "remove_folder", "delete_branch", "keep"]


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What the store and the job lock say about a job."""

    status: str | None
    """The job's status (None when the store does not know the job)."""
    merge_status: str | None = None
    discarded: bool = False
    locked: bool = False
    """Another process holds the job's lock."""
    age: float | None = None
    """Seconds since the job last changed."""


@dataclass(frozen=True, slots=True)
class WorktreeFacts:
    """A worktree git knows, under the treefork home."""

    path: str
    job_id: str
    branch: str | None
    exists: bool
    """False for a stale entry (the folder is gone)."""
    dirty: tuple[str, ...] = ()
    """Uncommitted paths."""


@dataclass(frozen=True, slots=True)
class FolderFacts:
    """A folder under the home's worktrees that git does not know as a worktree."""

    path: str
    job_id: str
    has_files: bool
    age: float | None = None


@dataclass(frozen=True, slots=True)
class BranchFacts:
    """A ``treefork/<job>/...`` branch."""

    name: str
    job_id: str
    contained: bool
    """One of the user's (non-treefork) branches contains its tip."""


@dataclass(frozen=True, slots=True)
class GcAction:
    """One decision of the garbage collector."""

    kind: ActionKind
    target: str
    """A path or a branch name."""
    job_id: str
    reason: str
    what: Literal["worktree", "folder", "branch"] = "worktree"


def job_state(facts: JobFacts | None) -> JobState:
    """Classify a job for collection."""
    if facts is None or facts.status is None:
        return "unknown"
    if facts.locked:
        return "running"
    if facts.discarded or facts.merge_status in ("merged", "nothing_to_merge", "skipped"):
        return "closed"
    if facts.status == "running":
        return "interrupted"
    return "open"


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in ``30s``, ``15m``, ``12h``, ``7d``, ``2w`` or ``1d12h``.

    Raises:
        ValueError: Not a duration.
    """
    total, number = 0.0, ""
    for char in text.strip().lower():
        if char.isdigit() or char == ".":
            number += char
        elif char in _UNITS and number:
            total += float(number) * _UNITS[char]
            number = ""
        else:
            raise ValueError(f"{text!r} is not a duration (use e.g. 30m, 12h, 7d)")
    if number or not text.strip():
        raise ValueError(f"{text!r} is not a duration (use e.g. 30m, 12h, 7d)")
    return total


def _held_back(state: JobState, facts: JobFacts | None, older_than: float | None) -> str | None:
    """Why nothing of this job may be collected now, or None."""
    if state == "running":
        return "its job is running"
    if state == "open":
        return "its job awaits merge (`treefork merge JOB`, or `treefork discard JOB`)"
    age = facts.age if facts is not None else None
    if older_than is not None and age is not None and age < older_than:
        return f"its job changed {age / 3600:.1f}h ago, less than --older-than"
    return None


def _plan_worktree(
    worktree: WorktreeFacts, state: JobState, held: str | None, force: bool
) -> GcAction:
    keep = GcAction("keep", worktree.path, worktree.job_id, "", "worktree")
    if not worktree.exists:
        return GcAction(
            "prune", worktree.path, worktree.job_id, "stale git worktree entry: its folder is gone"
        )
    if held:
        return GcAction("keep", keep.target, keep.job_id, held)
    if worktree.dirty and not force:
        shown = ", ".join(worktree.dirty[:5]) + (" ..." if len(worktree.dirty) > 5 else "")
        return GcAction(
            "keep", keep.target, keep.job_id, f"uncommitted changes in {shown} (--force removes it)"
        )
    reason = {
        "closed": "its job is merged or discarded",
        "interrupted": "its job was interrupted (a resume recreates it)",
        "unknown": "no job knows it",
    }.get(state, state)
    if worktree.dirty:
        reason += "; forced despite uncommitted changes"
    return GcAction("remove_worktree", worktree.path, worktree.job_id, reason)


def _plan_folder(
    folder: FolderFacts, held: str | None, force: bool, older_than: float | None
) -> GcAction:
    if held:
        return GcAction("keep", folder.path, folder.job_id, held, "folder")
    if older_than is not None and folder.age is not None and folder.age < older_than:
        return GcAction("keep", folder.path, folder.job_id, "younger than --older-than", "folder")
    if folder.has_files and not force:
        reason = "not a worktree git knows, but it holds files (--force removes it)"
        return GcAction("keep", folder.path, folder.job_id, reason, "folder")
    reason = "orphan folder: not a worktree git knows" + (
        "" if not folder.has_files else "; forced"
    )
    return GcAction("remove_folder", folder.path, folder.job_id, reason, "folder")


def _plan_branch(
    branch: BranchFacts, state: JobState, held: str | None, kept_checkouts: set[str], force: bool
) -> GcAction:
    if held:
        return GcAction("keep", branch.name, branch.job_id, held, "branch")
    if branch.name in kept_checkouts:
        return GcAction(
            "keep", branch.name, branch.job_id, "checked out in a worktree that stays", "branch"
        )
    if branch.contained:
        return GcAction(
            "delete_branch",
            branch.name,
            branch.job_id,
            "merged into one of your branches",
            "branch",
        )
    if not force:
        why = "holds commits none of your branches has"
        if state == "interrupted":
            why += " (its job can be resumed)"
        return GcAction("keep", branch.name, branch.job_id, f"{why} (--force deletes it)", "branch")
    return GcAction(
        "delete_branch", branch.name, branch.job_id, "forced: its commits are not merged", "branch"
    )


def plan_gc(
    jobs: Mapping[str, JobFacts],
    worktrees: Sequence[WorktreeFacts],
    folders: Sequence[FolderFacts],
    branches: Sequence[BranchFacts],
    *,
    force: bool = False,
    older_than: float | None = None,
) -> list[GcAction]:
    """Decide what to remove: worktrees and folders first, then branches.

    Args:
        jobs: Facts per job id (jobs the store does not know are missing).
        worktrees: treefork worktrees git knows.
        folders: Folders under the home's worktrees that git does not know.
        branches: ``treefork/...`` branches.
        force: Remove uncommitted work and delete unmerged branches too.
        older_than: Only collect jobs (and orphan folders) at least this many seconds old.

    Returns:
        One action per worktree, folder and branch, in the order to perform them.
    """

    def held(job_id: str) -> tuple[JobState, str | None]:
        facts = jobs.get(job_id)
        state = job_state(facts)
        return state, _held_back(state, facts, older_than)

    actions: list[GcAction] = []
    kept_checkouts: set[str] = set()
    for worktree in worktrees:
        state, reason = held(worktree.job_id)
        action = _plan_worktree(worktree, state, reason, force)
        if action.kind == "keep" and worktree.branch:
            kept_checkouts.add(worktree.branch)
        actions.append(action)
    for folder in folders:
        state, reason = held(folder.job_id)
        actions.append(
            _plan_folder(folder, reason if state != "unknown" else None, force, older_than)
        )
    for branch in branches:
        state, reason = held(branch.job_id)
        actions.append(_plan_branch(branch, state, reason, kept_checkouts, force))
    return actions
