"""What one running job holds besides its state: worktrees, limits, budget, events.

A :class:`JobRuntime` lives for one dispatcher run; domain sub-graphs receive it through
their config (``configurable["treefork_runtime"]``). None of it is checkpointed: everything
needed to resume is in the graph state, the job store and git.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio
from langchain_core.runnables import RunnableConfig

from treefork.core.budget import BudgetUse, exhausted_reason
from treefork.domain import Budget
from treefork.events import Emitter
from treefork.git.repository import RepositoryInfo
from treefork.git.worktrees import WorktreeManager
from treefork.settings import GraphSettings
from treefork.steps import Usage
from treefork.store.recorder import JobRecorder

__all__ = ("RUNTIME_KEY", "BudgetTracker", "JobRuntime", "runtime_from")

RUNTIME_KEY = "treefork_runtime"


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


def runtime_from(config: RunnableConfig) -> JobRuntime:
    """The job runtime a domain sub-graph was given."""
    runtime = (config.get("configurable") or {}).get(RUNTIME_KEY)
    if not isinstance(runtime, JobRuntime):
        raise RuntimeError(
            "domain sub-graphs run inside the dispatcher, which provides the runtime"
        )
    return runtime
