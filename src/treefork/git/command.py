"""Running git commands: one seam, with a scrubbed environment and translated errors.

Each git command runs to completion in a worker thread (``subprocess.run``), not as an
asyncio subprocess: starting a process from a thread costs a third of what the event loop's
child watcher costs, which matters at thousands of git commands per job. It also means a
cancelled job never kills git halfway through writing its index or a ref (which would leave
a stale ``index.lock``): cancellation takes effect once the command, a matter of
milliseconds, has finished.
"""

from __future__ import annotations

import errno
import functools
import logging
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.lowlevel import RunVar

from treefork.environment import scrubbed_environment
from treefork.errors import DiskFullError, GitError

__all__ = ("GitResult", "git", "git_ok")

logger = logging.getLogger("treefork.git")

# Options for every git call treefork makes itself: no pager, no auto gc racing agents,
# no hooks' interactive prompts.
_BASE_OPTIONS = ("-c", "core.pager=cat", "-c", "gc.auto=0", "-c", "maintenance.auto=false")

_NO_SPACE = re.compile(r"No space left on device|Disk quota exceeded")
_MAX_CONCURRENT = 16
"""Git commands running at once; more only queue for the same cores and disk."""
_limiter: RunVar[anyio.CapacityLimiter] = RunVar("treefork_git_limiter")


def _git_limiter() -> anyio.CapacityLimiter:
    # One limiter per event loop: a loop that ends with a git call in flight (a notebook
    # cell interrupted, a test's loop closed) must not take a token from the next loop.
    try:
        return _limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(_MAX_CONCURRENT)
        _limiter.set(limiter)
        return limiter


def _run(
    argv: list[str], cwd: Path, env: dict[str, str], input: bytes | None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )


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


def _full_path(stderr: str) -> str | None:
    """The file git could not write, from its message (``could not write to '/x': No space
    left on device``); None when it names none."""
    for line in stderr.splitlines():
        if _NO_SPACE.search(line):
            quoted = re.findall(r"'(/[^']+)'", line)
            if quoted:
                return str(quoted[-1])
    return None


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
        DiskFullError: git found no space left on the device (whatever ``check`` says).
    """
    argv = ["git", *_BASE_OPTIONS, *args]
    logger.debug("git %s (in %s)", " ".join(args), cwd)
    run = functools.partial(_run, argv, cwd, scrubbed_environment(env), input)
    try:
        completed = await anyio.to_thread.run_sync(run, limiter=_git_limiter())
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(cwd) from error
        raise GitError(args, cwd, -1, str(error)) from error
    result = GitResult(
        completed.returncode,
        completed.stdout.decode("utf-8", errors="replace"),
        completed.stderr.decode("utf-8", errors="replace"),
    )
    if result.returncode != 0 and _NO_SPACE.search(result.stderr):
        # Never an expected outcome, even with check=False: the job stops and resumes.
        failed = GitError(args, cwd, result.returncode, result.stderr)
        raise DiskFullError(_full_path(result.stderr) or cwd) from failed
    if check and result.returncode not in ok_codes:
        raise GitError(args, cwd, result.returncode, result.stderr or result.stdout)
    return result


async def git_ok(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> bool:
    """Run a git command that answers yes/no by its exit code (0 is yes)."""
    return (await git(*args, cwd=cwd, env=env, check=False)).returncode == 0
