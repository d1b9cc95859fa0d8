"""Running steps: the executor that setup, map agents, reduce and tests share.

Steps run in order; the first failure that no ``on_failure`` handles stops the list. For
each step:

1. ``env`` (domain, then step) is interpolated; ``when`` is evaluated
   (:func:`treefork.core.conditions.holds`) and, when false, the step is skipped.
2. The step runs: :mod:`~treefork.runners.shell`, :mod:`~treefork.runners.claude`,
   :mod:`~treefork.runners.agent` or :mod:`~treefork.runners.files`. Its timeout is capped
   by the time left before the agent's deadline.
3. ``commit_required``: HEAD must have moved since before the step, else
   :class:`~treefork.errors.CommitRequiredError`.
4. ``retry``: a failed attempt is tried again after ``backoff`` seconds, doubling each time
   up to ``max_delay`` (never past the deadline). Errors that cannot change on a second try
   (an unknown ``${...}`` reference) are not retried.
5. On success, ``capture`` stores the parsed output (:mod:`treefork.core.capture`) and an
   agent's variables join the scope. ``shell`` always holds the latest shell step's output.
6. On failure, the ``on_failure`` steps run in the same context: if they all succeed the
   failure is handled (the result says so) and the list goes on.
7. Read-only contexts (``allow_commits=False``): git refuses to move HEAD or a branch in
   the step's commands (:mod:`treefork.environment`), and the step fails saying so; a step
   that moved HEAD all the same fails too, whatever else happened.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from treefork.core.capture import parse_capture
from treefork.core.conditions import holds
from treefork.core.masking import mask_text
from treefork.environment import READ_ONLY_REFUSAL, read_only_hooks
from treefork.errors import CommitRequiredError, GitError, InterpolationError, StepError
from treefork.git.refs import head_commit
from treefork.runners.agent import run_agent
from treefork.runners.claude import run_claude
from treefork.runners.context import (
    StepContext,
    StepRun,
    interpolation_scope,
    make_error,
    rendered_environment,
    tail,
)
from treefork.runners.files import run_write_file
from treefork.runners.shell import run_shell
from treefork.steps import AgentStep, Claude, Retry, Shell, Step, Usage, WriteFile

__all__ = ("StepContext", "StepResult", "StepsOutcome", "run_step", "run_steps")

logger = logging.getLogger("treefork")


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one step did."""

    label: str
    """The step's name in logs and events."""
    ok: bool
    """It succeeded, was skipped, or its failure was handled by ``on_failure``."""
    skipped: bool
    """Its ``when`` condition was false."""
    exit_code: int | None
    """Exit code of its command, if it ran one."""
    output: str
    """Its output (stdout, the Claude reply, the agent's output, the path written)."""
    stderr: str
    """Standard error of its command."""
    usage: Usage
    """Tokens and cost, over every attempt and the ``on_failure`` steps."""
    duration: float
    """Seconds it took, retries and handlers included."""
    attempts: int
    """Attempts made (0 when skipped)."""
    error: str | None
    """Why it failed; for a handled failure, the failure followed by "(handled by on_failure)"."""


@dataclass(frozen=True, slots=True)
class StepsOutcome:
    """What a list of steps did."""

    ok: bool
    """Every step succeeded, was skipped or had its failure handled."""
    error: StepError | None
    """The failure that stopped the list."""
    results: tuple[StepResult, ...]
    """One result per step that was reached, in order."""
    usage: Usage
    """Tokens and cost of all of them."""
    output_tail: str
    """The end of the failed step's output, else of the last step that ran."""


async def run_steps(steps: Sequence[Step], context: StepContext) -> StepsOutcome:
    """Run steps in order until one fails unhandled.

    Args:
        steps: The steps.
        context: Where they run; captures land in ``context.variables``.

    Returns:
        The outcome; failures are reported in it, not raised.
    """
    # ${step.*} and ${last.*} belong to this list of steps: a handler's list restores the
    # failed step's on its way out, and a phase's do not leak into the next phase.
    outer = {name: context.variables.get(name, _UNSET) for name in _STEP_ROOTS}
    try:
        return await _run_all(steps, context)
    finally:
        for name, value in outer.items():
            if value is _UNSET:
                context.variables.pop(name, None)
            else:
                context.variables[name] = value


_STEP_ROOTS = ("step", "last")
_UNSET = object()


async def _run_all(steps: Sequence[Step], context: StepContext) -> StepsOutcome:
    results: list[StepResult] = []
    usage = Usage()
    for index, step in enumerate(steps):
        context.variables["step"] = {"name": step.label, "index": index}
        result, error = await _run(step, context)
        results.append(result)
        usage = usage + result.usage
        if error is not None:
            output_tail = error.output_tail or tail(result.output + result.stderr)
            return StepsOutcome(False, error, tuple(results), usage, output_tail)
    ran = [result for result in results if not result.skipped]
    output_tail = tail(ran[-1].output + ran[-1].stderr) if ran else ""
    return StepsOutcome(True, None, tuple(results), usage, output_tail)


async def run_step(step: Step, context: StepContext) -> StepResult:
    """Run one step with all its options.

    Raises:
        StepError: The step failed and no ``on_failure`` handled it
            (:class:`~treefork.errors.StepTimeoutError`,
            :class:`~treefork.errors.CommitRequiredError`, ...).
    """
    result, error = await _run(step, context)
    if error is not None:
        raise error
    return result


# --- one step ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Progress:
    """A step's run so far."""

    run: StepRun
    attempts: int
    usage: Usage
    handled: str | None = None


async def _run(step: Step, context: StepContext) -> tuple[StepResult, StepError | None]:
    started = anyio.current_time()
    try:
        env = rendered_environment(context, step)
        skip = step.when is not None and not holds(step.when, interpolation_scope(context, env))
    except (InterpolationError, ValueError) as error:
        failure = make_error(context, step, str(error))
        failure.__cause__ = error
        return _finish(step, context, started, _Progress(StepRun(error=failure), 0, Usage()))
    if skip:
        return _finish(step, context, started, None)
    _emit(context, "step_start", step=step.label)
    if not context.allow_commits:  # made off the event loop, before any command needs it
        await anyio.to_thread.run_sync(read_only_hooks)
    head = await _head(context) if step.commit_required or not context.allow_commits else None
    progress = await _attempts(step, context, env, head)
    # ${last.*}: the step just run, for the steps after it and its on_failure handlers.
    last = {"output": progress.run.output.removesuffix("\n"), "exit_code": progress.run.exit_code}
    context.variables["last"] = last
    if progress.run.error is None:
        _keep_results(step, context, progress)
    if progress.run.error is None and step.on_success:
        await _after_success(step, context, progress)
    if progress.run.error is not None and step.on_failure:
        await _handle_failure(step, context, progress)
    if not context.allow_commits:
        await _refuse_commits(step, context, head, progress)
    if progress.run.error is not None and step.continue_on_failure:
        progress.handled = f"{progress.run.error} (continued: the step may fail)"
        progress.run = dataclasses.replace(progress.run, error=None)
    return _finish(step, context, started, progress)


async def _attempts(
    step: Step, context: StepContext, env: Mapping[str, str], head: str | None
) -> _Progress:
    retry = step.retry or Retry(attempts=1)
    total = max(1, retry.attempts)
    delay = retry.backoff
    usage = Usage()
    for attempt in range(1, total + 1):
        run = await _attempt(step, context, env, head)
        usage = usage + run.usage
        if run.error is None or attempt == total or not _retryable(run.error, context):
            return _Progress(run, attempt, usage)
        logger.info("step %r failed (attempt %d of %d): %s", step.label, attempt, total, run.error)
        await anyio.sleep(_pause(delay, retry, context))
        delay *= 2
    raise AssertionError("unreachable: the last attempt always returns")


async def _attempt(
    step: Step, context: StepContext, env: Mapping[str, str], head: str | None
) -> StepRun:
    scope = interpolation_scope(context, env)  # again each time: ``shell`` may have changed
    try:
        run = await _dispatch(step, context, scope, env)
    except StepError as error:  # an agent's own StepError may say what it spent
        spent = error.usage if isinstance(error.usage, Usage) else Usage()
        return StepRun(usage=spent, error=error)
    if run.error is None and step.commit_required and await _head(context) == head:
        failure = make_error(
            context,
            step,
            "commit_required: the step did not create a commit",
            output_tail=tail(run.output + run.stderr),
            kind=CommitRequiredError,
        )
        return dataclasses.replace(run, error=failure)
    return run


async def _dispatch(
    step: Step, context: StepContext, scope: Mapping[str, Any], env: Mapping[str, str]
) -> StepRun:
    if isinstance(step, Shell):
        return await run_shell(step, context, scope, env)
    if isinstance(step, Claude):
        return await run_claude(step, context, scope, env)
    if isinstance(step, AgentStep):
        return await run_agent(step, context, scope)
    if isinstance(step, WriteFile):
        return await run_write_file(step, context, scope)
    raise make_error(context, step, f"unknown kind of step: {type(step).__name__}")


def _retryable(error: StepError, context: StepContext) -> bool:
    if isinstance(error.__cause__, InterpolationError):
        return False
    return context.deadline is None or anyio.current_time() < context.deadline


def _pause(delay: float, retry: Retry, context: StepContext) -> float:
    pause = min(delay, retry.max_delay)
    if context.deadline is not None:
        pause = min(pause, context.deadline - anyio.current_time())
    return max(0.0, pause)


# --- after the attempts --------------------------------------------------------------------


def _keep_results(step: Step, context: StepContext, progress: _Progress) -> None:
    """Put the step's variables and capture in scope; a capture that does not parse fails."""
    run = progress.run
    context.variables.update(run.variables)
    if isinstance(step, Claude):
        context.variables["claude"] = {"output": run.output}
    if step.capture is None:
        return
    streams = {"stdout": run.output, "stderr": run.stderr, "both": run.output + run.stderr}
    try:
        value = parse_capture(
            streams[step.capture_streams], step.capture_format, variable=step.capture
        )
    except ValueError as error:
        failure = make_error(context, step, str(error), output_tail=tail(run.output + run.stderr))
        progress.run = dataclasses.replace(run, error=failure)
        return
    _store(context.variables, step.capture, value)


def _store(variables: dict[str, Any], name: str, value: Any) -> None:
    """``name`` may be dotted (``shell.output``): nested dicts are created as needed."""
    *parents, last = name.split(".")
    target = variables
    for parent in parents:
        existing = target.get(parent)
        target[parent] = dict(existing) if isinstance(existing, Mapping) else {}
        target = target[parent]
    target[last] = value


async def _handle_failure(step: Step, context: StepContext, progress: _Progress) -> None:
    error = progress.run.error
    assert error is not None
    handlers = await run_steps(step.on_failure, context)
    progress.usage = progress.usage + handlers.usage
    if handlers.ok:
        progress.handled = f"{error} (handled by on_failure)"
        progress.run = dataclasses.replace(progress.run, error=None)
        return
    reason = f"{error.reason}; on_failure handler failed: {handlers.error}"
    progress.run = dataclasses.replace(progress.run, error=_with_reason(error, reason))


async def _after_success(step: Step, context: StepContext, progress: _Progress) -> None:
    """Run the ``on_success`` steps; when one fails, so does the step (its handlers run)."""
    after = await run_steps(step.on_success, context)
    progress.usage = progress.usage + after.usage
    if not after.ok:
        reason = f"succeeded, but its on_success step failed: {after.error}"
        failure = make_error(context, step, reason, output_tail=after.output_tail)
        progress.run = dataclasses.replace(progress.run, error=failure)


def _with_reason(error: StepError, reason: str) -> StepError:
    renewed = type(error)(
        phase=error.phase,
        step=error.step,
        reason=reason,
        item_id=error.item_id,
        domain=error.domain,
        exit_code=error.exit_code,
        output_tail=error.output_tail,
        worktree=error.worktree,
        usage=error.usage,
    )
    renewed.__cause__ = error.__cause__
    return renewed


async def _refuse_commits(
    step: Step, context: StepContext, before: str | None, progress: _Progress
) -> None:
    after = await _head(context)
    if after != before:  # moved all the same (a command that bypasses the refusing hook)
        reason = (
            f"{READ_ONLY_REFUSAL}, but HEAD moved from "
            f"{(before or 'nothing')[:12]} to {(after or 'nothing')[:12]}"
        )
    elif progress.run.error is not None and READ_ONLY_REFUSAL in progress.run.stderr:
        code = progress.run.exit_code
        reason = f"{READ_ONLY_REFUSAL}: its git refused to update HEAD or a branch" + (
            f" (exit code {code})" if code is not None else ""
        )
    else:
        return
    progress.handled = None
    progress.run = dataclasses.replace(progress.run, error=make_error(context, step, reason))


async def _head(context: StepContext) -> str | None:
    """The commit HEAD points to in the worktree; None when there is none (or no repo)."""
    try:
        # Read from git's ref files (no process) around every step that must or must not
        # commit: thousands of times in a large map phase.
        return await head_commit(context.worktree)
    except GitError:
        return None


# --- results and events ----------------------------------------------------------------------


def _finish(
    step: Step, context: StepContext, started: float, progress: _Progress | None
) -> tuple[StepResult, StepError | None]:
    duration = anyio.current_time() - started
    if progress is None:
        result = StepResult(step.label, True, True, None, "", "", Usage(), duration, 0, None)
        _emit(context, "step_end", step=step.label, ok=True, skipped=True, duration=duration)
        return result, None
    run = progress.run
    error = run.error
    if error is not None:
        error.usage = progress.usage  # everything the step spent, retries and handlers included
    # Output is masked here, after capture took it as it is (errors mask themselves):
    # results go to the state, the job store and the report.
    message = str(error) if error is not None else progress.handled
    result = StepResult(
        label=step.label,
        ok=error is None,
        skipped=False,
        exit_code=run.exit_code,
        output=mask_text(run.output),
        stderr=mask_text(run.stderr),
        usage=progress.usage,
        duration=duration,
        attempts=progress.attempts,
        error=message,
    )
    _emit(
        context,
        "step_end",
        step=step.label,
        ok=result.ok,
        skipped=False,
        duration=duration,
        attempts=progress.attempts,
        error=message,
    )
    return result, error


def _emit(context: StepContext, event: str, **fields: Any) -> None:
    if context.emit is None:
        return
    payload = {
        "event": event,
        "phase": context.phase,
        "domain": context.domain,
        "item": context.item_id,
        **fields,
    }
    try:
        context.emit(payload)
    except Exception:  # progress reporting must never fail a step
        logger.exception("could not emit %s", event)
