"""Helpers for tests of durable jobs: the installed ``treefork`` command as real processes,
workflow files whose agents log what they run, and reading a job's events and records."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

TREEFORK = Path(sys.executable).parent / "treefork"
"""The console script of the installed package."""


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for a ``treefork`` process: this home, no git redirections."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("GIT_")}
    env["TREEFORK_HOME"] = str(home)
    env.update(extra)
    return env


def treefork(home: Path, *args: str | Path, timeout: float = 120, **popen: Any) -> subprocess.CompletedProcess[str]:
    """Run ``treefork ARGS`` to the end."""
    return subprocess.run(
        [str(TREEFORK), *map(str, args)], env=cli_env(home), capture_output=True, text=True,
        timeout=timeout, check=False, stdin=subprocess.DEVNULL, **popen,
    )


def start(home: Path, *args: str | Path, **popen: Any) -> subprocess.Popen[str]:
    """Start ``treefork ARGS`` without waiting (its output goes to files next to the home)."""
    popen.setdefault("stdin", subprocess.DEVNULL)
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen([str(TREEFORK), *map(str, args)], env=cli_env(home), text=True, **popen)


def events(home: Path, job_id: str) -> list[dict[str, Any]]:
    """The job's events as written so far to its JSONL log (a torn last line is skipped)."""
    path = home / "jobs" / job_id / "events.jsonl"
    found: list[dict[str, Any]] = []
    if not path.exists():
        return found
    for line in path.read_text().splitlines():
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return found


def event_count(home: Path, job_id: str) -> int:
    """How many events the job's JSONL log holds (cheap enough to poll)."""
    try:
        return (home / "jobs" / job_id / "events.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def wait_until(
    condition: Callable[[], bool], *, timeout: float = 60, what: str = "condition", every: float = 0.01
) -> None:
    """Poll ``condition`` every ``every`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def store_rows(home: Path, sql: str, parameters: Sequence[Any] = ()) -> list[sqlite3.Row]:
    """Rows of the job store, read with a separate connection (as any other reader would)."""
    connection = sqlite3.connect(home / "treefork.db", timeout=30)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(sql, tuple(parameters)).fetchall()
    finally:
        connection.close()


def recorded_items(home: Path, job_id: str) -> set[str]:
    """Items whose agent result the store holds (a finished outcome, not ``running``)."""
    rows = store_rows(
        home, "SELECT item FROM agents WHERE job_id = ? AND result IS NOT NULL AND status != 'running'", (job_id,)
    )
    return {json.loads(row["item"]) for row in rows}


def mapreduce_workflow(
    path: Path, log: Path, items: Sequence[str], *, agent: str | None = None, sleep: float = 0.3,
    max_parallel: int = 2, prefix: str = "out", extra: str = "",
) -> Path:
    """A Prodigy-format workflow: setup logs, commits a line and writes ``items.json``; each
    agent logs its item then commits ``<prefix>-<item>.txt``; reduce logs and commits a
    summary. ``agent`` replaces the agent's command."""
    listing = json.dumps(list(items))
    command = agent or (
        f"echo ${{item}} >> {log}; sleep {sleep}; echo ${{item}} > {prefix}-${{item}}.txt; "
        f"git add {prefix}-${{item}}.txt; git commit -qm \"{prefix} ${{item}}\""
    )
    path.write_text(
        f"""name: {prefix}-flow
mode: mapreduce
setup:
  - shell: |
      echo setup >> {log}
      sleep {sleep}
      echo '{listing}' > items.json
      echo {prefix} >> setup-{prefix}.txt && git add setup-{prefix}.txt && git commit -qm "setup {prefix}"
map:
  input: items.json
  json_path: $[*]
  max_parallel: {max_parallel}
  agent_template:
    - shell: '{command.replace("'", "''")}'
      commit_required: true
reduce:
  - shell: echo reduce >> {log}; sleep {sleep}; ls {prefix}-*.txt > summary-{prefix}.txt; git add summary-{prefix}.txt; git commit -qm "summary {prefix}"
{extra}"""
    )
    return path


def log_lines(log: Path) -> list[str]:
    """What the agents logged, one entry per run."""
    return log.read_text().split() if log.exists() else []
