"""What every step runner shares: the context a step runs in and what one attempt produced.

:class:`StepContext` is given by the phase (setup, map, reduce, tests); the helpers here turn
it into the interpolation scope, the command environment, the time a step may still take
and errors that name the phase, domain, item and step.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from treefork.core.interpolate import item_scope, references, render_text
from treefork.environment import scrubbed_environment
from treefork.errors import InterpolationError, StepError, StepTimeoutError
from treefork.steps import Step, Usage

__all__ = (
    "OUTPUT_TAIL",
    "StepContext",
    "StepRun",
    "interpolation_scope",
    "make_error",
    "rendered_environment",
    "tail",
    "time_limit",
    "working_directory",
)

OUTPUT_TAIL = 4000
"""How many characters of output an error keeps."""


@dataclass(slots=True)
class StepContext:
    """Where and for what steps run; ``variables`` collects what they capture."""

    phase: str
    """``setup``, ``map``, ``reduce``, ``tests`` or ``on_worktree_create``."""
    domain: str
    """The domain the steps run for."""
    job_id: str
    """The job the steps belong to."""
    worktree: Path
    """The worktree every command runs in (its working directory)."""
    variables: dict[str, Any]
    """The scope: captures are written into it, and ``shell`` after every shell step."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Domain or workflow env; values may use ``${...}`` (and the caller's environment)."""
    item: Any = None
    """The work item (map phase)."""
    item_id: str | None = None
    """The item's id (map phase)."""
    item_index: int | None = None
    """The item's position (map phase)."""
    deadline: float | None = None
    """``anyio.current_time()`` by which the whole agent must be done (agent timeout)."""
    allow_commits: bool = True
    """False for read-only agents (isolation ``none``): a step that moves HEAD fails."""
    claude_command: Sequence[str] | None = None
    """argv template for Claude steps; ``{prompt}`` is replaced by the prompt."""
    emit: Callable[[dict[str, Any]], None] | None = None
    """Receives ``step_start`` and ``step_end`` progress events."""
    item_total: int | None = None
    """How many items the map phase selected (else ``variables["item_total"]``)."""
    workflow: str | None = None
    """The workflow's name (``${workflow.name}``; None: the domain's name)."""


@dataclass(frozen=True, slots=True)
class StepRun:
    """What one attempt of a step produced."""

    output: str = ""
    """Text output (stdout for shell steps), used for capture."""
    stderr: str = ""
    """Standard error, for shell and Claude steps."""
    exit_code: int | None = None
    """Exit code of the command, if there was one."""
    usage: Usage = field(default_factory=Usage)
    """Tokens and cost spent, even by a failed attempt."""
    variables: Mapping[str, Any] = field(default_factory=dict)
    """Variables the step puts in scope (an agent's ``AgentOutput.variables``)."""
    error: StepError | None = None
    """Why the attempt failed; None when it succeeded."""


def tail(text: str, limit: int = OUTPUT_TAIL) -> str:
    """The last ``limit`` characters of ``text``."""
    return text[-limit:]


def make_error(
    context: StepContext,
    step: Step,
    reason: str,
    *,
    exit_code: int | None = None,
    output_tail: str = "",
    kind: type[StepError] = StepError,
) -> StepError:
    """A step error that names where it happened."""
    return kind(
        phase=context.phase,
        step=step.label,
        reason=reason,
        item_id=context.item_id,
        domain=context.domain,
        exit_code=exit_code,
        output_tail=output_tail,
        worktree=context.worktree,
    )


def _item_keys(context: StepContext) -> dict[str, Any]:
    if context.item is None and context.item_id is None:
        return {}
    total = context.item_total
    if total is None and isinstance(context.variables.get("item_total"), int):
        total = context.variables["item_total"]
    return item_scope(
        context.item, item_id=context.item_id, item_index=context.item_index, item_total=total
    )


def rendered_environment(context: StepContext, step: Step | None = None) -> dict[str, str]:
    """Domain env and then the step's env, each value interpolated.

    A value may refer to variables, the item, entries above it and the caller's environment
    (``API_TOKEN: ${GITHUB_TOKEN}``).

    Raises:
        InterpolationError: A value refers to something unknown.
    """
    scope: dict[str, Any] = {**os.environ, **context.variables, **_item_keys(context)}
    rendered: dict[str, str] = {}
    for source in (context.env, step.env if step is not None else {}):
        for name, value in source.items():
            rendered[name] = render_text(_keep_undefined_names(str(value), scope), scope)
            scope[name] = rendered[name]
    return rendered


def _keep_undefined_names(value: str, scope: Mapping[str, Any]) -> str:
    """Escape ``${NAME}`` (environment style, no default) that nothing defines.

    Workflow files promise that such a reference "keeps its text" (``API_TOKEN:
    ${GITHUB_TOKEN}`` without ``GITHUB_TOKEN`` set): the value is the text as written.
    """
    pieces, last = [], 0
    for reference in references(value):
        name = reference.expression
        if reference.default is None and name.isupper() and name not in scope:
            pieces += [value[last : reference.start], "$", value[reference.start : reference.end]]
            last = reference.end
    return "".join([*pieces, value[last:]])


def interpolation_scope(context: StepContext, env: Mapping[str, str]) -> dict[str, Any]:
    """What ``${...}`` can refer to: env names, the computed variables (``workflow``,
    ``worker``, ``env``, ``uuid``), then the variables, then the item's keys."""
    return {**env, **computed_variables(context, env), **context.variables, **_item_keys(context)}


COMPUTED_ROOTS = frozenset({"workflow", "worker", "env", "uuid"})
"""Variables every step has (see :func:`computed_variables`)."""


def computed_variables(context: StepContext, env: Mapping[str, str]) -> dict[str, Any]:
    """Prodigy's context variables:

    - ``workflow``: ``name`` (the workflow's), ``id`` (the job's id), ``iteration`` (1: a
      workflow runs once per job);
    - ``worker``: ``id``, what runs the step: ``<domain>/agent-<item index>`` for a map
      agent, ``<domain>/<phase>`` otherwise;
    - ``env``: the environment the step's commands get (``${env.HOME}``);
    - ``uuid``: a random UUID, new for each step.
    """
    worker = (
        f"{context.domain}/agent-{context.item_index}"
        if context.item_index is not None
        else f"{context.domain}/{context.phase}"
    )
    return {
        "workflow": {
            "name": context.workflow or context.domain,
            "id": context.job_id,
            "iteration": 1,
        },
        "worker": {"id": worker},
        "env": command_environment(env, {}, read_only=not context.allow_commits),
        "uuid": str(uuid.uuid4()),
    }


def command_environment(
    env: Mapping[str, str], extra: Mapping[str, str], *, read_only: bool = False
) -> dict[str, str]:
    """The full environment of a command: the caller's, scrubbed, plus ``env`` and ``extra``;
    ``read_only`` (a context that may not commit) makes git refuse to move HEAD or a branch."""
    return scrubbed_environment({**env, **extra}, read_only=read_only)


def time_limit(context: StepContext, step: Step) -> float | None:
    """Seconds the step may run: its own timeout, capped by the agent's deadline.

    Raises:
        StepTimeoutError: The agent's deadline has already passed.
    """
    limit = step.timeout
    if context.deadline is not None:
        remaining = context.deadline - anyio.current_time()
        if remaining <= 0:
            raise make_error(context, step, "the agent's time limit ran out", kind=StepTimeoutError)
        limit = remaining if limit is None else min(limit, remaining)
    return limit


def working_directory(context: StepContext, step: Step, scope: Mapping[str, Any]) -> Path:
    """The worktree, or the step's ``working_dir`` inside it.

    Raises:
        StepError: ``working_dir`` leads outside the worktree.
        InterpolationError: ``working_dir`` refers to something unknown.
    """
    if not step.working_dir:
        return context.worktree
    directory = render_text(step.working_dir, scope)
    candidate = (context.worktree / directory).resolve()
    if not candidate.is_relative_to(context.worktree.resolve()):
        raise make_error(
            context, step, f"working_dir {directory!r} is outside the worktree {context.worktree}"
        )
    return candidate


def interpolation_failure(context: StepContext, step: Step, error: InterpolationError) -> StepError:
    """A step error for a reference that cannot be resolved."""
    return make_error(context, step, str(error))
