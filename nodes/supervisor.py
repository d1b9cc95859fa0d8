"""The supervisor node: reads the task, opens the repository, picks the domains."""

from __future__ import annotations

import secrets
import time
from typing import Any

from treefork.core import naming
from treefork.errors import InputError
from treefork.events import Emitter, stream_writer_or_none
from treefork.git.repository import open_repository
from treefork.runtime import BudgetTracker
from treefork.settings import GraphSettings
from treefork.state import ParallelState

__all__ = ("new_job_id", "supervisor")


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
        RepositoryError: The repository cannot be used.
    """
    task, repo_path, job_id = _validated_input(state, settings.repo)
    repo = await open_repository(repo_path, state.get("base_branch"))
    selection = await settings.analyzer.select(task, settings.specs())
    defined = {domain.name for domain in settings.domains}
    choices = [
        {"name": name, "reason": reason} for name, reason in selection.choices if name in defined
    ]
    budget = BudgetTracker(settings.budget)
    budget.record(selection.usage)
    message = None
    if not choices:
        message = selection.note or "no domain matched the task"
    writer = stream_writer_or_none()
    emitter = Emitter(
        job_id, [writer, *settings.event_sinks] if writer else list(settings.event_sinks)
    )
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
        "budget": budget.as_state(),
        "status": "running",
    }
