"""The setup phase: prepare the domain worktree and its work items."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from treefork.core.items import WorkItem
from treefork.domain import Domain
from treefork.phases.items import load_work_items
from treefork.runners.steps import StepContext, StepsOutcome, run_steps
from treefork.runtime import JobRuntime

__all__ = ("load_domain_items", "run_setup")


async def run_setup(
    runtime: JobRuntime, domain: Domain, worktree: Path, variables: dict[str, Any]
) -> StepsOutcome:
    """Run the domain's setup steps in order in its worktree; captures land in ``variables``."""
    context = StepContext(
        phase="setup",
        domain=domain.name,
        job_id=runtime.job_id,
        worktree=worktree,
        variables=variables,
        env=domain.env,
        claude_command=runtime.settings.claude_command,
        emit=runtime.emitter,
        workflow=runtime.settings.name,
    )
    outcome = await run_steps(domain.setup, context)
    runtime.budget.record(outcome.usage)
    return outcome


async def load_domain_items(domain: Domain, worktree: Path) -> list[WorkItem]:
    """The domain's selected work items (after setup, from its worktree)."""
    assert domain.map is not None
    return await load_work_items(domain.map, worktree=worktree, env=domain.env, domain=domain.name)
