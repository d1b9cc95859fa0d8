"""Assembling the treefork graph: supervisor -> dispatcher -> aggregator -> merge_review."""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

from treefork.context import TreeforkContext
from treefork.core.masking import register_secrets
from treefork.core.routing import Analyzer, RuleAnalyzer
from treefork.core.validation import validate_definition
from treefork.domain import Budget, Domain
from treefork.errors import DefinitionError, Problem
from treefork.events import EventSink
from treefork.executors import Executor
from treefork.nodes import (
    aggregator,
    build_domain_graph,
    dispatcher,
    merge_review,
    refuse_sync_invoke,
    route_domains,
    supervisor,
)
from treefork.settings import GraphSettings
from treefork.state import ParallelInput, ParallelOutput, ParallelState
from treefork.steps import Step
from treefork.store import EventLog, JobStore, StoreRef

__all__ = ("build_graph",)


def _budget(budget: Budget | dict[str, Any] | None) -> Budget | None:
    if budget is None or isinstance(budget, Budget):
        return budget
    unknown = set(budget) - {"tokens", "cost", "agent_runs"}
    if unknown:
        raise DefinitionError(
            [Problem("budget", f"unknown keys {sorted(unknown)}; use tokens, cost, agent_runs")]
        )
    return Budget(**budget)


def _job_store(
    job_store: JobStore | bool | None, deprecated: dict[str, Any]
) -> JobStore | bool | None:
    """``job_store``, or the deprecated ``store=`` keyword (a job store, not LangGraph's
    ``BaseStore``, hence the new name)."""
    unknown = set(deprecated) - {"store"}
    if unknown:
        raise TypeError(f"build_graph() got an unexpected keyword argument {sorted(unknown)[0]!r}")
    if "store" not in deprecated:
        return job_store
    if job_store is not None:
        raise TypeError("build_graph() got both job_store= and its deprecated name store=")
    warnings.warn(
        "build_graph(store=) is deprecated; use job_store= (LangGraph's store is a BaseStore)",
        DeprecationWarning,
        stacklevel=3,
    )
    value: JobStore | bool | None = deprecated["store"]
    return value


def _store_ref(store: JobStore | bool | None) -> StoreRef | None:
    if store is False:
        return None
    return StoreRef(store if isinstance(store, JobStore) else None)


def _event_sinks(
    sinks: Sequence[EventSink], store_ref: StoreRef | None, home: str | Path | None
) -> tuple[EventSink, ...]:
    if store_ref is None:
        return tuple(sinks)
    return (EventLog(store_ref, Path(home) if home is not None else None), *sinks)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def build_graph(
    domains: Sequence[Domain],
    *,
    max_parallel: int = 8,
    budget: Budget | dict[str, Any] | None = None,
    auto_approve: bool = False,
    checkpointer: Checkpointer = None,
    analyzer: Analyzer | None = None,
    fallback: Literal["all", "none"] = "none",
    home: str | Path | None = None,
    claude_command: Sequence[str] | None = None,
    event_sinks: Sequence[EventSink] = (),
    keep_worktrees: bool = False,
    job_store: JobStore | bool | None = None,
    merge_steps: Sequence[Step] = (),
    merge_env: Mapping[str, str] | None = None,
    history: Literal["merges", "squash"] = "merges",
    repo: str | Path | None = None,
    executor: Executor | None = None,
    secrets: Mapping[str, str] | None = None,
    name: str | None = None,
    **deprecated: Any,
) -> CompiledStateGraph[ParallelState, TreeforkContext, ParallelInput, ParallelOutput]:
    """Build the treefork graph for a set of domains.

    Invoke it with ``await graph.ainvoke({"task": ..., "repo": ...}, config)``; the config
    needs a ``thread_id`` when a checkpointer is used (merge review interrupts need one
    unless ``auto_approve``).

    Args:
        domains: The domains a task can touch.
        max_parallel: Agents running at once across all domains.
        budget: Limits (``Budget`` or a dict with ``tokens``, ``cost``, ``agent_runs``);
            once reached no new agent starts and the remaining items are skipped.
        auto_approve: Merge into the original branch without asking (never a failed job).
        checkpointer: The LangGraph checkpointer (your app's own); None for none (the
            LangGraph dev server supplies its own).
        analyzer: Chooses domains for a task; default :class:`RuleAnalyzer` with ``fallback``.
        fallback: For the default analyzer, when nothing matches: ``all`` domains or
            ``none`` (the state then carries ``routing_message``).
        home: The treefork home for worktrees and locks (default ``$TREEFORK_HOME`` or
            ``~/.treefork``).
        claude_command: argv template for Claude steps, ``{prompt}`` replaced.
        event_sinks: Extra callables receiving every progress event.
        keep_worktrees: Keep worktrees and branches of merged agents and domains.
        job_store: Where the job is recorded: agent results the moment each agent finishes,
            phase progress, the DLQ, the event log, worktrees and branches. None (the
            default) or True: the job store of the treefork home (``<home>/treefork.db``),
            so that invoking the graph again on the same thread (or with the same
            ``job_id``) after a crash does not run recorded agents again, and the
            ``treefork jobs``/``events``/``dlq``/``worktree`` commands see the job. A
            :class:`~treefork.store.JobStore` to use that one; False to record nothing.
        merge_steps: Steps run in the session worktree once the merge is approved and
            before it happens; ``${merge.worktree}``, ``${merge.source_branch}``,
            ``${merge.target_branch}`` and ``${merge.session_id}`` are in scope. If one
            fails, the merge is refused with its error.
        merge_env: Environment variables for the merge steps.
        history: What each domain leaves in the session branch, and so in yours:
            ``merges`` (default) keeps every agent's commits and a merge commit per agent,
            named after its item; ``squash`` makes one commit per domain whose message
            lists the items (agent commits stay on treefork's branches until gc).
        repo: The repository of runs whose input has no ``repo`` (then
            ``ainvoke({"task": ...})`` is enough); the input's ``repo`` wins.
        executor: Where map agents run: None (the default) on this machine, in worktrees
            of the repository; a :class:`~treefork.executors.RayExecutor` on a Ray
            cluster, each agent in a worktree of its node's own clone. Everything else
            (limits, budget, retries, the DLQ, merging) stays with the graph.
        secrets: Environment variables every step gets (over the domains' ``env`` and
            ``merge_env``) whose values are masked (``***``) in everything the job writes:
            events, the job store and its DLQ, step results and errors, the report.
        name: The workflow's name, ``${workflow.name}`` in steps (default: the domain's).

    Returns:
        The compiled graph.

    Raises:
        DefinitionError: Listing every problem in the definition at once.
    """
    domains = list(domains)
    budget_value = _budget(budget)
    problems = validate_definition(domains, max_parallel=max_parallel, budget=budget_value)
    problems += [
        Problem(f"secrets[{name!r}]", "must be an environment variable name (A-Z, 0-9, _)")
        for name in secrets or {}
        if not _ENV_NAME.fullmatch(name)
    ]
    if problems:
        raise DefinitionError(problems)
    store_ref = _store_ref(_job_store(job_store, deprecated))
    secret_env = dict(secrets or {})
    if secret_env:
        register_secrets(secret_env.values())
        domains = [replace(domain, env={**domain.env, **secret_env}) for domain in domains]
    settings = GraphSettings(
        domains=tuple(domains),
        analyzer=analyzer or RuleAnalyzer(fallback=fallback),
        max_parallel=max_parallel,
        budget=budget_value,
        auto_approve=auto_approve,
        home=Path(home) if home is not None else None,
        claude_command=tuple(claude_command) if claude_command else None,
        event_sinks=_event_sinks(event_sinks, store_ref, home),
        keep_worktrees=keep_worktrees,
        store=store_ref,
        merge_steps=tuple(merge_steps),
        merge_env={**(merge_env or {}), **secret_env},
        history=history,
        repo=str(repo) if repo is not None else None,
        executor=executor,
        secrets=tuple(value for value in secret_env.values() if value),
        name=name,
    )
    return _assemble(settings, checkpointer)


def _assemble(
    settings: GraphSettings, checkpointer: Checkpointer
) -> CompiledStateGraph[ParallelState, TreeforkContext, ParallelInput, ParallelOutput]:
    builder: StateGraph[ParallelState, TreeforkContext, ParallelInput, ParallelOutput] = (
        StateGraph(
            ParallelState,
            context_schema=TreeforkContext,
            input_schema=ParallelInput,
            output_schema=ParallelOutput,
        )
    )
    # Sync invoke fails at once, saying to use the async API (every node is async).
    builder.add_node(
        "supervisor",
        RunnableLambda(
            refuse_sync_invoke,
            afunc=functools.partial(supervisor, settings=settings),
            name="supervisor",
        ),
    )
    builder.add_node("dispatcher", functools.partial(dispatcher, settings=settings))
    names = [domain.name for domain in settings.domains]
    for domain in settings.domains:
        # The domain's node is its compiled sub-graph: Studio draws, inspects, resumes and
        # forks it, and its checkpoints live under its own namespace.
        builder.add_node(domain.name, build_domain_graph(domain, settings))
        builder.add_edge(domain.name, "aggregator")
    builder.add_node("aggregator", functools.partial(aggregator, settings=settings))
    builder.add_node("merge_review", functools.partial(merge_review, settings=settings))
    builder.add_edge(START, "supervisor")
    builder.add_edge("supervisor", "dispatcher")
    builder.add_conditional_edges("dispatcher", route_domains, [*names, "aggregator"])
    builder.add_edge("aggregator", "merge_review")
    builder.add_edge("merge_review", END)
    return builder.compile(checkpointer=checkpointer, name="treefork")
