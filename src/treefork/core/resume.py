"""Resuming: from recorded facts and git facts, what each item and phase does next.

A job killed at any point restarts its domains; before each step the shell gathers what the
job store recorded and what git shows (a branch's tip, whether a commit is reachable from
the domain branch), asks these functions, and does what they say. The same functions plan a
DLQ retry (``retry=True`` for the items being retried).

Item plans::

    nothing recorded             run (discarding an agent branch of an unrecorded run)
    running (cut off)            run the same attempt again, its unfinished branch discarded
    succeeded, merged / nothing  reuse the recorded result
    succeeded, merge pending     adopt (already reachable from the domain branch), merge the
                                 recorded commit (not re-run), or run again if it is gone
    failed                       reuse (it stays in the DLQ), or run the next attempt on retry
    skipped                      run: budget and error policy decide again

Phase plans: setup is skipped once recorded (its base commit must still be on the domain
branch), else it runs again from the job's base commit; map is skipped once recorded; reduce
runs again from the recorded post-map head when it was cut off; tests run unless recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = (
    "BranchFacts",
    "ItemPlan",
    "JobResumeAction",
    "PhasePlan",
    "RecordedItem",
    "plan_item",
    "plan_job_resume",
    "plan_reduce",
    "plan_setup",
    "plan_skippable_phase",
)

ItemAction = Literal["run", "reuse", "merge", "adopt"]
"""run the agent; reuse the recorded result; merge the recorded commit without running the
agent; adopt: the recorded commit is already merged, only the record is behind."""


@dataclass(frozen=True, slots=True)
class RecordedItem:
    """What the job store holds for one item."""

    status: Literal["running", "succeeded", "failed", "skipped"]
    """The agent's status; ``running`` means it started and no outcome was recorded."""
    merge: Literal["none", "pending", "merged", "conflict"] | None
    """Whether its commits are merged into the domain branch."""
    head: str | None
    """The agent's last commit, when it made commits."""
    branch: str | None
    """The agent branch of the last attempt."""
    attempts: int
    """Attempts made (the running one included)."""


@dataclass(frozen=True, slots=True)
class BranchFacts:
    """What git shows for one item."""

    branch_tip: str | None = None
    """Tip of the item's branch (the recorded one, else the first attempt's); None if absent."""
    head_exists: bool = False
    """The recorded head commit is in the repository."""
    head_merged: bool = False
    """The recorded head commit is reachable from the domain branch."""


@dataclass(frozen=True, slots=True)
class ItemPlan:
    """What to do with one item."""

    action: ItemAction
    reason: str
    """Why, for the event log."""
    first_attempt: int = 1
    """The attempt number to start at when running (branches of later attempts get a suffix)."""
    last_attempt: int = 1
    """The last attempt number allowed (retries of the error policy included)."""
    discard_branch: str | None = None
    """A branch holding unfinished, unrecorded work to delete before running."""


def _discardable(tip: str | None, base_commit: str) -> bool:
    # An agent branch still at the base holds nothing; one past it holds an unfinished run.
    return tip is not None and tip != base_commit


def plan_item(
    record: RecordedItem | None,
    facts: BranchFacts,
    *,
    base_commit: str,
    first_branch: str,
    attempts_allowed: int = 1,
    retry: bool = False,
) -> ItemPlan:
    """Decide what one item does on resume (or on a DLQ retry).

    Args:
        record: What the store holds for the item, or None.
        facts: What git shows for it.
        base_commit: The domain's post-setup commit every agent branches from.
        first_branch: The branch the item's first attempt uses.
        attempts_allowed: Attempts the error policy allows one item (1 + retries).
        retry: The item is being retried from the DLQ (it gets a fresh set of attempts).

    Returns:
        The plan.
    """
    if record is None:
        stale = first_branch if _discardable(facts.branch_tip, base_commit) else None
        return ItemPlan("run", "no result recorded", 1, attempts_allowed, stale)
    if record.status == "running":
        stale = record.branch if _discardable(facts.branch_tip, base_commit) else None
        attempt = max(record.attempts, 1)
        reason = f"attempt {attempt} was cut off before it finished"
        return ItemPlan("run", reason, attempt, max(attempt, attempts_allowed), stale)
    if record.status == "succeeded":
        return _plan_succeeded(record, facts, attempts_allowed)
    fresh = (record.attempts + 1, record.attempts + attempts_allowed)
    if record.status == "failed":
        if retry:
            return ItemPlan("run", "retrying from the dead letter queue", *fresh)
        return ItemPlan("reuse", "failed; it stays in the dead letter queue")
    return ItemPlan("run", "was skipped; budget and error policy decide again", *fresh)


def _plan_succeeded(record: RecordedItem, facts: BranchFacts, attempts_allowed: int) -> ItemPlan:
    if record.merge != "pending" or record.head is None:
        return ItemPlan("reuse", "result recorded")
    if facts.head_merged:
        return ItemPlan("adopt", "its commit is already in the domain branch")
    if facts.head_exists:
        return ItemPlan("merge", "finished but not merged: merging its recorded commit")
    fresh = (record.attempts + 1, record.attempts + attempts_allowed)
    return ItemPlan("run", "its recorded commit is gone", *fresh)


@dataclass(frozen=True, slots=True)
class PhasePlan:
    """Whether a domain phase runs, and from where."""

    run: bool
    reason: str
    reset_to: str | None = None
    """Reset the domain branch and worktree to this commit first (undoing a cut-off run)."""


def plan_setup(
    *, recorded_base: str | None, base_on_branch: bool, domain_head: str, job_base: str
) -> PhasePlan:
    """Whether setup runs.

    Args:
        recorded_base: The post-setup commit recorded when setup finished, or None.
        base_on_branch: ``recorded_base`` is reachable from the domain branch.
        domain_head: The domain branch's tip now.
        job_base: The commit the job started from (where the domain branch began).
    """
    if recorded_base is not None and base_on_branch:
        return PhasePlan(False, "setup finished before; its work items are recorded")
    reset = job_base if domain_head != job_base else None
    reason = "setup was cut off; running it again" if reset else "setup runs"
    return PhasePlan(True, reason, reset)


def plan_reduce(
    *, recorded: bool, rerun: bool, map_head: str | None, domain_head: str
) -> PhasePlan:
    """Whether reduce runs, and whether a cut-off run must be undone first.

    Args:
        recorded: Reduce finished before.
        rerun: Run it again anyway (after a DLQ retry merged new work).
        map_head: The domain branch's tip recorded when the map phase finished.
        domain_head: The domain branch's tip now.
    """
    if recorded and not rerun:
        return PhasePlan(False, "reduce finished before")
    if map_head is not None and domain_head != map_head:
        return PhasePlan(
            True, "reduce was cut off; undoing its commits and running it again", map_head
        )
    return PhasePlan(True, "reduce runs")


def plan_skippable_phase(*, recorded: bool, rerun: bool, phase: str) -> PhasePlan:
    """Whether a phase that changes nothing in git (map, tests) runs again."""
    if recorded and not rerun:
        return PhasePlan(False, f"{phase} finished before")
    return PhasePlan(True, f"{phase} runs")


JobResumeAction = Literal["start", "continue", "review", "finished"]
"""start: no checkpoint, invoke with the recorded input; continue: invoke with None from the
last checkpoint; review: waiting at merge review, ask again; finished: nothing left to do."""


def plan_job_resume(
    *, has_checkpoint: bool, next_nodes: tuple[str, ...], interrupted: bool
) -> JobResumeAction:
    """How to resume a job's graph from its checkpoint.

    Args:
        has_checkpoint: The checkpointer holds a checkpoint for the job's thread.
        next_nodes: The nodes the checkpoint would run next.
        interrupted: A pending task is waiting on an ``interrupt()`` (merge review).
    """
    if not has_checkpoint:
        return "start"
    if not next_nodes:
        return "finished"
    if interrupted:
        return "review"
    return "continue"
