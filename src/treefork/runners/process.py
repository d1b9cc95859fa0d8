"""Running one command so that it can always be stopped, and never hangs its caller.

- The command starts in its own session, hence its own process group: stopping it stops
  everything it started (``make`` and its compilers, ``sleep 300 &``).
- stdout and stderr go to temporary files, not pipes, so a background child that keeps them
  open can never keep us waiting for end-of-file.
- On timeout and on cancellation the whole group gets SIGTERM, then SIGKILL after
  ``kill_grace`` seconds; the command is reaped. Cancellation still propagates.
- When the command exits by itself, whatever it left running in its group is stopped the
  same way: a step's background processes do not outlive the step.
- Processes that leave the group (``setsid``, a daemon's double fork) are still found: the
  command's environment carries a tag of its own (``TREEFORK_PROCESS_TAG``), inherited by
  everything it starts, and ``/proc/*/environ`` is scanned for it. They get the same
  SIGTERM, grace and SIGKILL. The limit: a process that replaces its whole environment
  (``env -i``, ``execve`` with a fresh one) sheds the tag, and only its group finds it.
- Variables that redirect git (``GIT_DIR``, ...) are dropped from the environment even when
  the caller passes them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shlex
import signal
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import anyio
from anyio.abc import Process

from treefork.environment import REDIRECTING_GIT_VARIABLES

__all__ = ("PROCESS_TAG", "ProcessResult", "kill_tagged", "run_process")

logger = logging.getLogger("treefork")

_POLL_INTERVAL = 0.05
PROCESS_TAG = "TREEFORK_PROCESS_TAG"
"""The environment variable whose value marks every process one command started."""
_LOGGED_COMMAND_LENGTH = 200


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """What a command did."""

    exit_code: int | None
    """Its exit status (negative: killed by that signal); None when it timed out."""
    stdout: str
    """Standard output, decoded as UTF-8 (invalid bytes replaced); the last ``max_output``
    bytes when there was more, after a line saying how much was cut."""
    stderr: str
    """Standard error, like ``stdout``."""
    timed_out: bool
    """It ran past its timeout and its process group was killed."""
    duration: float
    """Seconds from start to exit (or to the kill)."""


def _short(args: Sequence[str]) -> str:
    text = shlex.join(args).replace("\n", "\\n")
    if len(text) <= _LOGGED_COMMAND_LENGTH:
        return text
    return text[: _LOGGED_COMMAND_LENGTH - 3] + "..."


def _live_member(stat_line: str, pgid: int) -> bool:
    # /proc/<pid>/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces and parens.
    fields = stat_line[stat_line.rfind(")") + 2 :].split()
    return len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X")


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies waiting for a reaper do not)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not os.path.isdir("/proc"):
        return True
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as stat:
                if _live_member(stat.read(), pgid):
                    return True
        except OSError:
            continue  # the process ended while we looked
    return False


def _environment_of(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            return environ.read()
    except OSError:
        return b""  # ended while we looked, or not ours to read


def _has_tag(environment: bytes, entry: bytes) -> bool:
    """Whether ``NAME=value`` is one of the NUL-terminated entries of an environ file."""
    return b"\0" + entry + b"\0" in b"\0" + environment


def _tagged(entry: bytes) -> list[int]:
    """Processes whose environment holds ``entry`` (``NAME=value``); zombies have none."""
    if not os.path.isdir("/proc"):
        return []
    own = os.getpid()
    return [
        int(pid)
        for pid in os.listdir("/proc")
        if pid.isdigit() and int(pid) != own and _has_tag(_environment_of(pid), entry)
    ]


def _signal_tagged(entry: bytes, signum: signal.Signals) -> None:
    """Signal the processes tagged with ``entry``, checking the tag through a pidfd so that
    a pid reused meanwhile is never signalled."""
    for pid in _tagged(entry):
        try:
            handle = os.pidfd_open(pid)
        except OSError:
            continue
        try:
            if _has_tag(_environment_of(str(pid)), entry):
                signal.pidfd_send_signal(handle, signum)
        except OSError:
            pass
        finally:
            os.close(handle)


def kill_tagged(name: str, value: str) -> None:
    """SIGKILL every process whose environment holds ``name=value`` (left by a killed
    owner: a cluster node's agent whose worker died)."""
    _signal_tagged(f"{name}={value}".encode(), signal.SIGKILL)


def _leftovers(pgid: int, entry: bytes) -> bool:
    """Whether the group, or any process carrying the command's tag, still runs."""
    return _group_alive(pgid) or bool(_tagged(entry))


async def _leftovers_off_loop(pgid: int, entry: bytes) -> bool:
    # Reading /proc is blocking file I/O: done in a worker thread.
    return await anyio.to_thread.run_sync(_leftovers, pgid, entry)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _signal_all(pgid: int, entry: bytes, signum: signal.Signals) -> None:
    _signal_group(pgid, signum)
    _signal_tagged(entry, signum)


async def _stop_group(process: Process, pgid: int, entry: bytes, kill_grace: float) -> None:
    """SIGTERM the group and the tagged processes, SIGKILL them after ``kill_grace``, and
    reap the command."""
    if process.returncode is None or await _leftovers_off_loop(pgid, entry):
        await anyio.to_thread.run_sync(_signal_all, pgid, entry, signal.SIGTERM)
        with anyio.move_on_after(kill_grace):
            await process.wait()
            # Nothing signals that the last process left a group: polling is the only way.
            while await _leftovers_off_loop(pgid, entry):  # noqa: ASYNC110
                await anyio.sleep(_POLL_INTERVAL)
        if process.returncode is None or await _leftovers_off_loop(pgid, entry):
            await anyio.to_thread.run_sync(_signal_all, pgid, entry, signal.SIGKILL)
            with anyio.move_on_after(kill_grace):
                while await _leftovers_off_loop(pgid, entry):  # noqa: ASYNC110
                    await anyio.sleep(_POLL_INTERVAL)
    await process.aclose()


class _Files:
    """Temporary files a worker thread opens for a task that may be cancelled meanwhile:
    whichever side comes last closes them (a cancelled await does not wait for its thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False
        self.opened: list[IO[bytes]] = []

    def open(self, data: bytes | None = None) -> None:
        file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close or right here)
        if data is not None:
            file.write(data)
            file.seek(0)
        with self._lock:
            kept = not self._closed
            if kept:
                self.opened.append(file)
        if not kept:
            file.close()

    def open_all(self, stdin: bytes | None) -> None:
        self.open()
        self.open()
        if stdin is not None:
            self.open(stdin)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            opened, self.opened = self.opened, []
        for file in opened:
            file.close()


@contextlib.asynccontextmanager
async def _process_files(
    stdin: bytes | None,
) -> AsyncIterator[tuple[IO[bytes], IO[bytes], IO[bytes] | None]]:
    """Temporary files for stdout, stderr and (when given) stdin.

    Opening them is blocking (the first use looks for the temporary folder; stdin is
    written), so it happens in a worker thread, never on the event loop. A task cancelled
    while the thread runs leaves no file open.
    """
    files = _Files()
    try:
        await anyio.to_thread.run_sync(files.open_all, stdin)
        opened = files.opened
        yield opened[0], opened[1], opened[2] if stdin is not None else None
    finally:
        files.close()


def _read_output(file: IO[bytes], max_output: int) -> str:
    size = file.seek(0, os.SEEK_END)
    cut = max(0, size - max_output)
    file.seek(cut)
    text = file.read().decode("utf-8", errors="replace")
    return f"[... {cut} bytes of output cut ...]\n{text}" if cut else text


async def run_process(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float | None = None,  # noqa: ASYNC109 (a per-command limit that kills the group)
    stdin: bytes | None = None,
    kill_grace: float = 2.0,
    max_output: int = 16 * 2**20,
) -> ProcessResult:
    """Run a command in its own process group and wait for it.

    Args:
        args: The program and its arguments (no shell involved).
        cwd: Working directory; logged as ``Executing in worktree: <cwd>``.
        env: The complete environment (build it with
            :func:`treefork.environment.scrubbed_environment`); git redirections are
            dropped from it regardless.
        timeout: Seconds before the process group is killed (None: no limit).
        stdin: Bytes for standard input; None gives it an empty one (``/dev/null``).
        kill_grace: Seconds between SIGTERM and SIGKILL.
        max_output: Keep at most this many bytes (the last ones) of each stream.

    Returns:
        Exit code, output and timing. A non-zero exit is not an error here.

    Raises:
        OSError: The program could not be started (``FileNotFoundError`` when it does
            not exist, or ``cwd`` does not).
    """
    # Redirections go whoever built ``env``; the git configuration scrubbed_environment
    # put there (no auto gc; a read-only agent's hooks) stays.
    environment = {
        name: value for name, value in env.items() if name not in REDIRECTING_GIT_VARIABLES
    }
    environment[PROCESS_TAG] = secrets.token_hex(8)
    entry = f"{PROCESS_TAG}={environment[PROCESS_TAG]}".encode()
    logger.info("Executing in worktree: %s: %s", cwd, _short(args))
    started = anyio.current_time()
    async with _process_files(stdin) as (stdout, stderr, input_file):
        process = await anyio.open_process(
            list(args),
            stdin=subprocess.DEVNULL if input_file is None else input_file,
            stdout=stdout,
            stderr=stderr,
            cwd=cwd,
            env=environment,
            start_new_session=True,
        )
        pgid = process.pid  # a session leader's group id is its pid
        try:
            with anyio.move_on_after(timeout) as deadline:
                await process.wait()
        finally:
            # Runs on timeout, on cancellation and on normal exit (leftover children).
            with anyio.CancelScope(shield=True):
                await _stop_group(process, pgid, entry, kill_grace)
        duration = anyio.current_time() - started
        timed_out = deadline.cancelled_caught
        return ProcessResult(
            exit_code=None if timed_out else process.returncode,
            stdout=await anyio.to_thread.run_sync(_read_output, stdout, max_output),
            stderr=await anyio.to_thread.run_sync(_read_output, stderr, max_output),
            timed_out=timed_out,
            duration=duration,
        )
