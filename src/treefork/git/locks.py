"""The repository lock: serializes the git calls that take repository-wide locks.

``git worktree add/remove/prune`` and branch deletion write shared files under the common
``.git`` directory (``worktrees/``, ``packed-refs``); running them concurrently makes git fail
on its own ``*.lock`` files, or on the entry of a worktree another command is still writing
(``failed to read .git/worktrees/<name>/commondir``). Everything else (agent commits, merges
computed in the object store, ``update-ref`` of distinct refs) runs in parallel. The lock is
held only around those git calls, never across agent work.

Within a process an :class:`anyio.Lock` queues waiters fairly; across processes (two jobs on
the same repository) an ``flock`` on a file in the treefork home does, polled without
blocking so that cancellation stays immediate. The lock is reentrant for the task holding
it: a step done under the lock may call another that takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

__all__ = ("RepositoryLock",)

_POLL_SECONDS = 0.005
_process_locks: dict[tuple[str, int], anyio.Lock] = {}
_holders: dict[tuple[str, int], asyncio.Task[object]] = {}


def _process_lock(key: str) -> anyio.Lock:
    # One lock per repository per event loop (tests run many loops in one process).
    loop_key = (key, id(asyncio.get_running_loop()))
    lock = _process_locks.get(loop_key)
    if lock is None:
        lock = _process_locks[loop_key] = anyio.Lock()
    return lock


class RepositoryLock:
    """The lock for one repository, shared by every job and process using it.

    Args:
        common_dir: The repository's common git directory, as a resolved path (every
            process must name the repository the same way).
        home: The treefork home; the lock file is ``<home>/locks/repo-<digest>.lock``.
    """

    def __init__(self, common_dir: Path, home: Path) -> None:
        self.key = str(common_dir)
        digest = hashlib.sha1(self.key.encode()).hexdigest()[:16]
        self.path = home / "locks" / f"repo-{digest}.lock"

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Hold the lock for the duration of the block (at once if this task holds it)."""
        holder_key = (self.key, id(asyncio.get_running_loop()))
        task = asyncio.current_task()
        if task is not None and _holders.get(holder_key) is task:
            yield
            return
        async with _process_lock(self.key):
            descriptor = await anyio.to_thread.run_sync(self._open)
            try:
                while True:
                    try:
                        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        await anyio.sleep(_POLL_SECONDS)
                if task is not None:
                    _holders[holder_key] = task
                yield
            finally:
                _holders.pop(holder_key, None)
                os.close(descriptor)  # closing releases the flock
