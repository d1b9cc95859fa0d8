"""The supervisor node: reads the task, opens the repository, picks the domains."""

from __future__ import annotations

import secrets
import time
from typing import Any

from treefork.context import run_settings
from treefork.core import naming
from treefork.errors import InputError
from treefork.git.repository import check_checkout_ready, open_repository
from treefork.runtime import BudgetTracker, job_emitter
from treefork.settings import GraphSettings
from treefork.state import ParallelState

__all__ = ("new_job_id", "refuse_sync_invoke", "supervisor")


def new_job_id() -> str:
    """A job id: the start time plus a random suffix (``20261121-141503-a3f9``)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


def _validated_input(state: ParallelState, default_repo: str | None) -> tuple[str, str, str]:
    task = state.get("task")
    if not isinstance(task, str) or not task.strip():
        raise InputError("task", "give the task as a non-empty string")
    repo = state.get("repo") or default_repo
    if not isinstance(repo, str) or not repo.strip():
        raise InputError("repo", "give the path of a git repository")
    job_id = state.get("job_id") or new_job_id()
    if not naming.is_valid_name(job_id):
        raise InputError(
            "job_id", f"{job_id!r} cannot be used in branch names (letters, digits, '.', '_', '-')"
        )
    return task, repo, job_id


async def supervisor(state: ParallelState, *, settings: GraphSettings) -> dict[str, Any]:
    """Choose the domains the task touches.

    Reads ``task``, ``repo`` (else the graph's default repository) and optionally
    ``base_branch`` and ``job_id``; writes the
    job's identity (job id, base branch and commit, session branch) and ``domains`` with a
    reason for each. When nothing is chosen, ``routing_message`` says why.

    Raises:
        InputError: The task, repository path or job id is missing or invalid.
        RepositoryError: The repository cannot be used (bare, no commits, detached HEAD,
            or a merge, rebase or conflict under way in the checkout).
    """
    task, repo_path, job_id = _validated_input(state, settings.repo)
    repo = await open_repository(repo_path, state.get("base_branch"))
    await check_checkout_ready(repo)
    selection = await settings.analyzer.select(task, settings.specs())
    defined = {domain.name for domain in settings.domains}
    choices = [
        {"name": name, "reason": reason} for name, reason in selection.choices if name in defined
    ]
    settings = run_settings(settings)
    budget = BudgetTracker(settings.budget)
    budget.record(selection.usage)
    message = None
    if not choices:
        message = selection.note or "no domain matched the task"
    emitter = job_emitter(settings, job_id)
    emitter.emit(
        "job_start", task=task, repo=str(repo.root), base_branch=repo.branch, base_commit=repo.head
    )
    emitter.emit("routing", domains=choices, analyzer=selection.analyzer, note=selection.note)
    return {
        "task": task,
        "repo": str(repo.root),
        "job_id": job_id,
        "base_branch": repo.branch,
        "base_commit": repo.head,
        "session_branch": naming.session_branch(job_id),
        "domains": choices,
        "routing_message": message,
        "analyzer": selection.analyzer,
        "analyzer_usage": {"tokens": selection.usage.tokens, "cost": selection.usage.cost},
        "budget": budget.as_state(),
        "status": "running",
    }


def refuse_sync_invoke(state: ParallelState) -> dict[str, Any]:
    """The supervisor's synchronous form: treefork graphs run asynchronously only.

    Raises:
        InputError: Always, saying to use the async API.
    """
    raise InputError(
        "invoke",
        "treefork graphs run asynchronously: use `await graph.ainvoke(...)` or "
        "`graph.astream(...)` (in a script, `asyncio.run(graph.ainvoke(...))`)",
    )
