"""The repository lock: shared holders overlap, an exclusive one is alone, across processes too."""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

import anyio
import pytest

from treefork.git.locks import RepositoryLock


def _lock(repo: Path, home: Path) -> RepositoryLock:
    return RepositoryLock(repo / ".git", home)


async def test_shared_holders_overlap_and_an_exclusive_one_waits(
    repo: Path, treefork_home: Path
) -> None:
    lock = _lock(repo, treefork_home)
    timeline: list[str] = []

    async def shared(name: str) -> None:
        async with lock.hold(shared=True):
            timeline.append(f"{name} in")
            await anyio.sleep(0.1)
            timeline.append(f"{name} out")

    async def exclusive() -> None:
        await anyio.sleep(0.02)
        async with lock.hold():
            timeline.append("exclusive in")
            timeline.append("exclusive out")

    async with anyio.create_task_group() as group:
        group.start_soon(shared, "a")
        group.start_soon(shared, "b")
        group.start_soon(exclusive)

    assert timeline[:2] == ["a in", "b in"]
    assert timeline[-2:] == ["exclusive in", "exclusive out"]


async def test_a_waiting_exclusive_holder_goes_before_later_shared_ones(
    repo: Path, treefork_home: Path
) -> None:
    lock = _lock(repo, treefork_home)
    order: list[str] = []

    async def hold(name: str, delay: float, *, shared: bool) -> None:
        await anyio.sleep(delay)
        async with lock.hold(shared=shared):
            order.append(name)
            await anyio.sleep(0.05)

    async with anyio.create_task_group() as group:
        group.start_soon(lambda: hold("first shared", 0, shared=True))
        group.start_soon(lambda: hold("exclusive", 0.01, shared=False))
        group.start_soon(lambda: hold("later shared", 0.02, shared=True))

    assert order == ["first shared", "exclusive", "later shared"]


async def test_the_task_holding_it_exclusive_may_take_it_again(
    repo: Path, treefork_home: Path
) -> None:
    lock = _lock(repo, treefork_home)
    with anyio.fail_after(5):
        async with lock.hold(), lock.hold(), lock.hold(shared=True):
            pass
        async with lock.hold(shared=True), lock.hold(shared=True):
            pass
    async with lock.hold(shared=True):
        with pytest.raises(RuntimeError, match="cannot be made exclusive"):
            async with lock.hold():
                pass


async def test_another_process_holding_it_exclusive_keeps_us_waiting(
    repo: Path, treefork_home: Path
) -> None:
    lock = _lock(repo, treefork_home)
    code = (
        "import fcntl, os, time\n"
        f"fd = os.open({str(lock.path)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(0.5)\n"
    )
    async with await anyio.open_process([sys.executable, "-c", code]) as holder:
        assert holder.stdout is not None
        assert (await holder.stdout.receive()).strip() == b"held"
        started = anyio.current_time()
        async with lock.hold(shared=True):
            waited = anyio.current_time() - started
        await holder.wait()
    assert waited > 0.2
    descriptor = os.open(lock.path, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released: free again
    finally:
        os.close(descriptor)
