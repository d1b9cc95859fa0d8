"""``--checkpointer postgres://...``: LangGraph's Postgres checkpointer, against a real
PostgreSQL server this module starts on loopback (``scripts/ensure-postgres``)."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from gitutil import make_repo, run_git
from jobutil import (
    event_count,
    log_lines,
    mapreduce_workflow,
    recorded_items,
    start,
    treefork,
    wait_until,
)

# Installing PostgreSQL (on a fresh machine) happens in the first test's setup.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "ensure-postgres"
NOT_INSTALLABLE = 3


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server for this module's tests, stopped (and removed) at the end."""
    started = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=600, check=False)
    if started.returncode == NOT_INSTALLABLE:
        pytest.skip(f"PostgreSQL cannot be installed here: {started.stderr.strip()}")
    assert started.returncode == 0, started.stderr
    url, folder = started.stdout.split()
    try:
        yield url
    finally:
        subprocess.run([str(SCRIPT), "--stop", folder], check=False, timeout=120)


def _checkpoints(url: str, thread: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT count(*) FROM checkpoints WHERE thread_id = %s", (thread,)).fetchone()
    assert row is not None
    return int(row[0])


def test_a_job_checkpointed_in_postgres_is_reviewed_and_merged_by_resume(tmp_path: Path, postgres_url: str) -> None:
    home = tmp_path / "home"
    repo = make_repo(tmp_path / "repo", {"README.md": "# r\n", ".gitignore": "items.json\n"})
    flow = mapreduce_workflow(tmp_path / "flow.yml", tmp_path / "agents.log", ["a", "b"], sleep=0)
    ran = treefork(home, "run", flow, "--repo", repo, "--no-merge", "--job-id", "pg", "--checkpointer", postgres_url)
    assert ran.returncode == 0, ran.stderr
    assert _checkpoints(postgres_url, "pg") > 0
    assert not (home / "checkpoints.sqlite").exists()
    merged = treefork(home, "resume", "pg", "--yes")  # the recorded checkpointer is used
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert (repo / "out-a.txt").exists() and (repo / "out-b.txt").exists()


def test_a_killed_job_resumes_from_its_postgres_checkpoint(tmp_path: Path, postgres_url: str) -> None:
    home = tmp_path / "home"
    repo = make_repo(tmp_path / "repo", {"README.md": "# r\n", ".gitignore": "items.json\n"})
    log = tmp_path / "agents.log"
    items = ["a", "b", "c", "d"]
    flow = mapreduce_workflow(tmp_path / "flow.yml", log, items, sleep=0.2)
    process = start(home, "run", flow, "--repo", repo, "--yes", "--job-id", "pgkill", "--checkpointer", postgres_url)
    wait_until(lambda: len(log_lines(log)) >= 3 or process.poll() is not None, what="the map phase")
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert event_count(home, "pgkill") > 0
    before, recorded = log_lines(log), recorded_items(home, "pgkill")
    resumed = treefork(home, "resume", "pgkill", "--yes")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = log_lines(log)
    assert all(after.count(item) == before.count(item) for item in recorded)
    assert sorted(set(after) - {"setup", "reduce"}) == items
    assert sorted(run_git(repo, "ls-tree", "--name-only", "main").split()) == [
        ".gitignore", "README.md", *(f"out-{item}.txt" for item in items), "setup-out.txt", "summary-out.txt",
    ]
