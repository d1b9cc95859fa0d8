"""The map phase: one agent per work item, each in its own worktree, merged back serially.

Agents branch from the domain branch as it stood after setup (``base_commit``), so results
do not depend on the order in which other agents merge. Each finished agent merges into the
domain branch through one serial queue per domain; merges are computed in the object store,
so a conflict fails that item (paths named, branch kept) and leaves the domain branch
exactly as before.

Concurrency: at most ``map.max_parallel`` workers per domain, each holding a slot of the
job-wide limiter while its agent runs. Before an agent starts, the error policy and the
budget are asked whether it may; items that may not are recorded as skipped (with the
reason), never lost.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from langgraph.errors import GraphBubbleUp

from treefork.core.items import WorkItem, item_label
from treefork.core.policy import ItemCounts, stop_reason
from treefork.domain import Domain, Map
from treefork.errors import (
    GitError,
    MergeConflictError,
    TreeforkError,
    WorktreeError,
    name_some,
)
from treefork.executors import AgentTask
from treefork.git.merge import BranchMerger
from treefork.git.objects import ObjectDatabase
from treefork.git.pool import AgentPool, OnCreate
from treefork.git.worktrees import AgentChanges, Worktree
from treefork.phases.remote import Shipment, base_content, receive_commits, shipment
from treefork.phases.resume import PlannedItem, attempt_branch, plan_item_now, recorded_rows
from treefork.runners.steps import StepContext, StepsOutcome, run_steps
from treefork.runtime import JobRuntime
from treefork.state import AgentResult
from treefork.steps import Shell, Usage

__all__ = (
    "MapRun",
    "close_map_run",
    "failed_result",
    "open_map_run",
    "run_agent_task",
    "spare_worktrees",
)

_TAIL = 2000


@dataclass
class MapRun:
    """Everything one domain's map phase needs and accumulates."""

    runtime: JobRuntime
    domain: Domain
    map: Map
    branch: str
    worktree: Path
    base_commit: str
    variables: dict[str, Any]
    results: dict[str, AgentResult] = field(default_factory=dict)
    counts: ItemCounts = field(default_factory=ItemCounts)
    stopped: str | None = None
    usage: Usage = field(default_factory=Usage)
    merger: BranchMerger | None = None
    """The serial merge queue into ``branch`` (made on first merge)."""
    running: anyio.CapacityLimiter | None = None
    """This domain's agents running at once (``map.max_parallel``); an agent waiting for
    its merge does not count."""
    retry: frozenset[str] = frozenset()
    """Item ids retried from the DLQ; every other recorded item keeps its result."""
    objects: ObjectDatabase | None = None
    """The repository's object database, when merge commits are written in process."""
    unprepared: int = 1 << 30
    """Items of the last wave whose first attempt has no worktree yet (very many until the
    last wave is sent): at zero the pool gives up the worktrees no agent will need."""
    worktrees: anyio.CapacityLimiter | None = None
    """Agent worktrees in use at once: the running agents' and the spare ones made ready
    for the next agents (see :func:`spare_worktrees`)."""
    pool: AgentPool | None = None
    """The domain's agent worktrees."""
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    """What the job store recorded for each item when the map phase opened here."""
    shipment: Shipment | None = None
    """What every remote agent of the domain is sent besides its item (remote executor)."""

    async def close(self) -> None:
        """Close the merge queue and the worktree pool (merged branches deleted)."""
        merger, self.merger = self.merger, None
        pool, self.pool = self.pool, None
        if merger is not None:
            await merger.close()
        if pool is not None and not self.runtime.settings.keep_worktrees:
            await pool.close()


def _result(work: WorkItem, **fields: Any) -> AgentResult:
    base: dict[str, Any] = {
        "item_id": work.item_id,
        "item_index": work.index,
        "item": work.value,
        "status": "failed",
        "error": None,
        "skip_reason": None,
        "output_tail": "",
        "branch": None,
        "commits": [],
        "files": [],
        "conflict_paths": [],
        "attempts": 0,
        "tokens": 0,
        "cost": 0.0,
        "started_at": None,
        "finished_at": None,
    }
    base.update(fields)
    return base  # type: ignore[return-value]


async def open_map_run(fresh: MapRun) -> MapRun:
    """The domain's map phase in this process: the one open already, else ``fresh``, opened
    now. Its map node or any of its agent tasks opens it on first use (one resumed after a
    crash opens it itself).

    Opening reads what the job store recorded for the domain's agents (nothing on a fresh
    job) and removes agent worktrees a killed process left behind.
    """
    runtime, name = fresh.runtime, fresh.domain.name
    opened = runtime.map_runs.get(name)
    if opened is not None:
        return opened  # type: ignore[no-any-return]
    # Agent tasks resumed together all ask at once: one opens it, the others wait.
    async with runtime.opening(f"map:{name}"):
        opened = runtime.map_runs.get(name)
        if opened is None:
            opened = runtime.map_runs[name] = await _open(fresh)
    return opened


async def _open(run: MapRun) -> MapRun:
    runtime, domain, branch = run.runtime, run.domain, run.branch
    run.rows = await recorded_rows(runtime, domain.name)
    run.objects = await runtime.worktrees.objects()
    run.pool = AgentPool(
        runtime.worktrees,
        domain.name,
        include=domain.worktree_include,
        on_create=_worktree_hook(run),
        merged_into=branch,
        on_slot=_slot_recorder(run),
    )
    run.running = anyio.CapacityLimiter(run.map.max_parallel)
    run.worktrees = anyio.CapacityLimiter(run.map.max_parallel + spare_worktrees(run.map))
    return run


def failed_result(work: WorkItem, error: str) -> AgentResult:
    """The result of an item whose agent task failed outside its steps."""
    return _result(work, error=error, finished_at=time.time())


async def run_agent_task(run: MapRun, work: WorkItem, total: int) -> AgentResult:
    """One work item's agent: reuse, merge or adopt what the store recorded for it, else
    run its attempts. Returns its result (a skipped one included).

    LangGraph records the result of every finished agent task in its checkpoint; the store's
    record matters only for a task cut off midway and run again: a finished agent whose
    commit was not merged is merged, not run again, and an unfinished attempt's branch is
    discarded before the attempt runs again.
    """
    planned = await plan_item_now(
        run.runtime,
        run.domain,
        work,
        run.rows,
        domain_branch=run.branch,
        base_commit=run.base_commit,
        retry=run.retry,
    )
    settled = await _settle_recorded(run, planned)
    if settled is not None:
        return settled
    assert run.pool is not None
    result = await _run_item(run, run.pool, planned, total)
    if result is not None:
        _count(run, result)
    if run.unprepared <= 0 and not run.runtime.settings.keep_worktrees:
        # Every agent has its worktree: those handed back from now on are not needed again
        # (bar a retry), and removing them now keeps it off the end of the job.
        await run.pool.shrink()
    return run.results[work.item_id]


async def close_map_run(run: MapRun) -> None:
    """End the domain's map phase: take back read-only agents' commits, close the merge
    queue and the worktree pool (merged branches deleted)."""
    run.runtime.map_runs.pop(run.domain.name, None)
    try:
        if run.map.isolation == "none":
            await _drop_read_only_commits(run)
    finally:
        with anyio.CancelScope(shield=True):
            await run.close()


def spare_worktrees(map_: Map) -> int:
    """Agent worktrees made ready beyond ``max_parallel`` (none for read-only agents).

    While ``max_parallel`` agents run, this many more attempts switch a worktree to their
    branch, so that an agent starts the moment a running one ends rather than after a
    checkout: one spare per four agents that may run at once.
    """
    return map_.max_parallel // 4 if map_.isolation == "worktree" else 0


@dataclass
class _Slots:
    """The running slots (job-wide and domain) one worker's agent holds."""

    limiters: tuple[anyio.CapacityLimiter, ...]
    held: int = 0

    async def take(self) -> None:
        """Wait for every slot (no-op when held)."""
        while self.held < len(self.limiters):
            await self.limiters[self.held].acquire()
            self.held += 1

    def give_back(self) -> None:
        """Release the slots held (no-op when none)."""
        while self.held:
            self.held -= 1
            self.limiters[self.held].release()


@dataclass
class _Prepared:
    """An attempt made ready to run: its start recorded, its worktree switched to its
    branch. Made while other agents still hold the running slots."""

    attempt: int
    branch: str | None = None
    worktree: Worktree | None = None
    error: str | None = None
    """Why the worktree could not be made ready (the attempt fails with it)."""
    permit: anyio.CapacityLimiter | None = None
    """The worktree permit held until the worktree goes back to the pool."""
    remote: bool = False
    """The attempt runs on the executor's nodes (no local worktree)."""

    def let_go(self) -> None:
        """Give back the worktree permit (no-op when none is held)."""
        if self.permit is not None:
            permit, self.permit = self.permit, None
            permit.release()


def _count(run: MapRun, result: AgentResult) -> None:
    run.results[result["item_id"]] = result
    succeeded = result["status"] == "succeeded"
    run.counts = ItemCounts(run.counts.succeeded + succeeded, run.counts.failed + (not succeeded))
    run.stopped = run.stopped or stop_reason(run.domain.error_policy, run.counts)


async def _settle_recorded(run: MapRun, item: PlannedItem) -> AgentResult | None:
    """Reuse, adopt or merge what the store recorded; None when the item is to run."""
    action, result = item.plan.action, item.recorded
    if action == "run" or result is None:
        return None
    if action in ("merge", "adopt"):
        adopt = action == "adopt"
        result = await _merge_recorded(run, item.work, result, item.head, adopt=adopt)
    _count(run, result)
    run.runtime.emitter.emit(
        "agent_end",
        domain=run.domain.name,
        item=item.work.item_id,
        status=result["status"],
        error=result["error"],
        files=result["files"],
        resumed=action,
    )
    return result


async def _merge_recorded(
    run: MapRun, work: WorkItem, result: AgentResult, head: str | None, *, adopt: bool
) -> AgentResult:
    """Merge a finished agent's recorded commit (or adopt a merge the record missed)."""
    assert head is not None
    result = result.copy()
    if not adopt:
        try:
            await _merge_agent(run, work, head)
        except MergeConflictError as conflict:
            result["status"] = "failed"
            result["error"] = str(conflict)
            result["conflict_paths"] = list(conflict.paths)
            await run.runtime.recorder.agent_finished(
                run.domain.name,
                result,
                merge="conflict",
                head=head,
                dead_letter=run.domain.error_policy.on_item_failure != "skip",
            )
            return result
    result["status"] = "succeeded"
    await run.runtime.recorder.agent_finished(run.domain.name, result, merge="merged", head=head)
    if result["branch"]:
        await _delete_merged_branch(run, result["branch"])
    return result


def _merge_outcome(result: AgentResult) -> str:
    if result["status"] == "succeeded":
        return "merged" if result["commits"] else "none"
    return "conflict" if result["conflict_paths"] else "none"


async def _record_skip(
    run: MapRun, work: WorkItem, reason: str, prepared: _Prepared | None = None
) -> None:
    run.results[work.item_id] = _result(work, status="skipped", skip_reason=reason)
    skipped = run.results[work.item_id]
    if prepared is not None and prepared.branch is not None:
        # Its start was recorded while it was made ready: end that attempt too.
        attempt = {**skipped, "attempts": prepared.attempt, "branch": prepared.branch}
        await run.runtime.recorder.attempt_finished(run.domain.name, attempt, head=None)
    await run.runtime.recorder.agent_finished(run.domain.name, skipped, merge="none")
    kind = "budget" if reason.startswith("budget") else "policy"
    run.runtime.emitter.emit(
        "agent_end", domain=run.domain.name, item=work.item_id, status="skipped", reason=reason
    )
    if kind == "budget":
        run.runtime.emitter.emit("budget", exhausted=True, reason=reason, **_budget_fields(run))


def _budget_fields(run: MapRun) -> dict[str, Any]:
    used = run.runtime.budget.used
    return {"tokens": used.tokens, "cost": used.cost, "agent_runs": used.agent_runs}


async def _run_item(
    run: MapRun, pool: AgentPool, planned: PlannedItem, total: int
) -> AgentResult | None:
    """Run an item's attempts; None when it was skipped before any ran.

    Each attempt is made ready (its worktree switched to its branch) before it waits for
    the running slots, runs its steps holding them, and gives them back the moment its steps
    end: reading what it did and merging it happen while the next agent runs.
    """
    emitter = run.runtime.emitter
    work, plan = planned.work, planned.plan
    assert run.running is not None
    slots = _Slots((run.runtime.global_limiter, run.running))
    started: float | None = None
    result: AgentResult | None = None
    recorded = False
    """Whether the last attempt's end is recorded already."""
    for attempt in range(plan.first_attempt, plan.last_attempt + 1):
        first = attempt == plan.first_attempt
        # Looked at before a worktree is made ready, and asked again (counting the run)
        # once the slots are held.
        reason = (run.stopped if first else None) or run.runtime.budget.refusal()
        prepared = None
        try:
            if reason is None:
                prepared = await _prepare(run, pool, work, attempt)
            if first:
                run.unprepared -= 1  # it has its worktree, or never will
            if reason is None:
                await slots.take()
                reason = (run.stopped if first else None) or run.runtime.budget.try_start_agent()
            if reason is not None:
                slots.give_back()
                if prepared is not None:
                    await _abandon(run, pool, prepared)
                if first:
                    await _record_skip(run, work, reason, prepared)
                    return None
                _no_retry(result, reason)
                break
            if started is None:
                started = time.time()
                emitter.emit(
                    "agent_start", domain=run.domain.name, item=work.item_id, index=work.index
                )
            assert prepared is not None
            result = await _attempt(run, pool, work, total, prepared, slots=slots)
        finally:
            slots.give_back()
            if prepared is not None:
                prepared.let_go()
        result["attempts"] = attempt
        recorded = False
        if result["status"] == "succeeded" or attempt == plan.last_attempt:
            break
        await run.runtime.recorder.attempt_finished(run.domain.name, result, head=_head(result))
        recorded = True
    assert result is not None and started is not None
    result["started_at"] = started
    result["finished_at"] = time.time()
    await _record_end(run, work, result, attempt_recorded=recorded)
    return result


async def _record_end(
    run: MapRun, work: WorkItem, result: AgentResult, *, attempt_recorded: bool
) -> None:
    """Record an item's outcome, then tell the world (in that order: once the event is out,
    a resume never runs it again)."""
    emitter = run.runtime.emitter
    await run.runtime.recorder.agent_finished(
        run.domain.name,
        result,
        merge=_merge_outcome(result),
        head=_head(result),
        dead_letter=run.domain.error_policy.on_item_failure != "skip",
        attempt=not attempt_recorded,
    )
    emitter.emit(
        "agent_end",
        domain=run.domain.name,
        item=work.item_id,
        status=result["status"],
        error=result["error"],
        files=result["files"],
        started_at=result["started_at"],
        finished_at=result["finished_at"],
        tokens=result["tokens"],
        cost=result["cost"],
        **({"node": result["node"]} if "node" in result else {}),
    )
    if run.runtime.budget.limit is not None:
        emitter.emit("budget", exhausted=False, **_budget_fields(run))


def _no_retry(result: AgentResult | None, reason: str) -> None:
    """Say on a failed result why it was not retried (the budget), for the record."""
    if result is not None:
        result["skip_reason"] = reason


def _head(result: AgentResult) -> str | None:
    return result["commits"][-1] if result["commits"] else None


def _agent_branch(run: MapRun, work: WorkItem, attempt: int) -> str:
    return attempt_branch(run.runtime.job_id, run.domain.name, work, attempt)


async def _prepare(run: MapRun, pool: AgentPool, work: WorkItem, attempt: int) -> _Prepared:
    """Make an attempt ready: record its start, take a worktree and switch it to the
    attempt's new branch (read-only agents need neither)."""
    remote = run.runtime.settings.executor is not None
    if run.map.isolation == "none":
        return _Prepared(attempt, remote=remote)
    branch = _agent_branch(run, work, attempt)
    if remote:  # its branch comes with the agent's bundle; no worktree here
        await _record_start(run, work, attempt, branch)
        return _Prepared(attempt, branch=branch, remote=True)
    assert run.worktrees is not None
    await run.worktrees.acquire()
    prepared = _Prepared(attempt, branch=branch, permit=run.worktrees)
    try:
        await _record_start(run, work, attempt, branch)
        prepared.worktree = await pool.acquire(branch, run.base_commit)
    except (WorktreeError, GitError) as error:
        prepared.error = f"could not prepare the agent worktree: {error}"
        prepared.let_go()
    except BaseException:
        prepared.let_go()
        raise
    return prepared


async def _record_start(run: MapRun, work: WorkItem, attempt: int, branch: str) -> None:
    # Recorded before the branch exists: a resume then knows whose branch it finds.
    await run.runtime.recorder.agent_started(
        run.domain.name,
        item_id=work.item_id,
        item_index=work.index,
        item=work.value,
        attempt=attempt,
        branch=branch,
    )


def _spent(run: MapRun, usage: Usage) -> None:
    """Count an agent's tokens and cost against the budget and the domain."""
    run.runtime.budget.record(usage)
    run.usage = run.usage + usage


async def _discard(pool: AgentPool, prepared: _Prepared) -> None:
    """Remove the worktree and branch of an attempt cut off before it finished."""
    worktree, prepared.worktree = prepared.worktree, None
    if worktree is not None:
        await pool.discard(worktree)
    prepared.let_go()


async def _abandon(run: MapRun, pool: AgentPool, prepared: _Prepared) -> None:
    """Hand back a worktree made ready for an attempt that will not run."""
    if prepared.worktree is not None:
        assert prepared.branch is not None
        await pool.release(prepared.worktree, reusable=True)
        # Its branch is the base commit and nothing else: deleted with the merged ones.
        _forget_merged_branch(run, pool, prepared.branch, run.base_commit)
    prepared.let_go()


async def _attempt(
    run: MapRun,
    pool: AgentPool,
    work: WorkItem,
    total: int,
    prepared: _Prepared,
    *,
    slots: _Slots,
) -> AgentResult:
    if prepared.error is not None:
        return _result(work, error=prepared.error, branch=prepared.branch)
    if prepared.remote:
        return await _attempt_remote(run, pool, work, total, prepared, slots=slots)
    if prepared.worktree is None:
        return await _attempt_in_domain_worktree(run, work, total)
    try:
        outcome = await _run_agent_steps(run, work, total, prepared.worktree.path)
    except GraphBubbleUp:
        # An interrupt asked for input: LangGraph runs this task again from the start once
        # answered, so this attempt's worktree and branch go.
        with anyio.CancelScope(shield=True):
            await _discard(pool, prepared)
        raise
    # Its steps are over: what follows (reading what it did, merging it) is not running,
    # and the next agent may start.
    slots.give_back()
    return await _finish_attempt(run, pool, work, prepared, outcome)


async def _run_agent_steps(
    run: MapRun, work: WorkItem, total: int, worktree: Path, *, allow_commits: bool = True
) -> StepsOutcome:
    deadline = anyio.current_time() + run.map.agent_timeout if run.map.agent_timeout else None
    context = StepContext(
        phase="map",
        domain=run.domain.name,
        job_id=run.runtime.job_id,
        worktree=worktree,
        variables={**run.variables, "item_total": total},
        env=run.domain.env,
        item=work.value,
        item_id=work.item_id,
        item_index=work.index,
        deadline=deadline,
        allow_commits=allow_commits,
        claude_command=run.runtime.settings.claude_command,
        emit=run.runtime.emitter,
        workflow=run.runtime.settings.name,
    )
    outcome = await run_steps(run.map.agent, context)
    _spent(run, outcome.usage)
    return outcome


async def _finish_attempt(
    run: MapRun,
    pool: AgentPool,
    work: WorkItem,
    prepared: _Prepared,
    outcome: StepsOutcome,
) -> AgentResult:
    worktree = prepared.worktree
    assert worktree is not None and worktree.branch is not None
    usage = {"tokens": outcome.usage.tokens, "cost": outcome.usage.cost}
    worktrees = run.runtime.worktrees
    changes = await worktrees.agent_changes(worktree.path, run.base_commit)
    auto_commit_error: str | None = None
    if outcome.ok and changes.dirty and run.map.auto_commit:
        try:
            message = f"treefork: {item_label(work)} (changes the agent left uncommitted)"
            await worktrees.commit_all(worktree.path, message)
        except GitError as refused:
            auto_commit_error = f"auto_commit failed: {refused}"
        changes = await worktrees.agent_changes(worktree.path, run.base_commit)
    clean = not changes.dirty
    # The commits are all the merge needs: the worktree goes back to the pool now (one
    # holding uncommitted work stays as it is, for inspection).
    await pool.release(worktree, reusable=clean, ignored=changes.ignored)
    prepared.let_go()
    error = (str(outcome.error) if outcome.error else "failed") if not outcome.ok else None
    return await _settle(
        run,
        pool,
        work,
        prepared.attempt,
        worktree.branch,
        changes,
        error=error,
        auto_commit_error=auto_commit_error,
        output_tail=outcome.output_tail,
        usage=usage,
        kept_at=str(worktree.path),
    )


async def _settle(  # noqa: PLR0917 (the attempt's facts, in the order they are read)
    run: MapRun,
    pool: AgentPool,
    work: WorkItem,
    attempt: int,
    branch: str,
    changes: AgentChanges,
    *,
    error: str | None,
    auto_commit_error: str | None,
    output_tail: str,
    usage: dict[str, Any],
    kept_at: str,
    **extra: Any,
) -> AgentResult:
    """An attempt's result from what its steps did and what it left in git; its commits
    merged into the domain branch (through the serial queue) when it succeeded."""
    if error is not None:
        return _result(
            work, error=error, output_tail=output_tail, branch=branch, **usage, **extra
        )
    if changes.dirty:
        return _result(
            work,
            error=auto_commit_error or _uncommitted_error(changes.dirty, kept_at),
            output_tail=output_tail,
            branch=branch,
            commits=list(changes.commits),
            uncommitted=list(changes.dirty),
            worktree=kept_at,
            **usage,
            **extra,
        )
    head = changes.head or run.base_commit
    commits, files = list(changes.commits), list(changes.files)
    result = _result(
        work,
        output_tail=output_tail,
        branch=branch,
        commits=commits,
        files=files,
        **usage,
        **extra,
    )
    if not commits:
        result["status"] = "succeeded"
        if run.runtime.settings.executor is None:  # a remote agent's branch never came here
            _forget_merged_branch(run, pool, branch, head)
        return result
    # Recorded before merging: a resume merges this commit instead of running the agent again.
    pending = {**result, "status": "succeeded", "attempts": attempt}
    await run.runtime.recorder.agent_finished(run.domain.name, pending, merge="pending", head=head)
    try:
        await _merge_agent(run, work, head, base=run.base_commit if changes.on_base else None)
    except MergeConflictError as conflict:
        run.runtime.emitter.emit(
            "conflict",
            domain=run.domain.name,
            item=work.item_id,
            paths=list(conflict.paths),
            branch=branch,
        )
        result["error"] = (
            f"{item_label(work)}: merging into {run.domain.name} conflicts in: "
            f"{', '.join(conflict.paths) or '(unknown)'} (branch {branch})"
        )
        result["conflict_paths"] = list(conflict.paths)
        return result
    result["status"] = "succeeded"
    _forget_merged_branch(run, pool, branch, head)
    return result


async def _attempt_remote(
    run: MapRun,
    pool: AgentPool,
    work: WorkItem,
    total: int,
    prepared: _Prepared,
    *,
    slots: _Slots,
) -> AgentResult:
    """Run an attempt on the executor's nodes; its commits come back as a bundle, fetched
    as its branch and merged as a local agent's are."""
    executor = run.runtime.settings.executor
    assert executor is not None
    worktrees = run.runtime.worktrees
    if run.shipment is None:
        async with run.runtime.opening(f"shipment:{run.domain.name}"):
            if run.shipment is None:
                run.shipment = await shipment(worktrees, run.domain.worktree_include)
    sent = run.shipment
    task = AgentTask(
        job_id=run.runtime.job_id,
        domain=run.domain.name,
        repo_key=sent.repo_key,
        base_commit=run.base_commit,
        item_id=work.item_id,
        item_index=work.index,
        item=work.value,
        attempt=prepared.attempt,
        branch=prepared.branch,
        steps=tuple(run.map.agent),
        variables={**run.variables, "item_total": total},
        env=dict(run.domain.env),
        timeout=run.map.agent_timeout,
        auto_commit=run.map.auto_commit,
        commit_message=f"treefork: {item_label(work)} (changes the agent left uncommitted)",
        claude_command=run.runtime.settings.claude_command,
        include=sent.include,
        hooks=sent.hooks,
        identity=sent.identity,
        on_worktree_create=run.domain.on_worktree_create or None,
        remote_url=executor.remote_url,
        secrets=run.runtime.settings.secrets,
        workflow=run.runtime.settings.name,
    )
    base = base_content(worktrees, sent.repo_key, run.base_commit, emit=run.runtime.emitter)
    sent_at = time.time()
    outcome = await executor.run_agent(task, base)
    received_at = time.time()
    slots.give_back()
    for event in outcome.events:
        run.runtime.emitter(event)
    run.runtime.emitter.emit(
        "agent_remote",
        domain=run.domain.name,
        item=work.item_id,
        node=outcome.node,
        bundle_bytes=len(outcome.bundle or b""),
        fetched_base=outcome.fetched_base,
        seconds=outcome.seconds,
        # Between the coordinator and the node (clocks of two machines: approximate).
        to_node=max(0.0, outcome.started_at - sent_at) if outcome.started_at else None,
        from_node=max(0.0, received_at - outcome.finished_at) if outcome.finished_at else None,
    )
    _spent(run, outcome.usage)
    usage = {"tokens": outcome.usage.tokens, "cost": outcome.usage.cost}
    node = {"node": outcome.node}
    if prepared.branch is None:  # read-only: nothing to bring back
        error = None if outcome.ok else (outcome.error or "failed")
        status = "succeeded" if error is None else "failed"
        return _result(
            work, status=status, error=error, output_tail=outcome.output_tail, **usage, **node
        )
    changes = outcome.changes()
    if outcome.ok and outcome.bundle is not None:
        try:
            await receive_commits(worktrees, outcome.bundle, prepared.branch, worktrees.root)
        except GitError as error:
            return _result(
                work,
                error=f"the agent's commits from node {outcome.node} could not be fetched: {error}",
                branch=prepared.branch,
                **usage,
                **node,
            )
    kept_at = f"{outcome.worktree} on node {outcome.node}"
    return await _settle(
        run,
        pool,
        work,
        prepared.attempt,
        prepared.branch,
        changes,
        error=None if outcome.ok else (outcome.error or "failed"),
        auto_commit_error=None,
        output_tail=outcome.output_tail,
        usage=usage,
        kept_at=kept_at,
        **node,
    )


def _uncommitted_error(paths: Sequence[str], worktree: str) -> str:
    return (
        f"left {len(paths)} uncommitted path{'s' if len(paths) != 1 else ''} "
        f"({name_some(paths)}); "
        f"kept in {worktree}. Commit them in a step (commit_required: true checks it), "
        "or drop auto_commit: false from the map to have them committed"
    )


def _forget_merged_branch(run: MapRun, pool: AgentPool, branch: str, head: str) -> None:
    # Deleted with every other merged branch in one transaction when the pool closes.
    if not run.runtime.settings.keep_worktrees:
        pool.merged(branch, head)


def _slot_recorder(run: MapRun) -> OnCreate:
    """Records each new agent worktree of the pool in the job store (once per worktree)."""

    async def record(path: Path) -> None:
        await run.runtime.recorder.resource("worktree", str(path), role="agent")

    return record


def _worktree_hook(run: MapRun) -> OnCreate | None:
    """The domain's ``on_worktree_create`` command, run in each new agent worktree."""
    command = run.domain.on_worktree_create
    if not command:
        return None
    step = Shell(command, name="on_worktree_create")

    async def on_create(path: Path) -> None:
        context = StepContext(
            phase="on_worktree_create",
            domain=run.domain.name,
            job_id=run.runtime.job_id,
            worktree=path,
            variables=dict(run.variables),
            env=run.domain.env,
            emit=run.runtime.emitter,
            workflow=run.runtime.settings.name,
        )
        outcome = await run_steps([step], context)
        if not outcome.ok:
            raise WorktreeError(
                path, f"on_worktree_create failed: {outcome.error}\n{outcome.output_tail[-_TAIL:]}"
            )

    return on_create


def _merger(run: MapRun) -> BranchMerger:
    if run.merger is None:
        worktrees = run.runtime.worktrees
        run.merger = BranchMerger(
            run.runtime.repo.root,
            run.branch,
            scratch=worktrees.root / "merges" / run.domain.name,
            lock=worktrees.lock,
            objects=run.objects,
        )
    return run.merger


async def _merge_agent(run: MapRun, work: WorkItem, head: str, *, base: str | None = None) -> None:
    # One merge at a time per domain: the merger is the serial merge queue. ``base`` is
    # given when the agent's commits grow from the post-setup commit alone: then it is
    # the merge base, and git need not search the domain branch's history for it.
    merged = await _merger(run).merge(
        head, f"treefork: merge {item_label(work)} into {run.domain.name}", base=base
    )
    run.runtime.emitter.emit(
        "merge", domain=run.domain.name, item=work.item_id, into=run.branch, commit=merged.commit
    )


async def _delete_merged_branch(run: MapRun, branch: str) -> None:
    if run.runtime.settings.keep_worktrees:
        return
    try:
        await run.runtime.worktrees.delete_branch(branch, merged_into=run.branch)
    except TreeforkError as error:  # never fatal: the branch simply stays
        run.runtime.emitter.emit("worktree", action="kept_branch", branch=branch, reason=str(error))


async def _drop_read_only_commits(run: MapRun) -> None:
    """Take back commits read-only agents made: their steps failed for it, and what they
    committed must not reach the domain branch."""
    try:
        dropped = await run.runtime.worktrees.move_back(run.worktree, run.base_commit)
    except TreeforkError as error:
        run.runtime.emitter.emit(
            "worktree",
            action="kept_commits",
            domain=run.domain.name,
            path=str(run.worktree),
            reason=f"read-only agents committed, and undoing it failed: {error}",
        )
        return
    if dropped is not None:
        run.runtime.emitter.emit(
            "worktree",
            action="dropped_commits",
            domain=run.domain.name,
            path=str(run.worktree),
            reason="read-only agents (isolation none) may not commit",
            head=dropped,
        )


async def _attempt_in_domain_worktree(run: MapRun, work: WorkItem, total: int) -> AgentResult:
    # isolation "none": read-only agents share the domain worktree; no branch, no merge.
    outcome = await _run_agent_steps(run, work, total, run.worktree, allow_commits=False)
    usage = {"tokens": outcome.usage.tokens, "cost": outcome.usage.cost}
    if not outcome.ok:
        return _result(work, error=str(outcome.error), output_tail=outcome.output_tail, **usage)
    return _result(work, status="succeeded", output_tail=outcome.output_tail, **usage)
