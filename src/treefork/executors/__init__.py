"""Executors: where map agents run.

By default every agent runs in this process's machine, in a worktree of the user's
repository (the local executor, built into the map phase). A remote executor runs each
agent attempt elsewhere: it receives an :class:`~treefork.executors.node.AgentTask`, runs it
on a worker node (:func:`~treefork.executors.node.run_agent_on_node`) and returns an
:class:`~treefork.executors.node.AgentOutcome` whose commits come back as a git bundle. The
coordinator (the LangGraph run) keeps everything else: limits, budget, retries, the DLQ,
the job store and the serial merge queue.

:class:`RayExecutor` runs agents on a Ray cluster; it needs the ``ray`` extra
(``pip install 'treefork[ray]'``), and Ray is imported only when it is used.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from treefork.executors.node import AgentOutcome, AgentTask

if TYPE_CHECKING:
    from treefork.executors.ray import RayExecutor

__all__ = ("AgentOutcome", "AgentTask", "BaseContent", "Executor", "RayExecutor")


@dataclass(frozen=True)
class BaseContent:
    """A domain's base commit, as the nodes get it.

    Attributes:
        key: Names the content (repository and commit): sent once per key.
        commit: The commit.
        bundle: Makes the bundle of the commit (called at most once per key).
        publish: Pushes the commit to the executor's shared remote instead, when it has one.
    """

    key: str
    commit: str
    bundle: Callable[[], Awaitable[bytes]]
    publish: Callable[[str], Awaitable[None]]


class Executor(abc.ABC):
    """Runs map agent attempts away from the coordinator."""

    name: str = "remote"

    @abc.abstractmethod
    async def run_agent(self, task: AgentTask, base: BaseContent) -> AgentOutcome:
        """Run one attempt and return what it did; cancelled, it stops the attempt.

        Failures of the agent or of the machine it ran on are in the outcome, not raised.
        """

    @property
    def remote_url(self) -> str | None:
        """A shared git remote the nodes fetch base commits from (None: bundles)."""
        return None

    def describe(self) -> str:
        """One line naming the executor and where it runs agents."""
        return self.name


def __getattr__(name: str) -> Any:
    if name == "RayExecutor":
        from treefork.extras import require  # noqa: PLC0415 (Ray only when asked for)

        require("ray", "the Ray executor")
        from treefork.executors.ray import RayExecutor  # noqa: PLC0415

        return RayExecutor
    raise AttributeError(name)
