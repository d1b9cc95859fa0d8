"""The graph LangGraph Studio and ``langgraph dev`` serve: a factory the server calls per run.

``langgraph.json`` at the repository root names :func:`make_graph`. The server calls it with
the run's config (and to draw the graph or read its schemas), so what a run does is chosen by
the assistant's or the run's ``configurable`` keys:

``workflow``
    Path of a workflow file (Prodigy's MapReduce format or treefork's). A relative path is
    taken from the server's working directory (where ``langgraph.json`` is). Default: the
    ``TREEFORK_WORKFLOW`` environment variable.
``example``
    A built-in example when no workflow is given: ``demo`` (the three domains of
    ``treefork demo``: docs, api and tests over the sample project). Default: ``demo``.
``auto_approve``
    Merge without stopping at the merge review (never a failed job). Default: false.
``max_parallel``
    Agents running at once across all domains (default: the workflow's, else 8).
``home``
    The treefork home (default: ``TREEFORK_HOME`` or ``~/.treefork``).
``repo``
    The repository of runs whose input names none (default: the ``TREEFORK_REPO``
    environment variable). A relative path is taken from the server's working directory.
``profile``
    The workflow's profile (default: ``TREEFORK_PROFILE``, else its ``active_profile``).
    Its ``secrets`` are masked in everything the run writes.

The task is the run's input, with the repository unless the config gives one:
``{"task": ..., "repo": "/path/to/repo"}``; a ``repo`` in the input wins.

The graph is compiled without a checkpointer (the server brings its own, and refuses a graph
that has one). The factory is a coroutine and reads files in a worker thread: the dev server
fails any blocking call made on its event loop.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from treefork.context import TreeforkContext
from treefork.domain import Budget, Domain
from treefork.errors import InputError
from treefork.graph import build_graph
from treefork.state import ParallelInput, ParallelOutput, ParallelState
from treefork.workflow import load_workflow

__all__ = ("EXAMPLES", "StudioOptions", "load_definition", "make_graph", "studio_options")

_DEMO = Path(__file__).parent / "_demo" / "multi_domain.py"

EXAMPLES: Mapping[str, Path] = {"demo": _DEMO}
"""Built-in examples by name: files defining ``DOMAINS`` (and ``TASK``)."""

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True, slots=True)
class StudioOptions:
    """What a run's ``configurable`` asks of the graph."""

    workflow: str | None
    """Path of a workflow file, or None for a built-in example."""
    example: str
    """Name of the built-in example used when ``workflow`` is None."""
    auto_approve: bool
    """Merge without asking."""
    max_parallel: int | None
    """Agents at once across all domains; None for the workflow's (else 8)."""
    home: str | None
    """The treefork home; None for the default."""
    repo: str | None = None
    """The repository of runs whose input names none; None for none."""
    profile: str | None = None
    """The workflow's profile; None for ``$TREEFORK_PROFILE`` or its ``active_profile``."""


@dataclass(frozen=True, slots=True)
class Definition:
    """Domains and job settings, from a workflow file or an example."""

    domains: tuple[Domain, ...]
    budget: Budget | None
    max_parallel: int | None
    secrets: dict[str, str] = field(default_factory=dict)


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise InputError(name, f"expected true or false, got {value!r}")


def _count(name: str, value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InputError(name, f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise InputError(name, f"must be at least 1, got {number}")
    return number


def studio_options(
    configurable: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> StudioOptions:
    """Read the factory's options from a run's ``configurable`` (pure).

    Args:
        configurable: ``config["configurable"]`` as the server passes it.
        environ: The environment, for ``TREEFORK_WORKFLOW`` and ``TREEFORK_REPO`` (default
            ``os.environ``).

    Raises:
        InputError: A value has the wrong type, or the example is unknown.
    """
    environ = os.environ if environ is None else environ
    workflow = configurable.get("workflow") or environ.get("TREEFORK_WORKFLOW") or None
    example = str(configurable.get("example") or "demo")
    if workflow is None and example not in EXAMPLES:
        raise InputError("example", f"unknown example {example!r}; known: {', '.join(EXAMPLES)}")
    home = configurable.get("home")
    repo = configurable.get("repo") or environ.get("TREEFORK_REPO") or None
    if repo is not None and not isinstance(repo, str):
        raise InputError("repo", f"must be a path, got {type(repo).__name__}")
    profile = configurable.get("profile") or None
    if profile is not None and not isinstance(profile, str):
        raise InputError("profile", f"must be a profile's name, got {type(profile).__name__}")
    return StudioOptions(
        workflow=str(workflow) if workflow is not None else None,
        example=example,
        auto_approve=_flag("auto_approve", configurable.get("auto_approve", False)),
        max_parallel=_count("max_parallel", configurable.get("max_parallel")),
        home=str(home) if home else None,
        repo=repo,
        profile=profile,
    )


def _example_domains(path: Path) -> tuple[Domain, ...]:
    spec = importlib.util.spec_from_file_location(f"treefork_example_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise InputError("example", f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.DOMAINS)


def load_definition(options: StudioOptions) -> Definition:
    """The domains and settings the options name (blocking: reads files).

    Raises:
        WorkflowError: The workflow file cannot be read or is invalid (every problem listed).
    """
    if options.workflow is None:
        return Definition(_example_domains(EXAMPLES[options.example]), None, None)
    workflow = load_workflow(Path(options.workflow).expanduser(), profile=options.profile)
    return Definition(
        workflow.domains, workflow.budget, workflow.max_parallel, dict(workflow.secrets)
    )


async def make_graph(
    config: RunnableConfig,
) -> CompiledStateGraph[ParallelState, TreeforkContext, ParallelInput, ParallelOutput]:
    """Build the treefork graph for one run of the LangGraph server.

    Args:
        config: The run's config; see the module docstring for its ``configurable`` keys.

    Returns:
        The graph, compiled without a checkpointer.

    Raises:
        InputError: A configurable value is invalid.
        WorkflowError: The workflow file cannot be read or is invalid.
        DefinitionError: The domains are invalid.
    """
    options = studio_options(config.get("configurable") or {})
    definition = await anyio.to_thread.run_sync(load_definition, options)
    return build_graph(
        definition.domains,
        max_parallel=options.max_parallel or definition.max_parallel or 8,
        budget=definition.budget,
        auto_approve=options.auto_approve,
        checkpointer=None,
        home=options.home,
        repo=options.repo,
        secrets=definition.secrets,
    )
