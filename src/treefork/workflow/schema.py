"""The shape of a workflow file: pydantic models for Prodigy's MapReduce format and treefork's.

These models check types, required keys and unknown keys. Everything that needs more than
one value at a time (expressions, ``${...}`` references, ``max_parallel`` from the env, which
steps capture what) is checked in :mod:`treefork.workflow.checks`.

A phase (``setup``, ``agent_template``, ``reduce``, ``merge``) is a list of steps or a mapping
with ``commands`` (plus ``timeout``, and ``capture_outputs`` for setup); both read the same.
A step's ``on_failure`` is a step, a list of steps, or Prodigy's mapping of one step with
``max_attempts`` / ``fail_workflow``; ``retry`` is a number of attempts or a mapping.

Fields Prodigy defines but treefork cannot honour are accepted here and reported as
warnings (see :data:`UNSUPPORTED`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from treefork.steps import CaptureFormat

__all__ = (
    "UNSUPPORTED",
    "AgentTemplateSpec",
    "BudgetSpec",
    "CaptureOutputSpec",
    "CaptureStreamsSpec",
    "DomainSpec",
    "ErrorPolicySpec",
    "MapSpec",
    "MergeSpec",
    "OnFailureSpec",
    "PhaseSpec",
    "ProdigyWorkflowSpec",
    "ReduceSpec",
    "RetryConfigSpec",
    "RetrySpec",
    "SecretEnvSpec",
    "SetupSpec",
    "StepSpec",
    "TimeoutConfigSpec",
    "TreeforkWorkflowSpec",
    "WriteFileSpec",
)


def _no_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    return value


PositiveNumber = Annotated[float, BeforeValidator(_no_boolean), Field(gt=0)]
"""A number above zero."""
Seconds = PositiveNumber
"""A duration in seconds, above zero."""

_DURATION = re.compile(r"\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h)?\s*")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _duration(value: Any) -> Any:
    """``"2s"``, ``"500ms"``, ``"1m"``, ``"1h"`` or a number of seconds, as seconds."""
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match is None:
            raise ValueError(f"must be a duration like 2s, 500ms, 1m or a number, got {value!r}")
        return float(match.group("number")) * _UNIT_SECONDS[match.group("unit")]
    return value


Duration = Annotated[float, BeforeValidator(_no_boolean), BeforeValidator(_duration), Field(gt=0)]
"""Seconds, or Prodigy's duration text (``2s``, ``500ms``, ``1m``)."""
Count = Annotated[int, BeforeValidator(_no_boolean), Field(ge=0)]
"""A whole number, zero or more."""
PositiveCount = Annotated[int, BeforeValidator(_no_boolean), Field(ge=1)]
"""A whole number, one or more."""
Fraction = Annotated[float, BeforeValidator(_no_boolean), Field(gt=0, le=1)]
"""A fraction above 0, at most 1."""
EnvScalar = str | StrictInt | float | bool
"""An env value as YAML may write it (numbers and booleans are turned into text)."""


class Spec(BaseModel):
    """Base of every model read from a workflow file: immutable, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class WriteFileSpec(Spec):
    """``write_file: {path, content, mode}``."""

    path: str
    """File to write, relative to the worktree."""
    content: str
    """What to write (``${...}`` allowed)."""
    mode: StrictInt | str | None = None
    """Permissions: an octal string (``"0644"``) or a number."""
    format: Literal["text", "json", "yaml"] | None = None
    """Prodigy: validate/format the content; not supported (a warning)."""
    create_dirs: bool | None = None
    """Prodigy: create parent directories; not an option in treefork (a warning)."""


class RetrySpec(Spec):
    """``retry: {attempts, backoff, max_delay}`` (or ``retry: 3``)."""

    attempts: PositiveCount = 3
    """Total attempts, the first included."""
    backoff: Seconds | Literal["exponential"] = 1.0
    """Seconds before the second attempt (doubling after that), or ``exponential``."""
    max_delay: Seconds = 30.0
    """Longest wait between attempts, in seconds."""

    @model_validator(mode="before")
    @classmethod
    def _from_number(cls, data: Any) -> Any:
        if isinstance(data, int) and not isinstance(data, bool):
            return {"attempts": data}
        return data


class CaptureStreamsSpec(Spec):
    """Prodigy's ``capture_streams: {stdout, stderr, exit_code, success, duration}``."""

    stdout: bool = True
    stderr: bool = False
    exit_code: bool | None = None
    success: bool | None = None
    duration: bool | None = None


class StepRetryConfigSpec(Spec):
    """Prodigy's command-level ``retry_config``."""

    attempts: PositiveCount = 3
    """Total attempts, the first included."""
    backoff: Any = "exponential"
    """``exponential`` (treefork's: doubling), ``fixed``; ``linear`` and ``fibonacci`` are
    approximated by doubling (a warning)."""
    initial_delay: Duration = 1.0
    max_delay: Duration = 30.0
    jitter: bool | None = None
    jitter_factor: float | None = None
    retry_on: Any = None
    retry_budget: Any = None
    on_failure: Any = None


class StepSpec(Spec):
    """One step: exactly one of ``shell``, ``claude`` or ``write_file``, and options."""

    shell: str | None = None
    claude: str | None = None
    write_file: WriteFileSpec | None = None
    name: str | None = None
    capture: str | None = None
    capture_output: bool | str | None = None
    capture_format: CaptureFormat | None = None
    capture_streams: Literal["stdout", "stderr", "both"] | CaptureStreamsSpec | None = None
    commit_required: bool = False
    timeout: Seconds | None = None
    on_failure: OnFailureSpec | None = None
    on_success: tuple[StepSpec, ...] = ()
    """Steps run after the step succeeds: a step, one command string, or a list."""
    retry: RetrySpec | None = None
    retry_config: StepRetryConfigSpec | None = None
    """Prodigy's command-level retry (attempts, backoff, initial_delay, max_delay)."""
    max_attempts: PositiveCount | None = None
    """Total attempts of the step (a retry without its options)."""
    fail_workflow: bool | None = None
    """Prodigy: false lets the steps after this one run when it fails."""
    continue_on_error: bool | None = None
    """Prodigy (handler commands): true lets the next command run when this one fails."""
    env: dict[str, EnvScalar] = Field(default_factory=dict)
    working_dir: str | None = None
    when: str | None = None
    validate_: Any = Field(default=None, alias="validate")
    """Prodigy's validation loop; not supported (a warning)."""

    @field_validator("on_success", mode="before")
    @classmethod
    def _success_steps(cls, value: Any) -> Any:
        return success_steps_of(value)


POLICY_SHORTCUTS = ("on_item_failure", "continue_on_failure", "max_failures", "failure_threshold")
"""``error_policy`` settings also written beside it (at the top level, or in ``map``)."""

ON_FAILURE_OPTIONS = frozenset(
    {"max_attempts", "max_retries", "fail_workflow", "strategy", "timeout",
     "handler_failure_fatal", "capture"}
)  # fmt: skip
"""Keys of Prodigy's ``on_failure`` mapping that belong to the handler, not its step."""


def success_steps_of(value: Any) -> Any:
    """``on_success`` as a list of steps: one step, one command string, or a list of steps
    and command strings (anything else is left for the schema to refuse)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [command_step(value)]
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [command_step(step) if isinstance(step, str) else step for step in value]
    return value


def command_step(command: str) -> dict[str, str]:
    """A handler given as one string: ``/command`` for Claude, anything else for the shell."""
    return {"claude": command} if command.lstrip().startswith("/") else {"shell": command}


def handler_steps_of(rest: dict[str, Any]) -> list[dict[str, Any]]:
    """The handler steps of an ``on_failure`` mapping without ``commands``: one step, or a
    shell step then a Claude step when it names both (Prodigy runs them in sequence)."""
    if not rest:
        return []
    if "shell" in rest and "claude" in rest:
        step = dict(rest)
        return [step, {"claude": step.pop("claude")}]
    return [rest]


class OnFailureSpec(Spec):
    """Steps run when a step fails."""

    steps: tuple[StepSpec, ...]
    max_attempts: PositiveCount | None = None
    """Prodigy: retry the failed step after the handler; not supported (a warning)."""
    fail_workflow: bool | None = None
    """Prodigy: whether the failure still fails the run (default true); ``false`` lets the
    steps after it run (the step's ``continue_on_failure``)."""
    timeout: Seconds | None = None
    """Seconds each handler step may run (unless it sets its own)."""
    strategy: str | None = None
    """Prodigy's label for the handler (recovery, fallback, cleanup); no effect."""
    handler_failure_fatal: bool | None = None
    """Prodigy: a failing handler fails the step; only ``true`` is how treefork works."""
    capture: Any = None
    """Prodigy: variables from the handler's output; not supported (a warning)."""

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if isinstance(data, bool):
            # ``on_failure: true``: ignore the failure (Prodigy's simplest form); false: none.
            return {"steps": [], "fail_workflow": not data}
        if isinstance(data, str):
            # One handler command: a Claude command when it starts with "/", else shell.
            return {"steps": [command_step(data)]}
        if isinstance(data, list):
            return {"steps": [command_step(s) if isinstance(s, str) else s for s in data]}
        if not isinstance(data, dict) or "steps" in data:
            return data
        options = {key: value for key, value in data.items() if key in ON_FAILURE_OPTIONS}
        if "max_retries" in options and "max_attempts" not in options:
            options["max_attempts"] = options.pop("max_retries")  # Prodigy's alias
        options.pop("max_retries", None)
        rest = {key: value for key, value in data.items() if key not in ON_FAILURE_OPTIONS}
        if "commands" in rest:
            commands = rest.pop("commands")
            if isinstance(commands, list):
                commands = [command_step(c) if isinstance(c, str) else c for c in commands]
            return {**options, "steps": commands, **rest}
        # ``{fail_workflow: true}`` alone: options without a handler command.
        return {**options, "steps": handler_steps_of(rest)}


class PhaseSpec(Spec):
    """A phase: a list of steps, or a mapping with ``commands``."""

    commands: tuple[StepSpec, ...]

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, data: Any) -> Any:
        return {"commands": data} if isinstance(data, list) else data


class AgentTemplateSpec(PhaseSpec):
    """``agent_template``: the steps every map agent runs."""


class CaptureOutputSpec(Spec):
    """``capture_outputs: {NAME: {command_index, format}}`` in a setup block."""

    command_index: Count
    format: CaptureFormat = "string"


class SetupSpec(PhaseSpec):
    """``setup``: steps run once before the map phase."""

    timeout: Seconds | None = None
    capture_outputs: dict[str, Count | CaptureOutputSpec] = Field(default_factory=dict)


class ReduceSpec(PhaseSpec):
    """``reduce``: steps run once after the map phase."""

    timeout: Seconds | None = None


class MergeSpec(PhaseSpec):
    """``merge``: steps run before the result merges into the user's branch, and the shape
    of the history the merge leaves (``history: merges`` or ``squash``)."""

    commands: tuple[StepSpec, ...] = ()
    timeout: Seconds | None = None
    history: Literal["merges", "squash"] = "merges"


class TimeoutConfigSpec(Spec):
    """Prodigy's ``map.timeout_config``; only ``agent_timeout_secs`` is honoured."""

    agent_timeout_secs: Seconds | None = None
    timeout_policy: str | None = None
    cleanup_grace_period_secs: Seconds | None = None
    timeout_action: str | None = None
    command_timeouts: dict[str, Seconds] | None = None
    enable_monitoring: bool | None = None


class MapSpec(Spec):
    """``map``: one agent per work item."""

    input: str
    """A JSON file path or a command printing the items."""
    agent_template: AgentTemplateSpec
    json_path: str | None = None
    max_parallel: StrictInt | str | None = None
    """A number, or ``${NAME}`` / ``$NAME`` naming an env variable that holds one."""
    filter: str | None = None
    sort_by: str | None = None
    max_items: Count | None = None
    offset: Count | None = None
    distinct: str | None = None
    agent_timeout_secs: Seconds | None = None
    timeout_config: TimeoutConfigSpec | None = None
    isolation: Literal["worktree", "none"] | None = None
    auto_commit: StrictBool | None = None
    """Commit what an agent leaves uncommitted (treefork's key; default true). False: such
    an agent's item fails and its worktree is kept."""
    error_policy: ErrorPolicySpec | None = None
    """The map's own error policy, over the workflow's."""
    on_item_failure: Literal["dlq", "retry", "skip", "stop"] | None = None
    continue_on_failure: bool | None = None
    max_failures: PositiveCount | None = None
    failure_threshold: Fraction | None = None


class RetryConfigSpec(Spec):
    """Prodigy's ``error_policy.retry_config``."""

    max_attempts: PositiveCount = 3
    backoff: Any = None
    """Not supported: items are retried at once (a warning)."""


class ErrorPolicySpec(Spec):
    """``error_policy``: what happens when a work item fails."""

    on_item_failure: Literal["dlq", "retry", "skip", "stop"] | None = None
    continue_on_failure: bool | None = None
    max_failures: PositiveCount | None = None
    failure_threshold: Fraction | None = None
    max_retries: Count | None = None
    retry_config: RetryConfigSpec | None = None
    error_collection: Any = None
    """Prodigy: how errors are reported; not supported (a warning)."""
    circuit_breaker: Any = None
    """Prodigy: stop calling a failing dependency; not supported (a warning)."""


class SecretEnvSpec(Spec):
    """Prodigy's ``NAME: {secret: true, value: ...}``."""

    value: str
    secret: bool = False


EnvValue = EnvScalar | SecretEnvSpec


class BudgetSpec(Spec):
    """``budget``: limits for the whole job."""

    tokens: PositiveCount | None = None
    cost: PositiveNumber | None = None
    agent_runs: PositiveCount | None = None


class _WorkflowCommon(Spec):
    """Keys both formats share."""

    name: str | None = None
    task: str | None = None
    budget: BudgetSpec | None = None
    max_parallel: StrictInt | str | None = None
    env: dict[str, EnvValue] = Field(default_factory=dict)
    merge: MergeSpec | None = None
    error_policy: ErrorPolicySpec | None = None
    on_item_failure: Literal["dlq", "retry", "skip", "stop"] | None = None
    continue_on_failure: bool | None = None
    max_failures: PositiveCount | None = None
    failure_threshold: Fraction | None = None
    error_collection: Any = None
    secrets: Any = None
    """Prodigy's secrets: names and where each value is (checked in
    :mod:`treefork.workflow.sources`)."""
    env_files: Any = None
    """Prodigy's env files (checked in :mod:`treefork.workflow.sources`)."""
    profiles: Any = None
    """Prodigy's env profiles (checked in :mod:`treefork.workflow.sources`)."""
    active_profile: Any = None
    """The profile used when neither ``--profile`` nor ``$TREEFORK_PROFILE`` names one."""
    inherit: bool | None = None
    """Prodigy's ``inherit: false`` (no parent environment); not supported (a warning)."""


class ProdigyWorkflowSpec(_WorkflowCommon):
    """A Prodigy MapReduce workflow (``mode: mapreduce``): one domain."""

    name: str
    mode: Literal["mapreduce"]
    setup: SetupSpec | None = None
    map: MapSpec
    reduce: ReduceSpec | None = None


class DomainSpec(Spec):
    """One entry of ``domains`` in treefork's format."""

    keywords: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    critical: bool = False
    description: str = ""
    env: dict[str, EnvValue] = Field(default_factory=dict)
    setup: SetupSpec | None = None
    map: MapSpec
    reduce: ReduceSpec | None = None
    tests: str | None = None
    error_policy: ErrorPolicySpec | None = None
    on_worktree_create: str | None = None
    worktree_include: tuple[str, ...] = ()


class TreeforkWorkflowSpec(_WorkflowCommon):
    """treefork's format: ``domains`` and whole-job settings."""

    mode: Literal["mapreduce", "treefork"] | None = None
    domains: dict[str, DomainSpec]


StepSpec.model_rebuild()

REFUSED_STEP_KINDS: dict[str, str] = {
    "goal_seek": "Prodigy's goal-seeking loop (goal_seek) is not supported: run the command "
    "and its check in a shell step, with retry_config to try again",
    "foreach": "Prodigy's foreach steps are not supported: give the items to map (an agent "
    "each), or loop in a shell step",
    "analyze": "Prodigy's analyze step is not supported: run the analysis as a shell step",
    "test": "Prodigy's legacy test step is not supported: write it as shell: with on_failure",
}
"""Step kinds Prodigy documents that treefork refuses, with the reason."""

UNSUPPORTED: dict[str, str] = {
    "validate": "Prodigy's validation loop (validate/threshold/on_incomplete) is not run",
    "inherit": "inherit: false is not supported: steps get the process environment (set "
    "variables to empty values in env to hide them)",
    "error_collection": "error_collection is not supported; failures are reported per item",
    "circuit_breaker": "circuit_breaker is not supported",
    "retry_config.backoff": "retry_config.backoff is not supported; failed items are retried "
    "without delay",
    "on_failure.max_attempts": "on_failure.max_attempts is not supported: the handler runs "
    "once and the failed step is not run again",
    "handler_failure_fatal": "handler_failure_fatal: false is not supported: when the "
    "on_failure handler fails, the step fails (add fail_workflow: false to go on)",
    "on_failure.capture": "on_failure.capture is not supported: capture the handler "
    "command's output with capture on that command",
    "max_attempts_with_handler": "max_attempts with on_failure: the step is tried that many "
    "times, then the handler runs once (Prodigy runs the handler between attempts)",
    "step_retry_config.option": "is not honoured: every failure is retried, after a delay that "
    "doubles from initial_delay up to max_delay, with no jitter",
    "step_retry_config.backoff": "is approximated: the delay doubles from initial_delay up to "
    "max_delay (exponential); fixed and exponential are exact",
    "write_file.format": "write_file.format is not applied; the content is written as it is",
    "write_file.create_dirs": "write_file.create_dirs is not an option; parent directories are "
    "created as needed",
    "timeout_config": "of timeout_config only agent_timeout_secs is honoured",
    "capture_streams": "capture_streams exit_code/success/duration are not captured",
    "phase_timeout": "a phase timeout is applied to each of its steps that has no timeout of "
    "its own, not to the phase as a whole",
}
"""Prodigy features accepted but not honoured, with the warning each one gets."""
