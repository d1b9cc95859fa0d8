"""From a validated workflow document to treefork's objects (:class:`Workflow`).

Runs only on documents without problems, so it trusts the schema and the checks. How
Prodigy's fields map:

- ``setup`` / ``reduce`` / ``merge`` steps → :mod:`treefork.steps` objects; a phase
  ``timeout`` becomes the timeout of each of its steps that has none (with a warning).
- ``setup.capture_outputs: {NAME: index}`` → ``capture=NAME`` on that setup step.
- ``map`` → :class:`treefork.domain.Map`: ``agent_template`` → ``agent``,
  ``agent_timeout_secs`` (or ``timeout_config.agent_timeout_secs``) → ``agent_timeout``,
  ``max_parallel`` resolved from the env, ``input`` with env references replaced; the input
  string is kept otherwise (the engine reads an existing file or a ``.json`` name as a
  file, anything else as a command).
- ``error_policy`` and its top-level shortcuts → :class:`treefork.domain.ErrorPolicy`;
  ``retry_config.max_attempts`` → ``max_retries`` (attempts after the first).
- ``capture: NAME`` / ``capture_output: NAME`` → ``capture``; ``capture_output: true`` and
  ``capture: shell.output`` need nothing (``${shell.output}`` is always there after a shell
  step); ``capture_streams`` → ``stdout``/``stderr``/``both``.
- ``on_failure`` (a step, a list, or ``{claude/shell, max_attempts, fail_workflow}``) →
  ``on_failure`` steps; ``retry`` (a number or a mapping) → :class:`treefork.steps.Retry`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

from treefork.domain import Budget, Domain, ErrorPolicy, Map
from treefork.steps import Claude, Retry, Shell, Step, WriteFile
from treefork.workflow.checks import ResolvedEnv, parse_file_mode
from treefork.workflow.env import env_text, resolve_count, substitute_env
from treefork.workflow.layout import (
    StepAt,
    domain_layouts,
    domain_name_for,
    handler_steps,
    phase_steps,
)
from treefork.workflow.model import Workflow
from treefork.workflow.schema import (
    POLICY_SHORTCUTS,
    CaptureOutputSpec,
    CaptureStreamsSpec,
    DomainSpec,
    ErrorPolicySpec,
    MapSpec,
    PhaseSpec,
    ProdigyWorkflowSpec,
    RetrySpec,
    SetupSpec,
    StepSpec,
    TreeforkWorkflowSpec,
)
from treefork.workflow.source import DataPath, SourceMap

__all__ = ("compile_step", "compile_workflow")


class _Options(TypedDict):
    name: str | None
    timeout: float | None
    commit_required: bool
    on_failure: tuple[Step, ...]
    on_success: tuple[Step, ...]
    continue_on_failure: bool
    capture: str | None
    capture_format: Any
    capture_streams: Any
    retry: Retry | None
    env: dict[str, str]
    when: str | None
    working_dir: str | None


# --------------------------------------------------------------------------- steps


def _capture_name(spec: StepSpec) -> str | None:
    for name in (spec.capture, spec.capture_output):
        if isinstance(name, str) and name != "shell.output":
            return name
    return None


def _streams(spec: StepSpec) -> str:
    streams = spec.capture_streams
    if not isinstance(streams, CaptureStreamsSpec):
        return streams or "stdout"
    if streams.stdout and streams.stderr:
        return "both"
    return "stderr" if streams.stderr else "stdout"


def _retry(spec: RetrySpec | None) -> Retry | None:
    if spec is None:
        return None
    # "exponential" is what treefork always does: start at the default 1s and double.
    backoff = spec.backoff if isinstance(spec.backoff, float) else 1.0
    return Retry(attempts=spec.attempts, backoff=backoff, max_delay=spec.max_delay)


def _may_fail(spec: StepSpec) -> bool:
    """Whether the steps after this one run when it fails (Prodigy's ``fail_workflow:
    false``, on the step or its ``on_failure``, or a handler's ``continue_on_error``)."""
    handler_says = spec.on_failure is not None and spec.on_failure.fail_workflow is False
    return handler_says or spec.fail_workflow is False or bool(spec.continue_on_error)


def _command_retry(spec: StepSpec) -> Retry | None:
    """Prodigy's command-level ``retry_config`` (or ``max_attempts``) as a retry."""
    config = spec.retry_config
    if config is None:
        return Retry(attempts=spec.max_attempts) if spec.max_attempts else None
    # Doubling from initial_delay up to max_delay; "fixed" waits initial_delay each time.
    backoff = config.backoff
    fixed = backoff == "fixed" or (isinstance(backoff, dict) and "fixed" in backoff)
    ceiling = config.initial_delay if fixed else max(config.max_delay, config.initial_delay)
    return Retry(attempts=config.attempts, backoff=config.initial_delay, max_delay=ceiling)


def _handler_retry(spec: StepSpec) -> Retry | None:
    """``on_failure: {max_attempts: N}`` with no handler command: try the step N times."""
    on_failure = spec.on_failure
    if on_failure is None or on_failure.steps or not on_failure.max_attempts:
        return None
    return Retry(attempts=on_failure.max_attempts)


def _options(spec: StepSpec, default_timeout: float | None) -> _Options:
    handlers = spec.on_failure.steps if spec.on_failure else ()
    return _Options(
        name=spec.name,
        timeout=spec.timeout if spec.timeout is not None else default_timeout,
        commit_required=spec.commit_required,
        on_failure=tuple(
            compile_step(handler, spec.on_failure.timeout if spec.on_failure else None)
            for handler in handlers
        ),
        on_success=tuple(compile_step(after, default_timeout) for after in spec.on_success),
        continue_on_failure=_may_fail(spec),
        capture=_capture_name(spec),
        capture_format=spec.capture_format or "string",
        capture_streams=_streams(spec),
        retry=_retry(spec.retry) or _command_retry(spec) or _handler_retry(spec),
        env={name: env_text(value) for name, value in spec.env.items()},
        when=spec.when,
        working_dir=spec.working_dir,
    )


def compile_step(spec: StepSpec, default_timeout: float | None = None) -> Step:
    """One step (exactly one of shell, claude or write_file, as the checks ensured)."""
    options = _options(spec, default_timeout)
    if spec.shell is not None:
        return Shell(command=spec.shell, **options)
    if spec.claude is not None:
        return Claude(prompt=spec.claude, **options)
    if spec.write_file is None:
        raise ValueError("a step needs one of shell, claude or write_file")
    write = spec.write_file
    mode = parse_file_mode(write.mode)
    if mode is None:
        return WriteFile(path=write.path, content=write.content, **options)
    return WriteFile(path=write.path, content=write.content, mode=mode, **options)


def _phase(spec: PhaseSpec | None, timeout: float | None = None) -> tuple[Step, ...]:
    if spec is None:
        return ()
    return tuple(compile_step(step, timeout) for step in spec.commands)


def _setup(spec: SetupSpec | None) -> tuple[Step, ...]:
    steps = list(_phase(spec, spec.timeout if spec else None))
    for name, target in (spec.capture_outputs if spec else {}).items():
        index = target.command_index if isinstance(target, CaptureOutputSpec) else target
        capture_format = target.format if isinstance(target, CaptureOutputSpec) else "string"
        steps[index] = dataclasses.replace(
            steps[index], capture=name, capture_format=capture_format
        )
    return tuple(steps)


# --------------------------------------------------------------------------- map and policy


def _map(spec: MapSpec, resolved: ResolvedEnv, domain: str) -> Map:
    chain = resolved.chain(domain)
    options: dict[str, Any] = {}
    max_parallel, _ = resolve_count(spec.max_parallel, chain)
    if max_parallel is not None:
        options["max_parallel"] = max_parallel
    if spec.isolation is not None:
        options["isolation"] = spec.isolation
    if spec.auto_commit is not None:
        options["auto_commit"] = spec.auto_commit
    timeout_config = spec.timeout_config
    agent_timeout = spec.agent_timeout_secs or (
        timeout_config.agent_timeout_secs if timeout_config else None
    )
    return Map(
        input=substitute_env(spec.input, chain)[0],
        agent=_phase(spec.agent_template),
        json_path=spec.json_path,
        filter=spec.filter,
        sort_by=spec.sort_by,
        offset=spec.offset,
        max_items=spec.max_items,
        distinct=spec.distinct,
        agent_timeout=agent_timeout,
        **options,
    )


def _policy_values(spec: ErrorPolicySpec | None) -> dict[str, Any]:
    if spec is None:
        return {}
    values = {
        name: getattr(spec, name)
        for name in (
            "on_item_failure",
            "continue_on_failure",
            "max_failures",
            "failure_threshold",
            "max_retries",
        )
        if getattr(spec, name) is not None
    }
    if spec.retry_config is not None and "max_retries" not in values:
        values["max_retries"] = spec.retry_config.max_attempts - 1
    return values


def _error_policy(
    workflow: ProdigyWorkflowSpec | TreeforkWorkflowSpec, *layers: ErrorPolicySpec | None
) -> ErrorPolicy:
    """The workflow's policy (its shortcuts, then its ``error_policy``), then each layer over
    it (a domain's, a map's)."""
    shortcuts = {
        name: getattr(workflow, name)
        for name in POLICY_SHORTCUTS
        if getattr(workflow, name) is not None
    }
    values = {**shortcuts, **_policy_values(workflow.error_policy)}
    for layer in layers:
        values.update(_policy_values(layer))
    return ErrorPolicy(**values)


def _map_policy(spec: MapSpec | None) -> ErrorPolicySpec | None:
    """The map's own error policy: its ``error_policy`` and the shortcuts beside it."""
    if spec is None:
        return None
    shortcuts = {
        name: getattr(spec, name)
        for name in POLICY_SHORTCUTS
        if getattr(spec, name) is not None
    }
    if spec.error_policy is None and not shortcuts:
        return None
    base = spec.error_policy.model_dump(exclude_none=True) if spec.error_policy else {}
    return ErrorPolicySpec.model_validate({**shortcuts, **base})


# --------------------------------------------------------------------------- domains


def _prodigy_domain(spec: ProdigyWorkflowSpec, resolved: ResolvedEnv) -> Domain:
    name = domain_name_for(spec.name)
    return Domain(
        name,
        setup=_setup(spec.setup),
        map=_map(spec.map, resolved, spec.name),
        reduce=_phase(spec.reduce, spec.reduce.timeout if spec.reduce else None),
        env=resolved.domains.get(spec.name, resolved.workflow),
        error_policy=_error_policy(spec, _map_policy(spec.map)),
        # The workflow's only domain: if it fails as a whole (setup, reduce, every item),
        # the job has failed. Items sent to the DLQ while others succeed leave it partial.
        critical=True,
    )


def _treefork_domain(
    name: str, spec: DomainSpec, workflow: TreeforkWorkflowSpec, resolved: ResolvedEnv
) -> Domain:
    return Domain(
        name,
        keywords=spec.keywords,
        paths=spec.paths,
        setup=_setup(spec.setup),
        map=_map(spec.map, resolved, name),
        reduce=_phase(spec.reduce, spec.reduce.timeout if spec.reduce else None),
        tests=spec.tests,
        critical=spec.critical,
        description=spec.description,
        env=resolved.domains.get(name, resolved.workflow),
        error_policy=_error_policy(workflow, spec.error_policy, _map_policy(spec.map)),
        on_worktree_create=spec.on_worktree_create,
        worktree_include=spec.worktree_include,
    )


def _origins(data: Any, source: SourceMap, names: Sequence[str]) -> dict[str, str]:
    origins: dict[str, str] = {}

    def record(prefix: str, path: DataPath) -> None:
        for index, at in enumerate(phase_steps(data, path)):
            _record_step(origins, f"{prefix}[{index}]", at, source)

    for layout, name in zip(domain_layouts(data), names, strict=False):
        record(f"{name}.setup", layout.at("setup"))
        record(f"{name}.map.agent", layout.at("map", "agent_template"))
        record(f"{name}.reduce", layout.at("reduce"))
    record("merge", ("merge",))
    return origins


def _record_step(origins: dict[str, str], key: str, at: StepAt, source: SourceMap) -> None:
    origins[key] = source.where(at.path)
    for index, handler in enumerate(handler_steps(at)):
        _record_step(origins, f"{key}.on_failure[{index}]", handler, source)


def compile_workflow(
    spec: ProdigyWorkflowSpec | TreeforkWorkflowSpec,
    *,
    path: Path,
    data: Any,
    source: SourceMap,
    resolved: ResolvedEnv,
    warnings: Sequence[str],
) -> Workflow:
    """Build the :class:`Workflow` of a document that passed every check."""
    if isinstance(spec, ProdigyWorkflowSpec):
        domains: tuple[Domain, ...] = (_prodigy_domain(spec, resolved),)
        name = spec.name
    else:
        domains = tuple(
            _treefork_domain(domain_name, domain, spec, resolved)
            for domain_name, domain in spec.domains.items()
        )
        name = spec.name or path.stem
    budget = spec.budget
    return Workflow(
        path=path,
        name=name,
        format="prodigy" if isinstance(spec, ProdigyWorkflowSpec) else "treefork",
        task=spec.task,
        budget=Budget(budget.tokens, budget.cost, budget.agent_runs) if budget else None,
        max_parallel=resolve_count(spec.max_parallel, resolved.chain(None))[0],
        env=dict(resolved.workflow),
        domains=domains,
        merge=_phase(spec.merge, spec.merge.timeout if spec.merge else None),
        history=spec.merge.history if spec.merge else "merges",
        secrets=dict(resolved.secrets),
        profile=resolved.profile,
        warnings=tuple(warnings),
        origins=_origins(data, source, [domain.name for domain in domains]),
    )
