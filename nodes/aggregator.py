"""The aggregator node (fan-in): files, tests verdict, budget, failures and job status.

It runs once every chosen domain's sub-graph has finished. Besides the aggregate it closes
the job in this process (its lock and open worktree pools) and makes the session worktree
when someone will look at the result before approving it.
"""

from __future__ import annotations

from typing import Any

from treefork.context import run_settings
from treefork.core.aggregate import job_budget, summarize_job
from treefork.runtime import close_job_runtime, open_job_runtime
from treefork.settings import GraphSettings
from treefork.state import ParallelState

__all__ = ("aggregate", "aggregator")


def aggregate(state: ParallelState) -> dict[str, Any]:
    """The job's aggregate from the chosen domains' results (pure).

    ``aggregated_files`` (sorted union of the files of domains merged into the session),
    ``all_tests_passed`` (see :func:`treefork.core.aggregate.all_tests_passed`),
    ``failures`` (each with its critical flag), ``budget`` (with wall time) and ``status``.
    """
    chosen = [choice["name"] for choice in state.get("domains") or []]
    by_name = state.get("domain_results") or {}
    results = [by_name[name] for name in chosen if name in by_name]
    summary = summarize_job(results, chosen=len(chosen))
    limit = (state.get("budget") or {}).get("limit") or {}
    return {
        "aggregated_files": summary.aggregated_files,
        "all_tests_passed": summary.all_tests_passed,
        "failures": summary.failures,
        "status": summary.status,
        "budget": job_budget(limit, state.get("analyzer_usage") or {}, results),
    }


async def aggregator(state: ParallelState, *, settings: GraphSettings) -> dict[str, Any]:
    """Merge every domain's result into the job's aggregate (:func:`aggregate`); when the
    result is to be reviewed, also ``session_worktree``."""
    current = run_settings(settings)
    update = aggregate(state)
    if not state.get("domains"):
        return update
    runtime = await open_job_runtime(state, settings, current)
    try:
        if _session_worktree_needed(current):
            update["session_worktree"] = await _session_worktree(runtime)
    finally:
        await close_job_runtime(state["job_id"], settings)
    return update


async def _session_worktree(runtime: Any) -> str:
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
    return str(session.path)


def _session_worktree_needed(settings: GraphSettings) -> bool:
    """Whether the job's result gets a worktree: for a person to review before approving,
    for merge steps to run in, or to be kept."""
    return not settings.auto_approve or bool(settings.merge_steps) or settings.keep_worktrees
