"""What one running job holds besides its state: worktrees, limits, budget, events.

A :class:`JobRuntime` holds the live objects every domain and agent task of one job shares in
this process: the job-wide cap on running agents, the budget tracker, each domain's merge
queue and worktree pool. None of it is checkpointed: everything needed to resume is in the
checkpoints, the job store and git. The first node of a job to run in a process opens it
(:func:`open_job_runtime`); a domain resumed after a crash thus opens it from the job's
identity in its own state, without the dispatcher running again. The aggregator, once every
domain is done, closes it (:func:`close_job_runtime`).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from treefork.core.budget import BudgetUse, exhausted_reason
from treefork.domain import Budget
from treefork.events import Emitter, stream_writer_or_none
from treefork.git.repository import RepositoryInfo, open_repository
from treefork.git.worktrees import WorktreeManager
from treefork.home import treefork_home
from treefork.settings import GraphSettings
from treefork.steps import Usage
from treefork.store.lock import JobLock
from treefork.store.recorder import JobRecorder

__all__ = (
    "BudgetTracker",
    "JobRuntime",
    "close_job_runtime",
    "job_emitter",
    "open_job_runtime",
    "register_job_runtime",
)


@dataclass
class BudgetTracker:
    """Counts use against the job's budget; decides whether another agent may start."""

    limit: Budget | None
    used: BudgetUse = field(default_factory=BudgetUse)
    exhausted: str | None = None
    """Why the budget stopped new agents, once it has."""

    def refusal(self) -> str | None:
        """Why no agent may start now (None: one may), without counting one."""
        if self.limit is not None:
            reason = exhausted_reason(
                self.used,
                tokens=self.limit.tokens,
                cost=self.limit.cost,
                agent_runs=self.limit.agent_runs,
            )
            if reason is not None:
                self.exhausted = reason
                return reason
        return None

    def try_start_agent(self) -> str | None:
        """Count one agent run, or return why none may start."""
        reason = self.refusal()
        if reason is None:
            self.used = self.used.add(agent_runs=1)
        return reason

    def record(self, usage: Usage) -> None:
        """Add tokens and cost an agent or analyzer spent."""
        self.used = self.used.add(tokens=usage.tokens, cost=usage.cost)

    def as_state(self) -> dict[str, Any]:
        """The budget as a state value (see ``treefork.state.BudgetState``)."""
        limit = self.limit or Budget()
        return {
            "limit": {"tokens": limit.tokens, "cost": limit.cost, "agent_runs": limit.agent_runs},
            "used": {
                "tokens": self.used.tokens,
                "cost": self.used.cost,
                "agent_runs": self.used.agent_runs,
                "wall_time": 0.0,
            },
            "exhausted": self.exhausted is not None,
        }


@dataclass
class JobRuntime:
    """The live objects of one job."""

    settings: GraphSettings
    repo: RepositoryInfo
    job_id: str
    worktrees: WorktreeManager
    emitter: Emitter
    budget: BudgetTracker
    session_branch: str
    base_commit: str
    global_limiter: anyio.CapacityLimiter
    session_lock: anyio.Lock = field(default_factory=anyio.Lock)
    """Serializes merges into the session branch."""
    recorder: JobRecorder = field(default_factory=lambda: JobRecorder(None, ""))
    """The job's records in the job store (records nothing when the graph has no store)."""
    map_runs: dict[str, Any] = field(default_factory=dict)
    """Each domain's map phase in progress (``treefork.phases.map.MapRun``), shared by its
    agent tasks: the merge queue, the worktree pool, the counts."""
    release_lock: Any = None
    """Gives the job lock back (None: no lock taken)."""
    graph: GraphSettings | None = None
    """The settings of the graph that opened the job (kept: its identity is the key)."""

    locks: dict[str, anyio.Lock] = field(default_factory=dict)

    def opening(self, name: str) -> anyio.Lock:
        """The lock under which the shared object ``name`` is made once."""
        return self.locks.setdefault(name, anyio.Lock())

    async def close(self) -> None:
        """Close what the job's map phases left open, then give the job lock back."""
        runs, self.map_runs = self.map_runs, {}
        for run in runs.values():
            with anyio.CancelScope(shield=True):
                await run.close()
        if self.release_lock is not None:
            release, self.release_lock = self.release_lock, None
            await anyio.to_thread.run_sync(release)


def job_emitter(settings: GraphSettings, job_id: str) -> Emitter:
    """The job's event emitter: the custom stream of whichever graph task emits (so events
    stream under that task's namespace), then the graph's sinks."""
    return Emitter(job_id, [_current_stream, *settings.event_sinks])


def _current_stream(payload: dict[str, Any]) -> None:
    writer = stream_writer_or_none()
    if writer is not None:
        writer(payload)


_RUNTIMES: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, int], JobRuntime]
] = weakref.WeakKeyDictionary()
"""Open jobs per event loop (a limiter belongs to one loop), by job id and graph."""
_OPENING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, anyio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _open_jobs() -> dict[tuple[str, int], JobRuntime]:
    return _RUNTIMES.setdefault(asyncio.get_running_loop(), {})


def _key(job_id: str, graph: GraphSettings | None) -> tuple[str, int]:
    return (job_id, id(graph) if graph is not None else 0)


def register_job_runtime(runtime: JobRuntime) -> None:
    """Make ``runtime`` the open job for its id on this event loop, for every graph (DLQ
    retry opens its own)."""
    _open_jobs()[_key(runtime.job_id, None)] = runtime


async def open_job_runtime(
    job: Mapping[str, Any], graph: GraphSettings, run: GraphSettings | None = None
) -> JobRuntime:
    """The job's runtime on this event loop, opened on first use.

    Args:
        job: The job's identity: ``job_id``, ``repo``, ``base_branch``, ``base_commit`` and
            ``session_branch`` (any domain's state has them).
        graph: The settings of the built graph: each built graph opens the job afresh (a
            graph built again to resume a crashed run gets a runtime of its own).
        run: The settings of this run (context applied); default ``graph``.

    Raises:
        RepositoryError: The repository cannot be used.
        JobLockedError: Another process runs the job.
    """
    job_id = str(job["job_id"])
    jobs = _open_jobs()
    opened = jobs.get(_key(job_id, None)) or jobs.get(_key(job_id, graph))
    if opened is not None:
        return opened
    locks = _OPENING.setdefault(asyncio.get_running_loop(), {})
    async with locks.setdefault(job_id, anyio.Lock()):
        opened = jobs.get(_key(job_id, graph))
        if opened is None:
            # A runtime of the same job from another graph is stale (the graph was built
            # again to resume a crashed run): let it go, with what it held open.
            for key in [key for key in jobs if key[0] == job_id]:
                del jobs[key]
            opened = await _new_runtime(job, run or graph)
            opened.graph = graph
            jobs[_key(job_id, graph)] = opened
    return opened


async def _new_runtime(job: Mapping[str, Any], settings: GraphSettings) -> JobRuntime:
    job_id = str(job["job_id"])
    home = await anyio.to_thread.run_sync(treefork_home, settings.home)
    # One process at a time runs a job (re-entrant: the CLI holds it around the whole run).
    lock = JobLock(home, job_id)
    await anyio.to_thread.run_sync(lock.acquire)
    try:
        repo = await open_repository(job["repo"], job["base_branch"])
        store = await anyio.to_thread.run_sync(settings.store.get, home) if settings.store else None
    except BaseException:
        lock.release()
        raise
    recorder = JobRecorder(store, job_id)
    budget = BudgetTracker(settings.budget)
    # Agents recorded by an earlier, interrupted run of this job spent budget too.
    for row in await recorder.agents():
        if row["result"]:
            result = row["result"]
            budget.used = budget.used.add(
                tokens=int(result["tokens"]),
                cost=float(result["cost"]),
                agent_runs=int(result["attempts"]),
            )
    runtime = JobRuntime(
        settings=settings,
        repo=repo,
        job_id=job_id,
        worktrees=WorktreeManager(repo, job_id, home),
        emitter=job_emitter(settings, job_id),
        budget=budget,
        session_branch=str(job["session_branch"]),
        base_commit=str(job["base_commit"]),
        global_limiter=anyio.CapacityLimiter(settings.max_parallel),
        recorder=recorder,
    )
    runtime.release_lock = lock.release
    # Made by the dispatcher; made again if removed since (``worktree gc`` after a crash
    # removes a session branch that holds nothing yet).
    await runtime.worktrees.create_branch(runtime.session_branch, runtime.base_commit)
    # A job left open (a run that raised) gives its lock back when it is collected.
    weakref.finalize(runtime, lock.release)
    return runtime


async def close_job_runtime(job_id: str, graph: GraphSettings | None = None) -> None:
    """Close the job on this event loop (its domains are done): release its lock."""
    runtime = _open_jobs().pop(_key(job_id, graph), None)
    if runtime is not None:
        await runtime.close()
