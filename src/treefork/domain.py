"""Domains: the parts of a repository a task can touch, each with its own sub-graph.

A :class:`Domain` names when it is chosen (``keywords``, ``paths``) and what runs for it:
``setup`` steps, a :class:`Map` of agents over work items, ``reduce`` steps and a ``tests``
command. :func:`treefork.build_graph` takes a list of them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal, TypeAlias

from treefork.steps import Shell, Step

__all__ = (
    "Budget",
    "CommandItems",
    "Domain",
    "ErrorPolicy",
    "JsonFile",
    "Map",
    "MapInput",
)


@dataclass(frozen=True, slots=True)
class JsonFile:
    """Work items from a JSON file, relative to the domain worktree (setup may write it)."""

    path: str


@dataclass(frozen=True, slots=True)
class CommandItems:
    """Work items from a command's stdout: JSON, or else one item per non-empty line.

    (Named so as not to be taken for LangGraph's ``Command``; ``treefork.Command`` is a
    deprecated alias.)
    """

    command: str
    timeout: float | None = None


MapInput: TypeAlias = str | JsonFile | CommandItems | Sequence[Any]
"""Where work items come from.

A plain string is read the way Prodigy reads ``map.input``: a path to an existing file or
one that ends in ``.json`` is a :class:`JsonFile`; anything else is a :class:`CommandItems`.
A list is taken as the items themselves.
"""


@dataclass(frozen=True, slots=True)
class ErrorPolicy:
    """What happens when a work item fails."""

    on_item_failure: Literal["dlq", "retry", "skip", "stop"] = "dlq"
    """dlq: record it in the dead letter queue and go on; retry: run the item again up to
    ``max_retries`` times, then dlq; skip: go on without recording it in the DLQ;
    stop: start no further items."""
    continue_on_failure: bool = True
    """When False, the first item failure stops the map phase (no new items start)."""
    max_failures: int | None = None
    """Stop starting items once this many have failed."""
    failure_threshold: float | None = None
    """Stop starting items once this fraction (0..1) of the finished items has failed."""
    max_retries: int = 2
    """Extra attempts per item when ``on_item_failure`` is ``retry``."""


@dataclass(frozen=True, kw_only=True)
class Map:
    """The map phase: one agent per work item, each in its own worktree.

    Args:
        input: Where the items come from (see :data:`MapInput`).
        agent: The steps every agent runs, in order.
        max_parallel: At most this many agents of this domain at once.
        json_path: JSONPath selecting the items inside the input document.
        filter: Prodigy filter expression (``item.score >= 5 AND item.kind == 'bug'``).
        sort_by: Prodigy sort spec (``item.priority DESC NULLS LAST``).
        offset: Skip this many items (after filter and sort).
        max_items: Take at most this many items (after offset).
        distinct: Keep the first item for each value of this field.
        agent_timeout: Seconds an agent may run in all; past it its processes are killed.
        isolation: ``worktree`` (each agent in its own worktree, merged back) or ``none``
            (read-only agents run in the domain worktree and may not commit).
        auto_commit: What happens to changes an agent leaves uncommitted when its steps
            succeed. True (the default): they are committed (``git add -A``; ignored files
            never) as one commit named after the item, merged with the agent's other
            commits and listed at merge review, so nothing an agent makes is dropped.
            False: the item fails, naming the paths, and its worktree is kept for
            inspection (``treefork worktree list``, the DLQ).
    """

    input: MapInput
    agent: Sequence[Step]
    max_parallel: int = 4
    json_path: str | None = None
    filter: str | None = None
    sort_by: str | None = None
    offset: int | None = None
    max_items: int | None = None
    distinct: str | None = None
    agent_timeout: float | None = None
    isolation: Literal["worktree", "none"] = "worktree"
    auto_commit: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "agent", tuple(self.agent))
        if not isinstance(self.input, str | JsonFile | CommandItems):
            object.__setattr__(self, "input", tuple(self.input))


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits for a job; once one is reached no new agent starts (the rest are skipped)."""

    tokens: int | None = None
    """Tokens (input + output) across every agent and the supervisor."""
    cost: float | None = None
    """Cost across every agent and the supervisor."""
    agent_runs: int | None = None
    """Agents started across every domain."""


@dataclass(frozen=True)
class Domain:
    """One part of the repository, with the sub-graph that works on it.

    Args:
        name: Unique name; also used in branch names (``treefork/<job>/domains/<name>``).
        keywords: Words that select the domain when the task mentions them (whole words,
            any case).
        paths: Glob patterns (``docs/**``, ``src/auth/*.py``) that select the domain when
            the task mentions a matching path.
        setup: Steps run in order in the domain worktree before the map phase.
        map: The map phase.
        reduce: Steps run in the domain worktree after the agents' work is merged;
            ``${map.successful}``, ``${map.failed}``, ``${map.total}`` and
            ``${map.results}`` are in scope.
        tests: Command that decides ``tests_passed`` for the domain (exit 0 passes).
        critical: A failure here fails the whole job (otherwise the job is ``partial``).
        description: What the domain covers, for LLM analyzers.
        env: Environment variables for every step of the domain.
        error_policy: What happens when items fail.
        on_worktree_create: Command run in every new agent worktree; its failure fails that
            agent with its output.
        worktree_include: Glob patterns of ignored files (``.env``) copied into each agent
            worktree.
    """

    name: str
    _: KW_ONLY
    keywords: Sequence[str] = ()
    paths: Sequence[str] = ()
    setup: Sequence[Step] = ()
    map: Map | None = None
    reduce: Sequence[Step] = ()
    tests: str | Shell | None = None
    critical: bool = False
    description: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    error_policy: ErrorPolicy = field(default_factory=ErrorPolicy)
    on_worktree_create: str | None = None
    worktree_include: Sequence[str] = ()

    def __post_init__(self) -> None:
        for name in ("keywords", "paths", "setup", "reduce", "worktree_include"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "env", dict(self.env))

    @property
    def tests_step(self) -> Shell | None:
        """The tests command as a step (None when the domain has no tests)."""
        if self.tests is None or isinstance(self.tests, Shell):
            return self.tests
        return Shell(self.tests, name="tests")


def __getattr__(name: str) -> Any:
    if name == "Command":
        warnings.warn(
            "treefork.domain.Command is deprecated; use CommandItems",
            DeprecationWarning,
            stacklevel=2,
        )
        return CommandItems
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
