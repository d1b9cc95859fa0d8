"""The job lock: one process at a time runs, resumes, retries or merges a job.

An ``flock`` on ``<home>/jobs/<job>.lock``, taken without waiting: a second process gets
:class:`~treefork.errors.JobLockedError` at once (naming the holder's pid, which the holder
writes into the file) and changes nothing. The kernel drops the lock when its holder dies,
SIGKILL included, so a crashed job never stays locked.

Within one process the lock is re-entrant: the CLI holds it for a whole run and the
dispatcher node, which takes it too (for jobs run from Python), nests inside.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

from treefork.errors import JobLockedError

__all__ = ("JobLock", "job_lock_path")

_held: dict[Path, tuple[int, int]] = {}
"""Lock file -> (descriptor, depth) for the locks this process holds."""
_held_lock = threading.Lock()


def job_lock_path(home: Path, job_id: str) -> Path:
    """Where a job's lock file lives."""
    return home / "jobs" / f"{job_id}.lock"


class JobLock:
    """The lock of one job (a context manager).

    Args:
        home: The treefork home.
        job_id: The job.
    """

    def __init__(self, home: Path, job_id: str) -> None:
        self.job_id = job_id
        self.path = job_lock_path(home, job_id).resolve()
        self._acquired = False

    def acquire(self) -> None:
        """Take the lock, or fail at once.

        Raises:
            JobLockedError: Another process holds it.
        """
        with _held_lock:
            if self.path in _held:
                descriptor, depth = _held[self.path]
                _held[self.path] = (descriptor, depth + 1)
                self._acquired = True
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                raise JobLockedError(self.job_id, self.path, _holder_pid(self.path)) from None
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{os.getpid()}\n".encode())
            _held[self.path] = (descriptor, 1)
            self._acquired = True

    def release(self) -> None:
        """Give the lock back (the file stays; it is reused)."""
        with _held_lock:
            if not self._acquired or self.path not in _held:
                return
            self._acquired = False
            descriptor, depth = _held[self.path]
            if depth > 1:
                _held[self.path] = (descriptor, depth - 1)
                return
            del _held[self.path]
            os.close(descriptor)  # closing releases the flock

    def is_held_elsewhere(self) -> bool:
        """Whether another process holds the lock right now (without taking it)."""
        with _held_lock:
            if self.path in _held:
                return False
        if not self.path.exists():
            return False
        descriptor = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(descriptor)
        return False

    def __enter__(self) -> JobLock:
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def _holder_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
