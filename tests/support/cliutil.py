"""Helpers for command-line tests: the installed ``treefork`` script as a real subprocess,
and stub programs (the Claude CLI, debtmap, ...) on ``PATH``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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
