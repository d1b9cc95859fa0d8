"""The dispatcher node: runs the chosen domains' sub-graphs concurrently.

Each domain runs its compiled sub-graph inside its own worktree; ``asyncio.gather`` with
``return_exceptions=True`` means one domain failing never cancels its siblings. One
job-wide limiter caps the agents running at once across all domains.
"""

from __future__ import annotations

import asyncio
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

__all__ = ("crashed_domain_result", "dispatcher")


def crashed_domain_result(name: str, critical: bool, error: BaseException, started: float) -> DomainResult:
    """The result of a domain whose sub-graph raised instead of finishing."""
    return {
        "name": name, "status": "failed", "critical": critical, "branch": "", "worktree": None,
        "error": f"{type(error).__name__}: {error}", "failed_phase": "domain", "total": 0,
        "succeeded": 0, "failed": 0, "skipped": 0, "agents": [], "files_modified": [],
        "has_tests": False, "tests_passed": None, "tests_output": "", "merged_into_session": False,
        "kept_worktrees": [], "tokens": 0, "cost": 0.0, "agent_runs": 0,
        "started_at": started, "finished_at": time.time(),
    }


def _budget_tracker(settings: GraphSettings, state: ParallelState) -> BudgetTracker:
    used = (state.get("budget") or {}).get("used") or {}
    return BudgetTracker(
        settings.budget,
        BudgetUse(int(used.get("tokens", 0)), float(used.get("cost", 0.0)), int(used.get("agent_runs", 0))),
    )


async def _runtime(state: ParallelState, settings: GraphSettings) -> JobRuntime:
    repo = await open_repository(state["repo"], state["base_branch"])
    job_id = state["job_id"]
    writer = stream_writer_or_none()
    sinks = [writer, *settings.event_sinks] if writer else list(settings.event_sinks)
    return JobRuntime(
        settings=settings,
        repo=repo,
        job_id=job_id,
        worktrees=WorktreeManager(repo, job_id, treefork_home(settings.home)),
        emitter=Emitter(job_id, sinks),
        budget=_budget_tracker(settings, state),
        session_branch=state["session_branch"],
        base_commit=state["base_commit"],
        global_limiter=anyio.CapacityLimiter(settings.max_parallel),
    )


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
    runtime = await _runtime(state, settings)
    session = await runtime.worktrees.session_worktree(runtime.base_commit)
    runtime.emitter.emit("worktree", action="created", path=str(session.path), branch=session.branch)
    child_config: RunnableConfig = {"configurable": {RUNTIME_KEY: runtime}}
    started = time.time()
    outcomes = await asyncio.gather(
        *(
            domain_graphs[name].ainvoke({"domain": name, "job_id": runtime.job_id}, child_config)
            for name in names
        ),
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
            results[name] = outcome["result"]
    # The session worktree shows the merged result for review before approval.
    await runtime.worktrees.sync_worktree(session.path, runtime.base_commit)
    return {
        "domain_results": results,
        "session_worktree": str(session.path),
        "budget": runtime.budget.as_state(),
    }
