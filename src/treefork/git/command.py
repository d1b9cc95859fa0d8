"""Running git commands: one seam, with a scrubbed environment and translated errors."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from treefork.environment import scrubbed_environment
from treefork.errors import GitError

__all__ = ("GitResult", "git", "git_ok")

logger = logging.getLogger("treefork.git")

# Options for every git call treefork makes itself: no pager, no auto gc racing agents,
# no hooks' interactive prompts.
_BASE_OPTIONS = ("-c", "core.pager=cat", "-c", "gc.auto=0", "-c", "maintenance.auto=false")


@dataclass(frozen=True, slots=True)
class GitResult:
    """What a git command returned."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        """Non-empty stdout lines."""
        return [line for line in self.stdout.splitlines() if line]


async def git(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
    ok_codes: Sequence[int] = (0,),
) -> GitResult:
    """Run ``git <args>`` in ``cwd``.

    Args:
        *args: Arguments after ``git``.
        cwd: Working directory (a worktree or the repository).
        env: Extra environment variables (added to the scrubbed environment).
        input: Bytes for stdin.
        check: Raise :class:`GitError` when the exit code is not in ``ok_codes``.
        ok_codes: Exit codes that count as success.

    Raises:
        GitError: The command failed (and ``check`` is set), or git could not be started.
    """
    argv = ["git", *_BASE_OPTIONS, *args]
    logger.debug("git %s (in %s)", " ".join(args), cwd)
    try:
        completed = await anyio.run_process(
            argv,
            cwd=cwd,
            env=scrubbed_environment(env),
            input=input,
            check=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as error:
        raise GitError(args, cwd, -1, str(error)) from error
    result = GitResult(
        completed.returncode,
        completed.stdout.decode("utf-8", errors="replace"),
        completed.stderr.decode("utf-8", errors="replace"),
    )
    if check and result.returncode not in ok_codes:
        raise GitError(args, cwd, result.returncode, result.stderr or result.stdout)
    return result


async def git_ok(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> bool:
    """Run a git command that answers yes/no by its exit code (0 is yes)."""
    return (await git(*args, cwd=cwd, env=env, check=False)).returncode == 0
