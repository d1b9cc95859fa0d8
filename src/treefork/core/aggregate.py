"""Fan-in: from the domains' results to the job's files, tests verdict, failures and status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from treefork.state import DomainResult, Failure

__all__ = ("JobSummary", "all_tests_passed", "domain_status", "job_budget", "summarize_job")

DomainStatus = Literal["succeeded", "partial", "failed"]


def domain_status(
    *, failed_phase: str | None, total: int, succeeded: int, failed: int, skipped: int
) -> DomainStatus:
    """A domain's status.

    failed: a phase failed (setup, work-item loading, reduce, tests, merging into the
    session), or every item that ran failed; partial: some items failed or were skipped;
    succeeded: everything ran and passed.
    """
    if failed_phase is not None:
        return "failed"
    if total > 0 and failed > 0 and succeeded == 0:
        return "failed"
    if failed > 0 or skipped > 0:
        return "partial"
    return "succeeded"


def all_tests_passed(results: Sequence[Mapping[str, Any]]) -> bool | None:
    """Whether every domain that has a tests command passed it; None when none has one.

    A domain without a tests command (``tests_passed`` None and ``has_tests`` False) is left
    out: it can neither make the verdict true nor false. A domain that has a tests command
    but never got to run it (it failed earlier) counts as not passed.
    """
    with_tests = [result for result in results if result.get("has_tests")]
    if not with_tests:
        return None
    return all(result.get("tests_passed") is True for result in with_tests)


def _failures_of(result: DomainResult) -> list[Failure]:
    # A failure is critical when it belongs to a critical domain that failed as a whole;
    # items that failed in a critical domain that still finished leave the job partial.
    critical = result["critical"] and result["status"] == "failed"
    failures: list[Failure] = []
    for agent in result["agents"]:
        if agent["status"] == "failed":
            failures.append(
                {
                    "domain": result["name"],
                    "item": agent["item_id"],
                    "phase": "map",
                    "error": agent["error"] or "failed",
                    "critical": critical,
                }
            )
    if result["failed_phase"] is not None:
        failures.append(
            {
                "domain": result["name"],
                "item": None,
                "phase": result["failed_phase"],
                "error": result["error"] or "failed",
                "critical": critical,
            }
        )
    return failures


@dataclass(frozen=True, slots=True)
class JobSummary:
    """What the aggregator writes into the state."""

    aggregated_files: list[str]
    all_tests_passed: bool | None
    failures: list[Failure]
    status: Literal["succeeded", "partial", "failed", "skipped"]
    tokens: int
    cost: float
    agent_runs: int


def summarize_job(results: Sequence[DomainResult], *, chosen: int) -> JobSummary:
    """Aggregate the domains' results.

    Status: skipped when no domain was chosen; failed when a critical domain failed (or a
    domain's result is missing); partial when there are only non-critical failures or some
    domain is partial (items skipped for budget or policy); succeeded otherwise.
    """
    failures = [failure for result in results for failure in _failures_of(result)]
    files = sorted(
        {
            path
            for result in results
            if result["merged_into_session"]
            for path in result["files_modified"]
        }
    )
    status: Literal["succeeded", "partial", "failed", "skipped"]
    if chosen == 0:
        status = "skipped"
    elif any(failure["critical"] for failure in failures) or len(results) < chosen:
        status = "failed"
    elif failures or any(result["status"] != "succeeded" for result in results):
        status = "partial"
    else:
        status = "succeeded"
    return JobSummary(
        aggregated_files=files,
        all_tests_passed=all_tests_passed(results),
        failures=failures,
        status=status,
        tokens=sum(result["tokens"] for result in results),
        cost=sum(result["cost"] for result in results),
        agent_runs=sum(result["agent_runs"] for result in results),
    )


def job_budget(
    limit: Mapping[str, Any],
    analyzer_used: Mapping[str, Any],
    results: Sequence[DomainResult],
) -> dict[str, Any]:
    """The job's budget state from its domains' results (pure).

    Args:
        limit: ``tokens``, ``cost`` and ``agent_runs`` limits (None: unlimited).
        analyzer_used: What choosing the domains spent (``tokens``, ``cost``).
        results: The domains' results; their agents' tokens, cost and attempts count.

    Returns:
        A ``treefork.state.BudgetState``: the use is what the results say, so the figure
        is the same however often the job was interrupted and resumed. ``exhausted`` is
        true when the budget stopped an item or a retry.
    """
    skipped_for_budget = any(
        str(agent.get("skip_reason") or "").startswith("budget")
        for result in results
        for agent in result["agents"]
    )
    started = [result["started_at"] for result in results]
    finished = [result["finished_at"] for result in results]
    return {
        "limit": {key: limit.get(key) for key in ("tokens", "cost", "agent_runs")},
        "used": {
            "tokens": int(analyzer_used.get("tokens", 0)) + sum(r["tokens"] for r in results),
            "cost": float(analyzer_used.get("cost", 0.0)) + sum(r["cost"] for r in results),
            "agent_runs": sum(r["agent_runs"] for r in results),
            "wall_time": max(finished) - min(started) if results else 0.0,
        },
        "exhausted": skipped_for_budget,
    }
