"""The peer: parallel agents on one repository, written by hand with LangGraph.

This is what a LangGraph user writes without treefork: a ``Send`` fan-out in which every
agent runs ``git worktree add -b`` from a parent branch, does its work, commits,
``git merge --no-ff`` into the parent worktree and ``git worktree remove``. Concurrent git
commands on one repository fail on git's own lock files, so one ``asyncio.Lock`` is held
around the git calls (never around the work). LangGraph's ``max_concurrency`` caps the agents
running at once.
"""

from __future__ import annotations

import asyncio
import operator
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

Work = Callable[[Path, str], Awaitable[None]]
"""An agent's work: given its worktree and its item, change files (not commit)."""


class PeerState(TypedDict):
    repo: str
    folder: str
    items: list[str]
    parent: str
    done: Annotated[list[str], operator.add]


class AgentInput(TypedDict):
    repo: str
    folder: str
    parent: str
    item: str


async def _git(cwd: str | Path, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "git", *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {stderr.decode()}")
    return stdout.decode()


def build_peer_graph(work: Work, spans: list[tuple[float, float]] | None = None) -> Any:
    """The hand-written graph; ``work`` is what each agent does in its worktree.

    ``spans`` (if given) receives each agent's start and end (``time.perf_counter``).
    """
    lock = asyncio.Lock()

    async def prepare(state: PeerState) -> dict[str, Any]:
        parent = Path(state["folder"]) / "parent"
        async with lock:
            await _git(state["repo"], "worktree", "add", "-q", "-b", "peer/parent", str(parent))
        return {"parent": str(parent)}

    def fan_out(state: PeerState) -> list[Send]:
        return [
            Send(
                "agent",
                {
                    "repo": state["repo"],
                    "folder": state["folder"],
                    "parent": state["parent"],
                    "item": item,
                },
            )
            for item in state["items"]
        ]

    async def agent(state: AgentInput) -> dict[str, Any]:
        started = time.perf_counter()
        item = state["item"]
        branch = f"peer/agent-{item}"
        path = Path(state["folder"]) / f"agent-{item}"
        async with lock:
            await _git(
                state["repo"], "worktree", "add", "-q", "-b", branch, str(path), "peer/parent"
            )
        await work(path, item)
        async with lock:
            await _git(path, "add", "-A")
            await _git(path, "commit", "-q", "-m", f"agent {item}")
            await _git(state["parent"], "merge", "-q", "--no-ff", "-m", f"merge {item}", branch)
            await _git(state["repo"], "worktree", "remove", "--force", str(path))
        if spans is not None:
            spans.append((started, time.perf_counter()))
        return {"done": [item]}

    builder = StateGraph(PeerState)
    builder.add_node("prepare", prepare)
    builder.add_node("agent", agent)
    builder.add_edge(START, "prepare")
    builder.add_conditional_edges("prepare", fan_out, ["agent"])
    builder.add_edge("agent", END)
    return builder.compile()


async def run_peer(
    repo: Path,
    folder: Path,
    items: list[str],
    work: Work,
    *,
    max_parallel: int,
    spans: list[tuple[float, float]] | None = None,
) -> list[str]:
    """Run the peer over ``items`` (worktrees go in ``folder``); returns the items done."""
    graph = build_peer_graph(work, spans)
    state = {"repo": str(repo), "folder": str(folder), "items": items, "parent": "", "done": []}
    out = await graph.ainvoke(state, {"max_concurrency": max_parallel, "recursion_limit": 100})
    return list(out["done"])


def build_peer_readonly_graph(work: Work) -> Any:
    """The hand-written fan-out for agents that only read: no worktree, no git."""

    def fan_out(state: PeerState) -> list[Send]:
        return [
            Send(
                "agent",
                {
                    "repo": state["repo"],
                    "folder": state["folder"],
                    "parent": state["repo"],
                    "item": item,
                },
            )
            for item in state["items"]
        ]

    async def agent(state: AgentInput) -> dict[str, Any]:
        await work(Path(state["repo"]), state["item"])
        return {"done": [state["item"]]}

    builder = StateGraph(PeerState)
    builder.add_node("agent", agent)
    builder.add_conditional_edges(START, fan_out, ["agent"])
    builder.add_edge("agent", END)
    return builder.compile()


async def run_peer_readonly(
    repo: Path, items: list[str], work: Work, max_parallel: int
) -> list[str]:
    """Run the read-only peer over ``items``; returns the items it finished."""
    graph = build_peer_readonly_graph(work)
    state = {"repo": str(repo), "folder": "", "items": items, "parent": "", "done": []}
    out = await graph.ainvoke(state, {"max_concurrency": max_parallel, "recursion_limit": 100})
    return list(out["done"])
