"""Fixtures for the runner tests: real git repositories and a look at live processes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from treefork.runners.steps import StepContext


def run_git(cwd: Path, *args: str) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    completed = subprocess.run(
        ["git", *args], cwd=cwd, env=environment, capture_output=True, text=True, check=True
    )
    return completed.stdout.strip()


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    """A git repository on main with one commit, to run steps in."""
    path = tmp_path / "work"
    path.mkdir()
    run_git(path, "init", "-q", "-b", "main")
    run_git(path, "config", "user.name", "Test")
    run_git(path, "config", "user.email", "test@example.com")
    (path / "README.md").write_text("hello\n")
    run_git(path, "add", "README.md")
    run_git(path, "commit", "-q", "-m", "initial")
    return path


@pytest.fixture
def git() -> Callable[..., str]:
    """``git(cwd, *args)``: run git and return its stdout."""
    return run_git


def _live_processes_in_group(pgid: int) -> list[int]:
    """Processes of a group that still run (zombies left for init to reap do not count)."""
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            alive.append(int(entry))
    return alive


@pytest.fixture
def live_in_group() -> Callable[[int], list[int]]:
    """``live_in_group(pgid)``: pids of the group's processes that still run."""
    return _live_processes_in_group


@pytest.fixture
def make_context(worktree: Path) -> Callable[..., StepContext]:
    """``make_context(**fields)``: a map-phase StepContext in the test repository."""

    def make(**fields: Any) -> StepContext:
        values: dict[str, Any] = {
            "phase": "map",
            "domain": "docs",
            "job_id": "job1",
            "worktree": worktree,
            "variables": {},
        }
        values.update(fields)
        return StepContext(**values)

    return make
