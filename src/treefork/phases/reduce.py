"""The reduce phase, and the domain's tests command that follows it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from treefork.core.items import MAP_FIELDS
from treefork.domain import Domain
from treefork.runners.steps import StepContext, StepsOutcome, run_steps
from treefork.runtime import JobRuntime
from treefork.state import AgentResult

__all__ = ("map_summary", "run_reduce", "run_tests")


def map_summary(results: Mapping[str, AgentResult]) -> dict[str, Any]:
    """The ``map`` variable reduce steps see: successful, failed, skipped, total,
    success_rate (a percentage), results (each with ``success``) and results_json."""
    ordered = sorted(results.values(), key=lambda result: result["item_index"])
    per_item = [
        {
            "item_id": result["item_id"],
            "item": result["item"],
            "status": result["status"],
            "success": result["status"] == "succeeded",
            "error": result["error"],
            "output": result["output_tail"],
            "files": result["files"],
            "commits": result["commits"],
        }
        for result in ordered
    ]
    successful = sum(result["status"] == "succeeded" for result in ordered)
    summary = {
        "successful": successful,
        "failed": sum(result["status"] == "failed" for result in ordered),
        "skipped": sum(result["status"] == "skipped" for result in ordered),
        "total": len(ordered),
        "success_rate": round(100 * successful / len(ordered), 1) if ordered else 0.0,
        "results": per_item,
        "results_json": json.dumps(per_item),
    }
    assert set(summary) == MAP_FIELDS
    return summary


def _context(
    runtime: JobRuntime, domain: Domain, worktree: Path, phase: str, variables: dict[str, Any]
) -> StepContext:
    return StepContext(
        phase=phase,
        domain=domain.name,
        job_id=runtime.job_id,
        worktree=worktree,
        variables=variables,
        env=domain.env,
        claude_command=runtime.settings.claude_command,
        emit=runtime.emitter,
        workflow=runtime.settings.name,
    )


async def run_reduce(
    runtime: JobRuntime, domain: Domain, worktree: Path, variables: dict[str, Any]
) -> StepsOutcome:
    """Run the reduce steps in the domain worktree (with the agents' work checked out)."""
    outcome = await run_steps(
        domain.reduce, _context(runtime, domain, worktree, "reduce", variables)
    )
    runtime.budget.record(outcome.usage)
    return outcome


async def run_tests(
    runtime: JobRuntime, domain: Domain, worktree: Path, variables: dict[str, Any]
) -> StepsOutcome | None:
    """Run the domain's tests command; None when it has none."""
    step = domain.tests_step
    if step is None:
        return None
    return await run_steps([step], _context(runtime, domain, worktree, "tests", variables))
