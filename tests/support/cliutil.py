"""Helpers for command-line tests: the installed ``treefork`` script as a real subprocess,
and stub programs (the Claude CLI, debtmap, ...) on ``PATH``."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TREEFORK = Path(sys.executable).parent / "treefork"
"""The console script of the installed package, next to the interpreter running the tests."""
STUBS = Path(__file__).resolve().parent.parent / "cli" / "stubs"
"""Stub programs standing in for tools that the tests cannot run for real."""
TRACEBACK = "Traceback (most recent call last)"


@dataclass(frozen=True)
class Finished:
    """A finished ``treefork`` process."""

    returncode: int
    stdout: str
    stderr: str

    def report(self) -> dict[str, Any]:
        """The ``--json`` object: stdout must hold exactly one JSON document."""
        return json.loads(self.stdout)


def environment(path_first: Path | None = None, **extra: str) -> dict[str, str]:
    """The caller's environment (TREEFORK_HOME included), without git redirections and
    Claude command overrides, with ``path_first`` in front of ``PATH``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GIT_") and not name.startswith("TREEFORK_CLAUDE")
    }
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def treefork(
    *args: str | Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 90,
    stdin: str | None = None,
) -> Finished:
    """Run ``treefork ARGS`` and wait for it."""
    completed = subprocess.run(
        [str(TREEFORK), *map(str, args)],
        cwd=cwd,
        env=env if env is not None else environment(),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Finished(completed.returncode, completed.stdout, completed.stderr)


def stub_bin(folder: Path, *names: str, **aliases: str) -> Path:
    """A folder of stub programs: ``names`` copied as they are, ``aliases`` as
    ``alias=stub`` (``mkdocs="build-fails"``). Returns the folder, to put first on PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    for alias, stub in [*((name, name) for name in names), *aliases.items()]:
        target = folder / alias
        shutil.copyfile(STUBS / stub, target)
        target.chmod(0o755)
    return folder


def claude_calls(log: Path) -> list[dict[str, Any]]:
    """What the ``claude`` stub recorded, one entry per call."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def treefork_in_terminal(
    *args: str | Path,
    env: dict[str, str],
    answer: tuple[bytes, bytes] | None = None,
    timeout: float = 90,
) -> tuple[int, str]:
    """Run ``treefork ARGS`` with a pseudo-terminal as stdin, stdout and stderr.

    Args:
        args: The arguments.
        env: Its environment.
        answer: ``(prompt, reply)``: once ``prompt`` appears, type ``reply``.
        timeout: Seconds before the process is killed and the test fails.

    Returns:
        The exit code and everything written to the terminal.
    """
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [str(TREEFORK), *map(str, args)], stdin=slave, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    output, answered = b"", answer is None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every process holding the terminal has exited
                break
            if not chunk:
                break
            output += chunk
            if answer is not None and not answered and answer[0] in output:
                os.write(master, answer[1])
                answered = True
        else:
            process.kill()
            raise AssertionError(f"treefork did not finish in {timeout}s:\n{output.decode()}")
        return process.wait(timeout=timeout), output.decode("utf-8", errors="replace")
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
