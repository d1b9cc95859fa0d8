"""Warnings for Prodigy features a workflow uses that treefork accepts but does not honour.

A workflow with them still loads (they are in Prodigy's own examples), but each one is
named with its location, never dropped silently. The texts are in
:data:`treefork.workflow.schema.UNSUPPORTED`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from treefork.workflow.layout import DomainLayout, StepAt, get, phase_steps, step_kind, walk_steps
from treefork.workflow.schema import UNSUPPORTED
from treefork.workflow.source import DataPath, SourceMap, dotted

__all__ = ("unsupported_warnings",)

_TIMEOUT_CONFIG_HONOURED = frozenset({"agent_timeout_secs"})
_STREAM_EXTRAS = ("exit_code", "success", "duration")


def _warning(source: SourceMap, path: DataPath, topic: str) -> str:
    return f"{source.where(path, key=True)}: {dotted(path)}: {UNSUPPORTED[topic]}"


def _retry_config_warnings(retry_config: Any, path: DataPath, source: SourceMap) -> Iterator[str]:
    if not isinstance(retry_config, dict):
        return
    for key in ("jitter", "jitter_factor", "retry_on", "retry_budget", "on_failure"):
        if retry_config.get(key) not in (None, False):
            yield _warning(source, (*path, "retry_config", key), "step_retry_config.option")
    backoff = retry_config.get("backoff")
    strategy = next(iter(backoff), None) if isinstance(backoff, dict) else backoff
    if strategy not in (None, "exponential", "fixed"):
        yield _warning(source, (*path, "retry_config", "backoff"), "step_retry_config.backoff")


def _step_warnings(at: StepAt, source: SourceMap) -> Iterator[str]:
    step, path = at.step, at.path
    if step.get("validate") is not None:
        yield _warning(source, (*path, "validate"), "validate")
    on_failure = step.get("on_failure")
    if isinstance(on_failure, dict):
        options = ("max_attempts", "max_retries", "fail_workflow", "strategy", "timeout")
        handler = [key for key in on_failure if key not in options]
        for key in ("max_attempts", "max_retries"):
            if key in on_failure and handler:  # alone, it is the step's retry
                yield _warning(source, (*path, "on_failure", key), "on_failure.max_attempts")
        if on_failure.get("handler_failure_fatal") is False:
            yield _warning(
                source, (*path, "on_failure", "handler_failure_fatal"), "handler_failure_fatal"
            )
        if on_failure.get("capture") is not None:
            yield _warning(source, (*path, "on_failure", "capture"), "on_failure.capture")
    if step.get("max_attempts") and on_failure not in (None, True, False):
        yield _warning(source, (*path, "max_attempts"), "max_attempts_with_handler")
    yield from _retry_config_warnings(step.get("retry_config"), path, source)
    write_file = step.get("write_file")
    if isinstance(write_file, dict):
        if write_file.get("format") not in (None, "text"):
            yield _warning(source, (*path, "write_file", "format"), "write_file.format")
        if "create_dirs" in write_file:
            yield _warning(source, (*path, "write_file", "create_dirs"), "write_file.create_dirs")
    streams = step.get("capture_streams")
    if isinstance(streams, dict) and any(streams.get(extra) for extra in _STREAM_EXTRAS):
        yield _warning(source, (*path, "capture_streams"), "capture_streams")
    if step.get("capture_output") is True and step_kind(step) == "claude":
        yield (
            f"{source.where((*path, 'capture_output'), key=True)}: "
            f"{dotted((*path, 'capture_output'))}: ${{claude.output}} is not provided; name the "
            "variable to keep the output in with capture: NAME"
        )


def _phase_warnings(data: Any, path: DataPath, source: SourceMap) -> Iterator[str]:
    block = get(data, path)
    if isinstance(block, dict) and block.get("timeout") is not None:
        yield _warning(source, (*path, "timeout"), "phase_timeout")
    for at in walk_steps(phase_steps(data, path)):
        yield from _step_warnings(at, source)


def _map_warnings(data: Any, path: DataPath, source: SourceMap) -> Iterator[str]:
    timeout_config = get(data, (*path, "timeout_config"))
    if isinstance(timeout_config, dict):
        for key in timeout_config:
            if key not in _TIMEOUT_CONFIG_HONOURED:
                yield _warning(source, (*path, "timeout_config", key), "timeout_config")
    yield from _phase_warnings(data, (*path, "agent_template"), source)


def _policy_warnings(data: Any, path: DataPath, source: SourceMap) -> Iterator[str]:
    policy = get(data, path)
    if not isinstance(policy, dict):
        return
    for topic in ("error_collection", "circuit_breaker"):
        if policy.get(topic) is not None:
            yield _warning(source, (*path, topic), topic)
    retry_config = policy.get("retry_config")
    if isinstance(retry_config, dict) and retry_config.get("backoff") is not None:
        yield _warning(source, (*path, "retry_config", "backoff"), "retry_config.backoff")


def unsupported_warnings(
    data: Any, domains: list[DomainLayout], source: SourceMap
) -> Iterator[str]:
    """A warning (``file:line:col: ...``) for every unsupported Prodigy feature in use."""
    if get(data, ("error_collection",)) is not None:
        yield _warning(source, ("error_collection",), "error_collection")
    if get(data, ("inherit",)) is False:
        yield _warning(source, ("inherit",), "inherit")
    yield from _policy_warnings(data, ("error_policy",), source)
    for domain in domains:
        if domain.path:
            yield from _policy_warnings(data, domain.at("error_policy"), source)
        yield from _phase_warnings(data, domain.at("setup"), source)
        yield from _map_warnings(data, domain.at("map"), source)
        yield from _phase_warnings(data, domain.at("reduce"), source)
    yield from _phase_warnings(data, ("merge",), source)
