"""The same agent work on both sides: wait, write one file, commit it.

treefork runs it as an :class:`~treefork.AgentStep` through the real graph (``build_graph``,
supervisor, dispatcher, domain sub-graph, merge review with auto-approve); the peer runs it
inside its hand-written ``Send`` fan-out (:mod:`peer`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from common import WORK
from peer import run_peer

from treefork import AgentStep, Domain, Map, build_graph


async def _git(cwd: Path, *args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "git", *args, cwd=cwd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {stderr.decode()}")


def _write(worktree: Path, item: str) -> None:
    target = worktree / "out" / f"{item}.txt"
    target.parent.mkdir(exist_ok=True)
    target.write_text(f"result of {item}\n")


def peer_work(seconds: float) -> Any:
    """The peer's agent work (the peer commits it under its lock)."""

    async def work(worktree: Path, item: str) -> None:
        await asyncio.sleep(seconds)
        _write(worktree, item)

    return work


def treefork_agent(seconds: float, *, commit: bool = True) -> Any:
    """A treefork agent doing the same work and committing it itself."""

    async def agent(context: Any) -> None:
        await asyncio.sleep(seconds)
        if not commit:
            return
        item = str(context.item)
        _write(context.worktree, item)
        await _git(context.worktree, "add", "-A")
        await _git(context.worktree, "commit", "-q", "-m", f"agent {item}")

    return agent


def items(count: int) -> list[str]:
    """Item names."""
    return [f"i{index:05d}" for index in range(count)]


async def run_treefork(
    repo: Path,
    count: int,
    *,
    seconds: float,
    max_parallel: int,
    isolation: str = "worktree",
    events: list[dict[str, Any]] | None = None,
    store: bool = True,
) -> dict[str, Any]:
    """One job through treefork's graph; returns the final state (checked for success).

    ``events`` (if given) receives every progress event; ``store=False`` runs without the
    job store (no durable records of agents and events).
    """
    commit = isolation == "worktree"
    domain = Domain(
        "bench",
        keywords=["bench"],
        map=Map(
            input=items(count),
            agent=[AgentStep(treefork_agent(seconds, commit=commit))],
            max_parallel=max_parallel,
            isolation=isolation,  # type: ignore[arg-type]
        ),
    )
    graph = build_graph(
        [domain],
        max_parallel=max_parallel,
        auto_approve=True,
        home=WORK / "home",
        event_sinks=[events.append] if events is not None else (),
        **({} if store else {"job_store": False}),
    )
    out = await graph.ainvoke({"task": "bench", "repo": str(repo)}, {"recursion_limit": 100})
    result = out["domain_results"]["bench"]
    if result["succeeded"] != count or out["merge"]["status"] not in (
        "merged",
        "skipped",
        "nothing_to_merge",
    ):
        failed = [agent["error"] for agent in result["agents"] if agent["status"] != "succeeded"]
        raise RuntimeError(
            f"treefork run failed: {result['status']}, {result['error']}, {failed[:3]}"
        )
    return dict(out)


async def run_peer_job(
    repo: Path,
    count: int,
    *,
    seconds: float,
    max_parallel: int,
    spans: list[tuple[float, float]] | None = None,
) -> list[str]:
    """One job through the peer (checked for success)."""
    folder = WORK / "peer"
    folder.mkdir(parents=True, exist_ok=True)
    done = await run_peer(
        repo, folder, items(count), peer_work(seconds), max_parallel=max_parallel, spans=spans
    )
    if len(done) != count:
        raise RuntimeError(f"peer finished {len(done)} of {count}")
    return done
