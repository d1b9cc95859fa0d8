"""The repository lock: keeps git's repository-wide operations from racing each other.

Registering and removing worktrees (``git worktree add/remove``) touch only their own entry
under ``.git/worktrees/``: any number may run at once, so they hold the lock *shared*.
``git worktree prune`` (which drops the entries of worktrees it cannot find), deleting
branches (which rewrites ``packed-refs``) and merging into the user's checkout hold it
*exclusive*: alone. Everything else (checkouts, agent commits, merges computed in the object
store, ``update-ref`` of distinct refs) takes no lock at all, and the lock is never held
across agent work.

Within a process a readers-writer lock with writers first queues the waiters; across
processes (two jobs on the same repository) an ``flock`` on a file in the treefork home
does (``LOCK_SH`` or ``LOCK_EX``), polled without blocking so that cancellation stays
immediate. A task holding the lock exclusive may take it again (a step done under the lock
may call another that takes it), and so may a task holding it shared, asking shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio

__all__ = ("RepositoryLock",)

_POLL_SECONDS = 0.005


@dataclass
class _SharedExclusive:
    """A readers-writer lock for one repository in one event loop; writers go first."""

    condition: anyio.Condition = field(default_factory=anyio.Condition)
    shared: int = 0
    exclusive: bool = False
    writers_waiting: int = 0
    holders: dict[asyncio.Task[object], bool] = field(default_factory=dict)
    """Tasks holding the lock, and whether exclusive."""

    async def acquire(self, *, exclusive: bool) -> None:
        async with self.condition:
            if exclusive:
                self.writers_waiting += 1
                try:
                    while self.exclusive or self.shared:
                        await self.condition.wait()
                finally:
                    self.writers_waiting -= 1
                self.exclusive = True
            else:
                while self.exclusive or self.writers_waiting:
                    await self.condition.wait()
                self.shared += 1

    async def release(self, *, exclusive: bool) -> None:
        async with self.condition:
            if exclusive:
                self.exclusive = False
            else:
                self.shared -= 1
            self.condition.notify_all()


_process_locks: dict[tuple[str, int], _SharedExclusive] = {}


def _process_lock(key: str) -> _SharedExclusive:
    # One lock per repository per event loop (tests run many loops in one process).
    loop_key = (key, id(asyncio.get_running_loop()))
    lock = _process_locks.get(loop_key)
    if lock is None:
        lock = _process_locks[loop_key] = _SharedExclusive()
    return lock


class RepositoryLock:
    """The lock for one repository, shared by every job and process using it."""

    def __init__(self, common_dir: Path, home: Path) -> None:
        self.key = str(common_dir.resolve())
        digest = hashlib.sha1(self.key.encode()).hexdigest()[:16]
        locks = home / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        self.path = locks / f"repo-{digest}.lock"

    @contextlib.asynccontextmanager
    async def hold(self, *, shared: bool = False) -> AsyncIterator[None]:
        """Hold the lock for the duration of the block.

        Args:
            shared: Let other shared holders in (``git worktree add/remove``); the default
                is exclusive.

        Raises:
            RuntimeError: This task holds the lock shared and asks for it exclusive.
        """
        lock = _process_lock(self.key)
        task = asyncio.current_task()
        held = lock.holders.get(task) if task is not None else None
        if held or (held is False and shared):
            yield  # already held strongly enough by this task
            return
        if held is False:
            raise RuntimeError("the repository lock is held shared; it cannot be made exclusive")
        await lock.acquire(exclusive=not shared)
        try:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                await _flock(descriptor, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
                if task is not None:
                    lock.holders[task] = not shared
                try:
                    yield
                finally:
                    if task is not None:
                        lock.holders.pop(task, None)
            finally:
                os.close(descriptor)  # closing releases the flock
        finally:
            with anyio.CancelScope(shield=True):
                await lock.release(exclusive=not shared)


async def _flock(descriptor: int, mode: int) -> None:
    while True:
        try:
            fcntl.flock(descriptor, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            await anyio.sleep(_POLL_SECONDS)
