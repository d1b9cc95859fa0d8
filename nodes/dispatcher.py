"""The dispatcher node: opens the job and fans out to the chosen domains' sub-graphs.

The dispatcher prepares what every domain needs (the job lock, the session branch, the job's
record) and :func:`route_domains` sends each chosen domain its input with ``Send``. Each
domain's node is its compiled sub-graph, so LangGraph itself runs the domains concurrently,
each under a namespace that names it; one job-wide limiter (in the job runtime) caps the
agents running at once across all of them.
"""

from __future__ import annotations

import os
from typing import Any

from langgraph.types import Send

from treefork.context import run_settings
from treefork.runtime import JobRuntime, open_job_runtime
from treefork.settings import GraphSettings
from treefork.state import DomainInput, ParallelState

__all__ = ("dispatcher", "domain_input", "route_domains")


def domain_input(state: ParallelState, name: str) -> DomainInput:
    """What the dispatcher sends one domain: its name and the job's identity."""
    return {
        "domain": name,
        "job_id": state["job_id"],
        "repo": state["repo"],
        "base_branch": state["base_branch"],
        "base_commit": state["base_commit"],
        "session_branch": state["session_branch"],
    }


def route_domains(state: ParallelState) -> list[Send] | str:
    """One ``Send`` per chosen domain, to the node named after it; the aggregator when no
    domain was chosen."""
    names = [choice["name"] for choice in state.get("domains") or []]
    if not names:
        return "aggregator"
    return [Send(name, domain_input(state, name)) for name in names]


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


async def dispatcher(state: ParallelState, *, settings: GraphSettings) -> dict[str, Any]:
    """Open the job for the chosen domains: take its lock, create the session branch and
    record the job. The domains themselves run next, as nodes of their own.

    Raises:
        JobLockedError: Another process runs the job.
        RepositoryError: The repository cannot be used.
    """
    if not state.get("domains"):
        return {}
    runtime = await open_job_runtime(state, settings, run_settings(settings))
    # Domains merge into the session branch in the object store: the branch is all they
    # need. Its worktree is made at the end, and only when someone will look at it or run
    # merge steps in it.
    await runtime.worktrees.create_branch(state["session_branch"], runtime.base_commit)
    await _record_job(runtime, state)
    return {}
