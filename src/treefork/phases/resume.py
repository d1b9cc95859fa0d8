"""Resuming a domain: gather the facts :mod:`treefork.core.resume` decides on, and act.

The core decides from plain values; this module reads them from the job store and git
(branch tips, reachability), cleans up what a killed process left in the domain's agent
folder, and resets a domain worktree when a phase must run again from a recorded commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from treefork.core import naming
from treefork.core.items import WorkItem
from treefork.core.policy import attempts_allowed
from treefork.core.resume import (
    BranchFacts,
    ItemPlan,
    PhasePlan,
    RecordedItem,
    plan_item,
    plan_reduce,
    plan_setup,
)
from treefork.domain import Domain
from treefork.errors import TreeforkError
from treefork.git.command import git, git_ok
from treefork.runtime import JobRuntime
from treefork.state import AgentResult

__all__ = (
    "PlannedItem",
    "attempt_branch",
    "decode_items",
    "encode_items",
    "plan_item_now",
    "recorded_rows",
    "reduce_plan",
    "reset_domain_worktree",
    "setup_plan",
)


@dataclass(frozen=True, slots=True)
class PlannedItem:
    """One work item with its plan and what the store recorded for it."""

    work: WorkItem
    plan: ItemPlan
    recorded: AgentResult | None = None
    """The recorded result (for reuse, merge and adopt)."""
    head: str | None = None
    """The recorded head commit of the agent (for merge and adopt)."""


def attempt_branch(job_id: str, domain: str, work: WorkItem, attempt: int) -> str:
    """The agent branch of one attempt of an item (later attempts get a suffix)."""
    slug = naming.item_slug(work.item_id, work.index)
    if attempt > 1:
        slug = f"{slug}-attempt{attempt}"
    return naming.agent_branch(job_id, domain, slug)


def encode_items(items: Iterable[WorkItem]) -> list[dict[str, Any]]:
    """Work items as JSON values for the store."""
    return [{"value": item.value, "item_id": item.item_id, "index": item.index} for item in items]


def decode_items(values: Iterable[dict[str, Any]]) -> list[WorkItem]:
    """Work items read back from the store."""
    return [WorkItem(value["value"], value["item_id"], value["index"]) for value in values]


def _recorded(row: dict[str, Any] | None) -> RecordedItem | None:
    if row is None:
        return None
    return RecordedItem(
        row["status"], row["merge"], row["head"], row["branch"], int(row["attempts"])
    )


async def _facts(
    runtime: JobRuntime, row: dict[str, Any] | None, first_branch: str, domain_branch: str
) -> BranchFacts:
    record = _recorded(row)
    if (
        record is not None
        and record.status == "succeeded"
        and record.merge == "pending"
        and record.head
    ):
        head = record.head
        exists = await git_ok("cat-file", "-e", f"{head}^{{commit}}", cwd=runtime.repo.root)
        merged = exists and await runtime.worktrees.is_ancestor(head, domain_branch)
        return BranchFacts(head_exists=exists, head_merged=merged)
    if record is None or record.status == "running":
        branch = (record.branch if record else None) or first_branch
        return BranchFacts(branch_tip=await runtime.worktrees.branch_head(branch))
    return BranchFacts()


async def recorded_rows(runtime: JobRuntime, domain: str) -> dict[str, dict[str, Any]]:
    """What the store recorded for each of the domain's items (empty on a fresh job).

    When there are records, agent worktrees a killed process left behind are removed first,
    except those of failed items (they stay for inspection and the DLQ).
    """
    rows = {row["item_id"]: row for row in await runtime.recorder.agents(domain)}
    if rows:
        kept = {
            row["branch"] for row in rows.values() if row["status"] == "failed" and row["branch"]
        }
        await _remove_left_over_slots(runtime, domain, kept)
    return rows


async def plan_item_now(
    runtime: JobRuntime,
    domain: Domain,
    work: WorkItem,
    rows: dict[str, dict[str, Any]],
    *,
    domain_branch: str,
    base_commit: str,
    retry: frozenset[str] = frozenset(),
) -> PlannedItem:
    """Plan one item of a domain's map phase from the store's record and git.

    An item with nothing recorded (a fresh job, or a graph without a store) is planned to
    run without asking git anything.
    """
    allowed = attempts_allowed(domain.error_policy)
    row = rows.get(work.item_id)
    if row is None and not rows:
        return PlannedItem(work, ItemPlan("run", "no result recorded", 1, allowed))
    first = attempt_branch(runtime.job_id, domain.name, work, 1)
    facts = await _facts(runtime, row, first, domain_branch)
    plan = plan_item(
        _recorded(row),
        facts,
        base_commit=base_commit,
        first_branch=first,
        attempts_allowed=allowed,
        retry=work.item_id in retry,
    )
    if plan.discard_branch:
        await _discard_branch(runtime, domain.name, plan.discard_branch, plan.reason)
    recorded = row["result"] if row and row["result"] else None
    if plan.action != "run" or row is not None:
        runtime.emitter.emit(
            "resume", domain=domain.name, phase="map", item=work.item_id, action=plan.action,
            reason=plan.reason,
        )
    return PlannedItem(work, plan, recorded, row["head"] if row else None)


async def _remove_left_over_slots(
    runtime: JobRuntime, domain: str, kept_branches: set[str]
) -> None:
    """Remove agent worktrees a killed process left, except those of DLQ items.

    Their branches stay: finished agents' commits are on them, and what an unfinished agent
    left is discarded by its item's plan.
    """
    folder = (runtime.worktrees.root / "agents" / domain).resolve()
    registered = await runtime.worktrees.registered_worktrees()
    for path, branch in registered.items():
        if not path.is_relative_to(folder) or (branch is not None and branch in kept_branches):
            continue
        try:
            await runtime.worktrees.remove_worktree(path, force=True)
        except TreeforkError as error:
            runtime.emitter.emit(
                "worktree", action="kept", domain=domain, path=str(path), reason=str(error)
            )
            continue
        await runtime.recorder.resource_removed("worktree", str(path))
        runtime.emitter.emit(
            "worktree",
            action="removed",
            domain=domain,
            path=str(path),
            reason="left by an interrupted run",
        )


async def _discard_branch(runtime: JobRuntime, domain: str, branch: str, reason: str) -> None:
    await runtime.worktrees.delete_branch(branch, merged_into=None, force=True)
    await runtime.recorder.resource_removed("branch", branch)
    runtime.emitter.emit(
        "worktree", action="discarded_branch", domain=domain, branch=branch, reason=reason
    )


async def reset_domain_worktree(
    runtime: JobRuntime, worktree: Path, commit: str, *, clean: bool
) -> None:
    """Reset a domain worktree (and its branch) to ``commit``, undoing a cut-off phase.

    Args:
        runtime: The job.
        worktree: The domain worktree.
        commit: The recorded commit the phase starts from.
        clean: Also remove untracked files (ignored ones, such as dependency folders, stay).
    """
    await git("reset", "-q", "--hard", commit, cwd=worktree)
    if clean:
        await git("clean", "-q", "-ffd", cwd=worktree)


async def setup_plan(
    runtime: JobRuntime, worktree: Path, recorded: dict[str, Any] | None
) -> PhasePlan:
    """Whether the domain's setup runs (see :func:`treefork.core.resume.plan_setup`)."""
    head = await runtime.worktrees.head(worktree)
    setup = (recorded or {}).get("setup") or {}
    base = setup.get("base_commit")
    on_branch = base is not None and await runtime.worktrees.is_ancestor(base, head)
    return plan_setup(
        recorded_base=base, base_on_branch=on_branch, domain_head=head, job_base=runtime.base_commit
    )


async def reduce_plan(
    runtime: JobRuntime, worktree: Path, recorded: dict[str, Any] | None, *, rerun: bool
) -> PhasePlan:
    """Whether the domain's reduce runs (see :func:`treefork.core.resume.plan_reduce`)."""
    head = await runtime.worktrees.head(worktree)
    recorded = recorded or {}
    map_head = (recorded.get("map") or {}).get("head")
    return plan_reduce(
        recorded=recorded.get("reduce") is not None,
        rerun=rerun,
        map_head=map_head,
        domain_head=head,
    )


# -- domain phases: skip what finished, undo what was cut off, record what finishes ----------


def _resumed(runtime: JobRuntime, domain: str, phase: str, plan: PhasePlan) -> None:
    action = "reset" if plan.reset_to else ("run" if plan.run else "skip")
    runtime.emitter.emit("resume", domain=domain, phase=phase, action=action, reason=plan.reason)


async def _carry_out(
    runtime: JobRuntime, domain: str, phase: str, worktree: Path, plan: PhasePlan, *, clean: bool
) -> bool:
    """Perform a phase's resume plan; True when the recorded outcome is to be reused."""
    if plan.run and plan.reset_to is None:
        return False
    _resumed(runtime, domain, phase, plan)
    if plan.run:
        assert plan.reset_to is not None
        await reset_domain_worktree(runtime, worktree, plan.reset_to, clean=clean)
        return False
    return True


async def resume_setup(runtime: JobRuntime, domain: str, worktree: Path) -> dict[str, Any] | None:
    """The state update of a setup that finished before, or None to run setup now.

    When setup must run again after being cut off, the domain worktree is first reset to
    the job's base commit, so the second run starts where the first did.
    """
    if not runtime.recorder.enabled:
        return None
    recorded = await runtime.recorder.domain(domain)
    plan = await setup_plan(runtime, worktree, recorded)
    if not await _carry_out(runtime, domain, "setup", worktree, plan, clean=True):
        return None
    assert recorded is not None
    facts = recorded["setup"]
    return {
        "base_commit": facts["base_commit"],
        "items": decode_items(facts["items"]),
        "variables": dict(facts["variables"]),
    }


async def record_setup(
    runtime: JobRuntime,
    domain: str,
    base_commit: str,
    items: Sequence[WorkItem],
    variables: dict[str, Any],
) -> None:
    """Record a finished setup: the post-setup commit, the selected items, the variables."""
    facts = {"base_commit": base_commit, "items": encode_items(items), "variables": variables}
    await runtime.recorder.phase_done(domain, "setup", facts)


async def resume_map(
    runtime: JobRuntime, domain: str, *, retry: bool
) -> dict[str, AgentResult] | None:
    """The recorded results of a map phase that finished before, or None to run it."""
    if not runtime.recorder.enabled or retry:
        return None
    recorded = await runtime.recorder.domain(domain)
    if not recorded or recorded.get("map") is None:
        return None
    rows = await runtime.recorder.agents(domain)
    runtime.emitter.emit(
        "resume", domain=domain, phase="map", action="skip", reason="map finished before"
    )
    return {row["item_id"]: row["result"] for row in rows if row["result"]}


async def record_phase_head(
    runtime: JobRuntime, domain: str, phase: str, worktree: Path, **facts: Any
) -> None:
    """Record a finished phase with the domain branch's tip after it."""
    if runtime.recorder.enabled:
        head = await runtime.worktrees.head(worktree)
        await runtime.recorder.phase_done(domain, phase, {"head": head, **facts})


async def resume_reduce(
    runtime: JobRuntime, domain: str, worktree: Path, *, rerun: bool
) -> dict[str, Any] | None:
    """The variables after a reduce that finished before, or None to run reduce now.

    A reduce cut off halfway is undone first: the domain branch goes back to the tip
    recorded after the map phase (untracked files stay).
    """
    if not runtime.recorder.enabled:
        return None
    recorded = await runtime.recorder.domain(domain)
    plan = await reduce_plan(runtime, worktree, recorded, rerun=rerun)
    if not await _carry_out(runtime, domain, "reduce", worktree, plan, clean=False):
        return None
    assert recorded is not None
    return dict(recorded["reduce"].get("variables") or {})


async def resume_tests(runtime: JobRuntime, domain: str, *, rerun: bool) -> dict[str, Any] | None:
    """The recorded outcome of the tests command, or None to run it."""
    if not runtime.recorder.enabled or rerun:
        return None
    recorded = await runtime.recorder.domain(domain)
    tests = (recorded or {}).get("tests")
    if tests is None:
        return None
    runtime.emitter.emit(
        "resume", domain=domain, phase="tests", action="skip", reason="tests ran before"
    )
    return {
        "passed": bool(tests["passed"]),
        "output": str(tests.get("output") or ""),
        "error": tests.get("error"),
    }
