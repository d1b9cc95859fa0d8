"""Shell steps: a bash script in the worktree, its ``${...}`` values passed as data.

The script is rendered by :func:`treefork.core.interpolate.render_shell`: values arrive as
environment variables, and large ones as files in a private temporary directory (outside the
worktree, removed afterwards) named by ``TREEFORK_VALUES_DIR``. A script too long for one
command-line argument is run from a file in that directory instead of ``bash -c``.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import anyio

from treefork.core.interpolate import VALUES_DIR_VARIABLE, RenderedShell, render_shell
from treefork.errors import InterpolationError, StepTimeoutError
from treefork.runners.context import (
    StepContext,
    StepRun,
    command_environment,
    make_error,
    tail,
    time_limit,
    working_directory,
)
from treefork.runners.process import run_process
from treefork.steps import Shell

__all__ = ("run_shell",)

_MAX_INLINE_SCRIPT = 100 * 1024
"""Scripts longer than this (bytes) run from a file: one argument may hold at most 128 KiB."""


def _write_files(directory: Path, rendered: RenderedShell) -> Path | None:
    for name, content in rendered.files.items():
        (directory / name).write_bytes(content.encode("utf-8"))
    if len(rendered.script.encode("utf-8")) <= _MAX_INLINE_SCRIPT:
        return None
    script = directory / "script.sh"
    script.write_bytes(rendered.script.encode("utf-8"))
    return script


@contextlib.asynccontextmanager
async def _command(rendered: RenderedShell) -> AsyncIterator[tuple[list[str], dict[str, str]]]:
    """The argv and extra environment for a rendered script, with its files in place."""
    if not rendered.files and len(rendered.script.encode("utf-8")) <= _MAX_INLINE_SCRIPT:
        yield ["bash", "-c", rendered.script], dict(rendered.env)
        return
    # Creating, writing and removing the folder are blocking: done in worker threads.
    directory = await anyio.to_thread.run_sync(
        functools.partial(tempfile.mkdtemp, prefix="treefork-values-")
    )
    try:
        script = await anyio.to_thread.run_sync(_write_files, Path(directory), rendered)
        argv = ["bash", "-c", rendered.script] if script is None else ["bash", str(script)]
        yield argv, {**rendered.env, VALUES_DIR_VARIABLE: directory}
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(
                functools.partial(shutil.rmtree, directory, ignore_errors=True)
            )


def _shell_variable(stdout: str, stderr: str, exit_code: int | None) -> dict[str, Any]:
    output = stdout[:-1] if stdout.endswith("\n") else stdout
    return {"output": output, "stderr": stderr, "exit_code": exit_code}


async def run_shell(
    step: Shell, context: StepContext, scope: Mapping[str, Any], env: Mapping[str, str]
) -> StepRun:
    """Run one attempt of a shell step.

    Sets ``context.variables["shell"]`` to ``{"output", "stderr", "exit_code"}`` (output
    without one trailing newline) whether the step succeeds or not, so ``on_failure``
    handlers can use ``${shell.output}``.

    Args:
        step: The step.
        context: Where it runs.
        scope: The interpolation scope.
        env: The rendered domain and step env.

    Returns:
        The attempt; ``error`` is set when the script failed or timed out.
    """
    try:
        rendered = render_shell(step.command, scope)
        cwd = await anyio.to_thread.run_sync(working_directory, context, step, scope)
    except InterpolationError as error:
        raise make_error(context, step, str(error)) from error
    timeout = time_limit(context, step)
    async with _command(rendered) as (argv, extra):
        try:
            result = await run_process(
                argv,
                cwd=cwd,
                env=command_environment(env, extra, read_only=not context.allow_commits),
                timeout=timeout,
            )
        except OSError as error:
            raise make_error(context, step, f"could not start bash in {cwd}: {error}") from error
    context.variables["shell"] = _shell_variable(result.stdout, result.stderr, result.exit_code)
    output_tail = tail(result.stdout + result.stderr)
    run = StepRun(result.stdout, result.stderr, result.exit_code)
    if result.timed_out:
        reason = f"timed out after {timeout:g}s; its processes were killed"
        failure = make_error(context, step, reason, output_tail=output_tail, kind=StepTimeoutError)
        return StepRun(run.output, run.stderr, None, error=failure)
    if result.exit_code != 0:
        failure = make_error(
            context,
            step,
            f"exit code {result.exit_code}",
            exit_code=result.exit_code,
            output_tail=output_tail,
        )
        return StepRun(run.output, run.stderr, run.exit_code, error=failure)
    return run
