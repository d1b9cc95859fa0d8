"""The repository lock: one holder at a time, reentrant for it, across processes too."""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

import anyio
from gitutil import worktree_paths

from treefork.git.locks import RepositoryLock
from treefork.git.pool import AgentPool
from treefork.git.repository import open_repository
from treefork.git.worktrees import WorktreeManager


def _lock(repo: Path, home: Path) -> RepositoryLock:
    return RepositoryLock(repo / ".git", home)


async def test_holders_take_turns(repo: Path, treefork_home: Path) -> None:
    lock = _lock(repo, treefork_home)
    timeline: list[str] = []

    async def hold(name: str) -> None:
        async with lock.hold():
            timeline.append(f"{name} in")
            await anyio.sleep(0.05)
            timeline.append(f"{name} out")

    async with anyio.create_task_group() as group:
        for name in "abc":
            group.start_soon(hold, name)

    assert [entry.split()[1] for entry in timeline] == ["in", "out"] * 3


async def test_concurrent_worktree_registrations_never_fail(repo: Path, treefork_home: Path) -> None:
    manager = WorktreeManager(await open_repository(repo), "job1", treefork_home)
    pools = [AgentPool(manager, f"domain{index}") for index in range(4)]

    async def take(pool: AgentPool, index: int) -> None:
        await pool.acquire(f"treefork/job1/agents/{pool.domain}/{index:04d}", manager.repo.head)

    async with anyio.create_task_group() as group:
        for pool in pools:
            for index in range(4):
                group.start_soon(take, pool, index)
    assert len(worktree_paths(repo)) == 17
    async with anyio.create_task_group() as group:
        for pool in pools:
            group.start_soon(pool.close)


async def test_the_task_holding_it_may_take_it_again(repo: Path, treefork_home: Path) -> None:
    lock = _lock(repo, treefork_home)
    with anyio.fail_after(5):
        async with lock.hold(), lock.hold(), lock.hold():
            pass


async def test_another_process_holding_it_exclusive_keeps_us_waiting(
    repo: Path, treefork_home: Path
) -> None:
    lock = _lock(repo, treefork_home)
    code = (
        "import fcntl, os, time\n"
        f"os.makedirs({str(lock.path.parent)!r}, exist_ok=True)\n"
        f"fd = os.open({str(lock.path)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(0.5)\n"
    )
    async with await anyio.open_process([sys.executable, "-c", code]) as holder:
        assert holder.stdout is not None
        assert (await holder.stdout.receive()).strip() == b"held"
        started = anyio.current_time()
        async with lock.hold():
            waited = anyio.current_time() - started
        await holder.wait()
    assert waited > 0.2
    descriptor = os.open(lock.path, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released: free again
    finally:
        os.close(descriptor)
