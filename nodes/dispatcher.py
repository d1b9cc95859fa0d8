"""The dispatcher node: runs the chosen domains' sub-graphs concurrently.

Each domain runs its compiled sub-graph inside its own worktree; ``asyncio.gather`` with
``return_exceptions=True`` means one domain failing never cancels its siblings. One
job-wide limiter caps the agents running at once across all domains.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from typing import Any

import anyio
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from treefork.core.budget import BudgetUse
from treefork.events import Emitter, stream_writer_or_none
from treefork.git.repository import open_repository
from treefork.git.worktrees import WorktreeManager
from treefork.home import treefork_home
from treefork.runtime import RUNTIME_KEY, BudgetTracker, JobRuntime
from treefork.settings import GraphSettings
from treefork.state import DomainResult, ParallelState
from treefork.store.lock import JobLock
from treefork.store.recorder import JobRecorder

__all__ = ("crashed_domain_result", "dispatcher")


def crashed_domain_result(
    name: str, critical: bool, error: BaseException, started: float
) -> DomainResult:
    """The result of a domain whose sub-graph raised instead of finishing."""
    return {
        "name": name,
        "status": "failed",
        "critical": critical,
        "branch": "",
        "worktree": None,
        "error": f"{type(error).__name__}: {error}",
        "failed_phase": "domain",
        "total": 0,
        "succeeded": 0,
        "failed": 0,
        "skipped": 0,
        "agents": [],
        "files_modified": [],
        "has_tests": False,
        "tests_passed": None,
        "tests_output": "",
        "merged_into_session": False,
        "kept_worktrees": [],
        "tokens": 0,
        "cost": 0.0,
        "agent_runs": 0,
        "started_at": started,
        "finished_at": time.time(),
    }


def _budget_tracker(settings: GraphSettings, state: ParallelState) -> BudgetTracker:
    used = (state.get("budget") or {}).get("used") or {}
    return BudgetTracker(
        settings.budget,
        BudgetUse(
            int(used.get("tokens", 0)), float(used.get("cost", 0.0)), int(used.get("agent_runs", 0))
        ),
    )


async def _runtime(state: ParallelState, settings: GraphSettings) -> JobRuntime:
    repo = await open_repository(state["repo"], state["base_branch"])
    job_id = state["job_id"]
    home = await anyio.to_thread.run_sync(treefork_home, settings.home)
    writer = stream_writer_or_none()
    sinks = [writer, *settings.event_sinks] if writer else list(settings.event_sinks)
    store = await anyio.to_thread.run_sync(settings.store.get, home) if settings.store else None
    recorder = JobRecorder(store, job_id)
    budget = _budget_tracker(settings, state)
    # Agents recorded by an earlier, interrupted run of this job spent budget too.
    for row in await recorder.agents():
        if row["result"]:
            result = row["result"]
            budget.used = budget.used.add(
                tokens=int(result["tokens"]),
                cost=float(result["cost"]),
                agent_runs=int(result["attempts"]),
            )
    return JobRuntime(
        settings=settings,
        repo=repo,
        job_id=job_id,
        worktrees=WorktreeManager(repo, job_id, home),
        emitter=Emitter(job_id, sinks),
        budget=budget,
        session_branch=state["session_branch"],
        base_commit=state["base_commit"],
        global_limiter=anyio.CapacityLimiter(settings.max_parallel),
        recorder=recorder,
    )


async def _record_job(runtime: JobRuntime, state: ParallelState) -> None:
    await runtime.recorder.job_started(
        repo=str(runtime.repo.root),
        task=state.get("task"),
        base_branch=state["base_branch"],
        base_commit=state["base_commit"],
        session_branch=state["session_branch"],
        pid=os.getpid(),
    )
    await runtime.recorder.resource(
        "branch", state["session_branch"], role="session", repo=str(runtime.repo.root)
    )


async def _run_domain(
    runtime: JobRuntime,
    name: str,
    graph: CompiledStateGraph[Any, Any, Any, Any],
    config: RunnableConfig,
) -> DomainResult:
    # A domain whose result is recorded finished before this run: it is not run again.
    recorded = await runtime.recorder.domain(name)
    if recorded and recorded.get("result"):
        runtime.emitter.emit(
            "resume", domain=name, phase="domain", action="skip", reason="domain finished before"
        )
        result: DomainResult = recorded["result"]
        return result
    outcome = await graph.ainvoke({"domain": name, "job_id": runtime.job_id}, config)
    return outcome["result"]  # type: ignore[no-any-return]


async def dispatcher(
    state: ParallelState,
    config: RunnableConfig,
    *,
    settings: GraphSettings,
    domain_graphs: Mapping[str, CompiledStateGraph[Any, Any, Any, Any]],
) -> dict[str, Any]:
    """Run every chosen domain concurrently; collect their results.

    Returns:
        ``domain_results`` (one per chosen domain, crashed ones as failed results),
        ``session_worktree`` and the ``budget`` as used so far.
    """
    names = [choice["name"] for choice in state.get("domains") or []]
    if not names:
        return {"domain_results": {}}
    # One process at a time runs a job (re-entrant: the CLI holds it around the whole run).
    home = await anyio.to_thread.run_sync(treefork_home, settings.home)
    lock = JobLock(home, state["job_id"])
    await anyio.to_thread.run_sync(lock.acquire)
    try:
        return await _dispatch(state, settings, domain_graphs, names)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(lock.release)


async def _dispatch(
    state: ParallelState,
    settings: GraphSettings,
    domain_graphs: Mapping[str, CompiledStateGraph[Any, Any, Any, Any]],
    names: list[str],
) -> dict[str, Any]:
    runtime = await _runtime(state, settings)
    # Domains merge into the session branch in the object store: the branch is all they
    # need. Its worktree is made at the end, and only when someone will look at it or
    # run merge steps in it.
    await runtime.worktrees.create_branch(state["session_branch"], runtime.base_commit)
    await _record_job(runtime, state)
    child_config: RunnableConfig = {"configurable": {RUNTIME_KEY: runtime}}
    started = time.time()
    outcomes = await asyncio.gather(
        *(_run_domain(runtime, name, domain_graphs[name], child_config) for name in names),
        return_exceptions=True,
    )
    results: dict[str, DomainResult] = {}
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, Exception):
                raise outcome  # cancellation and interrupts propagate
            critical = settings.domain(name).critical
            results[name] = crashed_domain_result(name, critical, outcome, started)
        else:
            results[name] = outcome
    update: dict[str, Any] = {"domain_results": results, "budget": runtime.budget.as_state()}
    if _session_worktree_needed(state, settings):
        # The session worktree shows the merged result for review before approval.
        session = await runtime.worktrees.session_worktree(runtime.base_commit)
        runtime.emitter.emit(
            "worktree", action="created", path=str(session.path), branch=session.branch
        )
        await runtime.recorder.resource(
            "worktree", str(session.path), role="session", repo=str(runtime.repo.root)
        )
        # A worktree made before a crash may still hold the files of the base commit.
        await runtime.worktrees.sync_worktree(session.path, runtime.base_commit)
        update["session_worktree"] = str(session.path)
    return update


def _session_worktree_needed(state: ParallelState, settings: GraphSettings) -> bool:
    """Whether the job's result gets a worktree: for a person to review before approving,
    for merge steps to run in, or to be kept."""
    auto = state.get("auto_approve", settings.auto_approve)
    return not auto or bool(settings.merge_steps) or settings.keep_worktrees
