"""The aggregator node (fan-in): files, tests verdict, budget, failures and job status."""

from __future__ import annotations

from typing import Any

from treefork.core.aggregate import summarize_job
from treefork.state import ParallelState

__all__ = ("aggregator",)


def aggregator(state: ParallelState) -> dict[str, Any]:
    """Merge every domain's result into the job's aggregate.

    Writes ``aggregated_files`` (sorted union of the files of domains merged into the
    session), ``all_tests_passed`` (see :func:`treefork.core.aggregate.all_tests_passed`),
    ``failures`` (each with its critical flag), ``budget`` (with wall time) and ``status``.
    """
    chosen = [choice["name"] for choice in state.get("domains") or []]
    by_name = state.get("domain_results") or {}
    results = [by_name[name] for name in chosen if name in by_name]
    summary = summarize_job(results, chosen=len(chosen))
    budget: dict[str, Any] = dict(state.get("budget") or {})
    used = dict(budget.get("used") or {})
    if results:
        used["wall_time"] = max(r["finished_at"] for r in results) - min(
            r["started_at"] for r in results
        )
    budget["used"] = used
    return {
        "aggregated_files": summary.aggregated_files,
        "all_tests_passed": summary.all_tests_passed,
        "failures": summary.failures,
        "status": summary.status,
        "budget": budget,
    }
