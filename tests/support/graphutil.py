"""Helpers for tests that run one ``docs`` domain through the whole graph, auto-approved."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from treefork import Domain, Map, build_graph


def docs_domain(
    agent: list[Any],
    items: list[Any],
    *,
    max_parallel: int = 2,
    isolation: Literal["worktree", "none"] = "worktree",
    auto_commit: bool = True,
    **domain_options: Any,
) -> Domain:
    """A ``docs`` domain (chosen by "docs" in the task) whose map runs ``agent`` per item."""
    return Domain(
        "docs",
        keywords=["docs"],
        map=Map(
            input=items,
            agent=agent,
            max_parallel=max_parallel,
            isolation=isolation,
            auto_commit=auto_commit,
        ),
        **domain_options,
    )


async def run_docs(repo: Path, domain: Domain, **graph_options: Any) -> dict[str, Any]:
    """Run the task "fix the docs" on ``repo``, merging without review."""
    graph = build_graph([domain], auto_approve=True, **graph_options)
    return dict(await graph.ainvoke({"task": "fix the docs", "repo": str(repo)}))


def agents_by_item(out: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The docs domain's agent results by item."""
    return {str(agent["item"]): agent for agent in out["domain_results"]["docs"]["agents"]}
