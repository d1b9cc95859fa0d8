"""Settings of one built graph: the domains and everything :func:`build_graph` was given."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from treefork.core.routing import Analyzer, DomainSpec
from treefork.domain import Budget, Domain
from treefork.events import EventSink
from treefork.steps import Step
from treefork.store.recorder import StoreRef

if TYPE_CHECKING:
    from treefork.executors import Executor

__all__ = ("GraphSettings",)


@dataclass(frozen=True)
class GraphSettings:
    """Everything the nodes need besides the state; fixed when the graph is built."""

    domains: tuple[Domain, ...]
    """The defined domains, in order."""
    analyzer: Analyzer
    """Chooses domains for a task."""
    max_parallel: int = 8
    """Agents running at once across all domains."""
    budget: Budget | None = None
    """Limits for each job."""
    auto_approve: bool = False
    """Merge into the user's branch without asking (never for a failed job)."""
    home: Path | None = None
    """The treefork home; None means ``$TREEFORK_HOME`` or ``~/.treefork``."""
    claude_command: Sequence[str] | None = None
    """argv template for Claude steps (``{prompt}`` is replaced)."""
    event_sinks: tuple[EventSink, ...] = field(default_factory=tuple)
    """Extra receivers of every progress event."""
    keep_worktrees: bool = False
    """Keep agent and domain worktrees after a successful merge (for debugging)."""
    merge_steps: tuple[Step, ...] = ()
    """Steps run in the session worktree after approval, before merging into the user's
    branch (Prodigy's ``merge``); if one fails, nothing is merged."""
    merge_env: Mapping[str, str] = field(default_factory=dict)
    """Environment for the merge steps (the workflow's ``env``)."""
    history: Literal["merges", "squash"] = "merges"
    """The history a domain leaves in the session branch: every agent's merge commit
    (``merges``), or one commit per domain (``squash``)."""
    store: StoreRef | None = None
    """Where jobs are recorded (agent results, DLQ, events, resume facts); None: nowhere."""
    repo: str | None = None
    """The repository of runs whose input names none."""
    executor: Executor | None = None
    """Where map agents run: None for this machine, else a remote executor (Ray)."""
    name: str | None = None
    """The workflow's name (``${workflow.name}``); None: each domain's name."""
    secrets: tuple[str, ...] = ()
    """Values masked (``***``) in everything the job writes (the agents get them as they
    are); see :mod:`treefork.core.masking`."""

    def domain(self, name: str) -> Domain:
        """The domain with this name."""
        for domain in self.domains:
            if domain.name == name:
                return domain
        raise KeyError(name)

    def specs(self) -> list[DomainSpec]:
        """What analyzers see of the domains."""
        return [
            DomainSpec(d.name, tuple(d.keywords), tuple(d.paths), d.description)
            for d in self.domains
        ]
