"""Printing a finished job: the aggregate table and the merge outcome."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ("print_summary",)

_STYLE = {"succeeded": "green", "partial": "yellow", "failed": "red", "skipped": "dim"}


def _tests(result: dict[str, Any]) -> str:
    if not result.get("has_tests"):
        return "-"
    passed = result.get("tests_passed")
    return "not run" if passed is None else "passed" if passed else "failed"


def _verdict(passed: bool | None) -> str:
    return "no tests" if passed is None else "yes" if passed else "no"


def print_summary(state: dict[str, Any], console: Console) -> None:
    """The per-domain table, the aggregate line and the merge outcome."""
    table = Table(title=f"treefork job {state.get('job_id', '?')}", title_justify="left")
    for column in (
        "domain",
        "status",
        "agents ok",
        "failed",
        "skipped",
        "files",
        "tests",
        "merged into session",
    ):
        table.add_column(column)
    for name, result in (state.get("domain_results") or {}).items():
        status = result["status"]
        table.add_row(
            name,
            f"[{_STYLE.get(status, 'white')}]{status}[/]",
            str(result["succeeded"]),
            str(result["failed"]),
            str(result["skipped"]),
            str(len(result["files_modified"])),
            _tests(result),
            "yes" if result["merged_into_session"] else "no",
        )
    console.print(table)
    status = state.get("status", "?")
    budget = (state.get("budget") or {}).get("used") or {}
    files = len(state.get("aggregated_files") or [])
    console.print(
        f"status: [{_STYLE.get(status, 'white')}]{status}[/]   files: {files}"
        f"   all tests passed: {_verdict(state.get('all_tests_passed'))}"
        f"   agent runs: {budget.get('agent_runs', 0)}"
        f"   wall time: {budget.get('wall_time', 0.0):.1f}s"
    )
    for failure in state.get("failures") or []:
        where = failure["domain"] + (f"/{failure['item']}" if failure["item"] else "")
        flag = "critical" if failure["critical"] else "non-critical"
        console.print(f"  [red]failure[/] {where} ({failure['phase']}, {flag}): {failure['error']}")
    if state.get("routing_message"):
        console.print(f"[yellow]{state['routing_message']}[/]")
    merge = state.get("merge") or {}
    if merge:
        console.print(f"merge: [bold]{merge.get('status')}[/] — {merge.get('message')}")
