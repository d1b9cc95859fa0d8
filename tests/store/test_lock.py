"""The job lock: one process per job, released when its holder dies (SIGKILL included)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from treefork.errors import JobLockedError
from treefork.store import JobLock

_HOLD = (
    "import sys, time; from pathlib import Path; from treefork.store import JobLock\n"
    "lock = JobLock(Path(sys.argv[1]), 'job'); lock.acquire(); print('held', flush=True); time.sleep(60)\n"
)


@contextlib.contextmanager
def _holder(home: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the job's lock (killed at the end)."""
    with subprocess.Popen([sys.executable, "-c", _HOLD, str(home)], stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "held"
        try:
            yield process
        finally:
            process.kill()


def test_a_second_process_fails_at_once_naming_the_holder(tmp_path: Path) -> None:
    with _holder(tmp_path) as holder:
        lock = JobLock(tmp_path, "job")
        assert lock.is_held_elsewhere()
        started = time.monotonic()
        with pytest.raises(JobLockedError) as caught:
            lock.acquire()
        assert time.monotonic() - started < 1
        assert caught.value.holder_pid == holder.pid
        assert f"process {holder.pid}" in str(caught.value)


def test_the_lock_is_free_once_its_holder_is_killed(tmp_path: Path) -> None:
    with _holder(tmp_path) as holder:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    lock = JobLock(tmp_path, "job")
    assert not lock.is_held_elsewhere()
    with lock:
        assert not lock.is_held_elsewhere()  # held here, not elsewhere


def test_the_lock_is_reentrant_within_a_process(tmp_path: Path) -> None:
    outer = JobLock(tmp_path, "job")
    with outer, JobLock(tmp_path, "job"):
        pass
    # Still held by the outer block until it ends; then another process may take it.
    with outer:
        probe = subprocess.run(
            [sys.executable, "-c", "import sys; from pathlib import Path; from treefork.store import JobLock;"
             "print(JobLock(Path(sys.argv[1]), 'job').is_held_elsewhere())", str(tmp_path)],
            capture_output=True, text=True, check=True,
        )
        assert probe.stdout.strip() == "True"
    assert not JobLock(tmp_path, "job").is_held_elsewhere()
