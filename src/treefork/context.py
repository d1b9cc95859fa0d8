"""Run settings: what a caller chooses per run through LangGraph's ``context_schema``.

Settings are not state: a run's input cannot flip them. :func:`treefork.build_graph` fixes
the defaults; a run may override them with
``await graph.ainvoke(input, config, context={"max_parallel": 4})`` (or a
:class:`TreeforkContext`), and in LangGraph Studio with the assistant's or the run's
context. A field left ``None`` keeps the graph's default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.runtime import get_runtime

from treefork.domain import Budget
from treefork.errors import InputError
from treefork.events import EventSink
from treefork.settings import GraphSettings
from treefork.store.recorder import EventLog

__all__ = ("TreeforkContext", "effective_settings", "run_settings")


@dataclass(frozen=True, slots=True)
class TreeforkContext:
    """Per-run settings of a treefork graph (LangGraph ``context_schema``)."""

    max_parallel: int | None = None
    """Agents running at once across all domains (default: the graph's)."""
    auto_approve: bool | None = None
    """Merge into the user's branch without stopping at merge review (never a failed job)."""
    home: str | None = None
    """The treefork home for worktrees, locks and the job store (default: the graph's, else
    ``$TREEFORK_HOME`` or ``~/.treefork``)."""
    budget_tokens: int | None = None
    """Token limit for the job (default: the graph's budget)."""
    budget_cost: float | None = None
    """Cost limit for the job (default: the graph's budget)."""
    budget_agent_runs: int | None = None
    """Agent-run limit for the job (default: the graph's budget)."""


def _coerce(value: Any) -> TreeforkContext | None:
    if value is None or isinstance(value, TreeforkContext):
        return value
    if isinstance(value, Mapping):
        known = {field.name for field in dataclasses.fields(TreeforkContext)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise InputError(
                "context", f"unknown run settings {unknown}; known: {', '.join(sorted(known))}"
            )
        return TreeforkContext(**{k: v for k, v in value.items() if v is not None})
    raise InputError("context", f"expected TreeforkContext or a dict, got {type(value).__name__}")


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"context.{name}", f"must be a whole number of at least 1, got {value!r}")
    return value


def _budget(settings: GraphSettings, context: TreeforkContext) -> Budget | None:
    limits = (context.budget_tokens, context.budget_cost, context.budget_agent_runs)
    if all(limit is None for limit in limits):
        return settings.budget
    base = settings.budget or Budget()
    return Budget(
        tokens=base.tokens if context.budget_tokens is None else context.budget_tokens,
        cost=base.cost if context.budget_cost is None else context.budget_cost,
        agent_runs=(
            base.agent_runs if context.budget_agent_runs is None else context.budget_agent_runs
        ),
    )


def effective_settings(settings: GraphSettings, context: Any) -> GraphSettings:
    """The graph's settings with a run's context on top (pure).

    Args:
        settings: What :func:`treefork.build_graph` fixed.
        context: The run's context (``Runtime.context``): a :class:`TreeforkContext`, a dict
            of its fields, or None.

    Raises:
        InputError: A context field is unknown or has the wrong type.
    """
    run = _coerce(context)
    if run is None:
        return settings
    changes: dict[str, Any] = {"budget": _budget(settings, run)}
    if run.max_parallel is not None:
        changes["max_parallel"] = _positive("max_parallel", run.max_parallel)
    if run.auto_approve is not None:
        if not isinstance(run.auto_approve, bool):
            raise InputError(
                "context.auto_approve", f"must be true or false, got {run.auto_approve!r}"
            )
        changes["auto_approve"] = run.auto_approve
    if run.home:
        home = Path(run.home).expanduser()
        changes["home"] = home
        changes["event_sinks"] = tuple(_rehomed(sink, home) for sink in settings.event_sinks)
    return dataclasses.replace(settings, **changes)


_logs: dict[tuple[int, Path], EventLog] = {}
"""Event logs of runs whose context chose another home, one per store and home."""


def _rehomed(sink: EventSink, home: Path) -> EventSink:
    """The job event log for another home (other sinks unchanged)."""
    if not isinstance(sink, EventLog) or sink.home == home:
        return sink
    key = (id(sink.ref), home)
    if key not in _logs:
        _logs[key] = EventLog(sink.ref, home)
    return _logs[key]


def run_settings(settings: GraphSettings) -> GraphSettings:
    """The settings of the run the calling node belongs to (its context applied).

    Outside a graph run (a domain sub-graph invoked on its own by ``dlq retry``) the graph's
    settings are returned as they are.
    """
    try:
        runtime = get_runtime()
    except RuntimeError:
        return settings
    return effective_settings(settings, runtime.context if runtime is not None else None)
