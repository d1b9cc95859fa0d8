"""Claude steps: the Claude CLI (or any command configured in its place) with a prompt.

The command is, in order: the runner's ``claude_command``, the environment variable
``TREEFORK_CLAUDE_COMMAND`` (or ``TREEFORK_CLAUDE``) split like a shell would, or
``claude -p {prompt} --output-format json``. Every ``{prompt}`` in an argument is replaced
by the interpolated prompt, which stays one argument: no shell is involved. A command without
``{prompt}`` receives the prompt on standard input.

Output: the CLI's JSON result (``{"type": "result", "result": ..., "usage": ...,
"total_cost_usd": ...}``, or a list of events whose last ``result`` counts) gives the text
and the usage (input tokens include cache reads and writes). Output that is not such JSON is
taken as plain text with no usage, so any command can stand in for the CLI. A non-zero exit
or ``"is_error": true`` fails the step.
"""

from __future__ import annotations

import functools
import json
import shlex
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from treefork.core.interpolate import render_text, stringify
from treefork.errors import InterpolationError, StepError, StepTimeoutError
from treefork.runners.context import (
    StepContext,
    StepRun,
    command_environment,
    make_error,
    tail,
    time_limit,
    working_directory,
)
from treefork.runners.process import ProcessResult, run_process
from treefork.steps import Claude, Usage

__all__ = (
    "COMMAND_VARIABLES",
    "DEFAULT_CLAUDE_COMMAND",
    "ClaudeReply",
    "claude_argv",
    "parse_claude_output",
    "run_claude",
)

DEFAULT_CLAUDE_COMMAND = ("claude", "-p", "{prompt}", "--output-format", "json")
"""The command when nothing else is configured."""
COMMAND_VARIABLES = ("TREEFORK_CLAUDE_COMMAND", "TREEFORK_CLAUDE")
"""Environment variables that name the command (first one set wins)."""
_PLACEHOLDER = "{prompt}"


@dataclass(frozen=True, slots=True)
class ClaudeReply:
    """What the CLI answered."""

    text: str
    """The result text (or the whole output when it was not the CLI's JSON)."""
    usage: Usage
    """Tokens and cost reported."""
    is_error: bool
    """The CLI reported an error result."""


def claude_argv(template: Sequence[str], prompt: str) -> tuple[list[str], bytes | None]:
    """The argv for a prompt, and the stdin to give (the prompt, when no ``{prompt}``).

    Args:
        template: The command with ``{prompt}`` placeholders.
        prompt: The interpolated prompt.
    """
    if not any(_PLACEHOLDER in argument for argument in template):
        return list(template), prompt.encode("utf-8")
    return [argument.replace(_PLACEHOLDER, prompt) for argument in template], None


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _usage(result: Mapping[str, Any]) -> Usage:
    raw = result.get("usage")
    usage: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    tokens_in = sum(
        _count(usage, key)
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    cost = result.get("total_cost_usd", result.get("cost_usd", 0.0))
    cost = float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else 0.0
    return Usage(tokens_in, _count(usage, "output_tokens"), cost)


def _result_event(document: Any) -> Mapping[str, Any] | None:
    if isinstance(document, Mapping) and ("result" in document or document.get("type") == "result"):
        return document
    if isinstance(document, list):
        results = [
            event
            for event in document
            if isinstance(event, Mapping) and event.get("type") == "result"
        ]
        return results[-1] if results else None
    return None


def parse_claude_output(stdout: str) -> ClaudeReply:
    """Read the CLI's JSON output; anything else is plain text with no usage."""
    try:
        document = json.loads(stdout)
    except ValueError:
        return ClaudeReply(stdout, Usage(), is_error=False)
    result = _result_event(document)
    if result is None:
        return ClaudeReply(stdout, Usage(), is_error=False)
    text = result.get("result", "")
    return ClaudeReply(
        text if isinstance(text, str) else stringify(text),
        _usage(result),
        is_error=bool(result.get("is_error", False)),
    )


def _template(context: StepContext, env: Mapping[str, str]) -> Sequence[str]:
    if context.claude_command:
        return context.claude_command
    for name in COMMAND_VARIABLES:
        if env.get(name, "").strip():
            return shlex.split(env[name])
    return DEFAULT_CLAUDE_COMMAND


async def run_claude(
    step: Claude, context: StepContext, scope: Mapping[str, Any], env: Mapping[str, str]
) -> StepRun:
    """Run one attempt of a Claude step.

    Args:
        step: The step.
        context: Where it runs.
        scope: The interpolation scope.
        env: The rendered domain and step env.

    Returns:
        The attempt, with the reply's text as output and its usage; ``error`` is set on a
        non-zero exit, an error result or a timeout.
    """
    try:
        prompt = render_text(step.prompt, scope)
        cwd = await anyio.to_thread.run_sync(working_directory, context, step, scope)
    except InterpolationError as error:
        raise make_error(context, step, str(error)) from error
    environment = command_environment(env, {}, read_only=not context.allow_commits)
    argv, stdin = claude_argv(_template(context, environment), prompt)
    found = bool(argv) and await anyio.to_thread.run_sync(
        functools.partial(shutil.which, argv[0], path=environment.get("PATH"))
    ) is not None
    if not found:
        program = argv[0] if argv else "(empty command)"
        reason = f"claude command not found: {program} (set TREEFORK_CLAUDE_COMMAND)"
        raise make_error(context, step, reason)
    timeout = time_limit(context, step)
    try:
        result = await run_process(argv, cwd=cwd, env=environment, timeout=timeout, stdin=stdin)
    except OSError as error:
        raise make_error(context, step, f"could not start {argv[0]}: {error}") from error
    reply = parse_claude_output(result.stdout)
    failure = _failure(step, context, result, reply, timeout)
    return StepRun(reply.text, result.stderr, result.exit_code, reply.usage, error=failure)


def _failure(
    step: Claude,
    context: StepContext,
    result: ProcessResult,
    reply: ClaudeReply,
    timeout: float | None,
) -> StepError | None:
    output_tail = tail(result.stdout + result.stderr)
    if result.timed_out:
        reason = f"timed out after {timeout:g}s; its processes were killed"
        return make_error(context, step, reason, output_tail=output_tail, kind=StepTimeoutError)
    if result.exit_code != 0:
        reason = f"the claude command exited with code {result.exit_code}"
        return make_error(
            context, step, reason, exit_code=result.exit_code, output_tail=output_tail
        )
    if reply.is_error:
        reason = f"claude reported an error: {tail(reply.text, 500)}"
        return make_error(context, step, reason, output_tail=output_tail)
    return None
