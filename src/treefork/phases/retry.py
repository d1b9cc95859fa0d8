"""Retrying dead letters: failed items run again, successes merge into the same session.

A retry runs each affected domain's sub-graph again in retry mode (``retry_items`` in its
state): setup is not run again (its work items and base commit are recorded), only the
retried items' agents run (each in a new attempt branch from the recorded post-setup
commit; the failed attempts' branches stay), every other item keeps its recorded result,
then reduce and tests run again and the domain merges into the job's session branch.
Branches that cleanup removed after an earlier merge are recreated first: the session
branch where the job's work was merged, a domain branch at the session branch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import anyio

from treefork.core import naming
from treefork.errors import JobError
from treefork.events import Emitter
from treefork.git.repository import open_repository
from treefork.git.worktrees import WorktreeManager
from treefork.home import treefork_home
from treefork.runtime import BudgetTracker, JobRuntime, close_job_runtime, register_job_runtime
from treefork.settings import GraphSettings
from treefork.state import DomainResult
from treefork.store.recorder import JobRecorder

__all__ = ("retry_dead_letters",)


async def _ensure_branch(runtime: JobRuntime, branch: str, start: str) -> str:
    if await runtime.worktrees.create_branch(branch, start):
        runtime.emitter.emit("worktree", action="recreated_branch", branch=branch, commit=start)
        return start
    tip = await runtime.worktrees.branch_head(branch)
    assert tip is not None
    return tip


async def _runtime(
    settings: GraphSettings, job: Mapping[str, Any], max_parallel: int
) -> JobRuntime:
    home = treefork_home(settings.home)
    store = settings.store.get(home) if settings.store else None
    repo = await open_repository(job["repo"], job["base_branch"])
    return JobRuntime(
        settings=settings,
        repo=repo,
        job_id=job["job_id"],
        worktrees=WorktreeManager(repo, job["job_id"], home),
        emitter=Emitter(job["job_id"], list(settings.event_sinks)),
        # A retry is an explicit request: the job's budget does not stop it (its use is
        # still recorded with each agent).
        budget=BudgetTracker(None),
        session_branch=job["session_branch"],
        base_commit=job["base_commit"],
        global_limiter=anyio.CapacityLimiter(max_parallel),
        recorder=JobRecorder(store, job["job_id"]),
    )


async def retry_dead_letters(
    settings: GraphSettings,
    domain_graphs: Mapping[str, Any],
    job: Mapping[str, Any],
    items: Mapping[str, Sequence[str]],
    *,
    max_parallel: int | None = None,
) -> dict[str, DomainResult]:
    """Run a finished job's failed items again and merge the successes into its session.

    Args:
        settings: The settings of the job's graph (its domains and store).
        domain_graphs: Compiled domain sub-graphs by name (``build_domain_graph``).
        job: The job's row in the job store.
        items: Item ids to retry, by domain.
        max_parallel: Agents at once across the domains (default: the graph's).

    Returns:
        The new result of every retried domain.

    Raises:
        JobError: A domain named has no recorded result (the job has not finished it).
    """
    runtime = await _runtime(settings, job, max_parallel or settings.max_parallel)
    for domain in items:
        recorded = await runtime.recorder.domain(domain)
        if not recorded or not recorded.get("result") or not recorded.get("setup"):
            raise JobError(job["job_id"], f"domain {domain} has not finished; resume the job first")
    start = job.get("merge_commit") or job["base_commit"]
    session_tip = await _ensure_branch(runtime, job["session_branch"], start)
    for domain in items:
        await _ensure_branch(runtime, naming.domain_branch(runtime.job_id, domain), session_tip)
    total = sum(len(ids) for ids in items.values())
    runtime.emitter.emit(
        "dlq", action="retry", items={d: list(ids) for d, ids in items.items()}, total=total
    )
    # The domains' nodes find this runtime (budget off, the given cap) instead of opening one.
    register_job_runtime(runtime)
    try:
        outcomes = await asyncio.gather(
            *(
                domain_graphs[domain].ainvoke(_retry_input(job, domain, ids))
                for domain, ids in items.items()
            )
        )
    finally:
        await close_job_runtime(runtime.job_id)
    await _sync_session(runtime, session_tip)
    results = {
        domain: outcome["domain_results"][domain]
        for domain, outcome in zip(items, outcomes, strict=True)
    }
    for domain, result in results.items():
        retried = set(items[domain])
        done = [
            a["item_id"]
            for a in result["agents"]
            if a["item_id"] in retried and a["status"] == "succeeded"
        ]
        runtime.emitter.emit(
            "dlq",
            action="retried",
            domain=domain,
            resolved=done,
            still_failed=sorted(retried - set(done)),
        )
    return results


def _retry_input(job: Mapping[str, Any], domain: str, ids: Sequence[str]) -> dict[str, Any]:
    return {
        "domain": domain,
        "job_id": job["job_id"],
        "repo": job["repo"],
        "base_branch": job["base_branch"],
        "base_commit": job["base_commit"],
        "session_branch": job["session_branch"],
        "retry_items": list(ids),
    }


async def _sync_session(runtime: JobRuntime, before: str) -> None:
    """Bring a kept session worktree's files up to the session branch after the merges."""
    session = (runtime.worktrees.root / "session").resolve()
    registered = await runtime.worktrees.registered_worktrees()
    if any(path.resolve() == session for path in registered):
        await runtime.worktrees.sync_worktree(session, before)
