"""WriteFile steps: write a file inside the worktree.

The path and the content are interpolated as text. The path is taken relative to the
worktree root and must stay inside it once ``..`` and symbolic links are resolved; git's own
``.git`` is off limits. Parent directories are created; the content is written as UTF-8,
byte for byte (no newline translation), and the file gets the step's ``mode``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from treefork.core.interpolate import render_text
from treefork.errors import InterpolationError
from treefork.runners.context import StepContext, StepRun, make_error
from treefork.steps import WriteFile

__all__ = ("inside_worktree", "run_write_file")


def inside_worktree(worktree: Path, path: str) -> Path | None:
    """The resolved target of ``path`` when it stays inside ``worktree``, else None."""
    root = worktree.resolve()
    target = (root / path).resolve()
    if target == root or not target.is_relative_to(root):
        return None
    if target.relative_to(root).parts[0] == ".git":
        return None
    return target


def _write(target: Path, content: str, mode: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content.encode("utf-8"))
    os.chmod(target, mode)


async def run_write_file(
    step: WriteFile, context: StepContext, scope: Mapping[str, Any]
) -> StepRun:
    """Run a WriteFile step.

    Returns:
        The attempt; its output is the path written, relative to the worktree.

    Raises:
        StepError: A reference cannot be resolved, the path leaves the worktree, or the
            file cannot be written.
    """
    try:
        path = render_text(step.path, scope)
        content = render_text(step.content, scope)
    except InterpolationError as error:
        raise make_error(context, step, str(error)) from error
    target = await anyio.to_thread.run_sync(inside_worktree, context.worktree, path)
    if target is None:
        raise make_error(context, step, f"path {path!r} is not a file inside the worktree")
    try:
        await anyio.to_thread.run_sync(_write, target, content, step.mode)
    except OSError as error:
        raise make_error(context, step, f"cannot write {path!r}: {error}") from error
    root = await anyio.to_thread.run_sync(context.worktree.resolve)
    return StepRun(str(target.relative_to(root)))
