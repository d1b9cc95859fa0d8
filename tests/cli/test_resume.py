"""Fault injection: ``treefork run`` killed with SIGKILL at chosen points, then ``treefork
resume``; and the job lock that keeps a second resume of a running job away.

Kill points are chosen by event count from an uninterrupted run of the same workflow (the
n-th event of a kind), so the phase each kill lands in is the same on every run: during
setup, mid-map, right after an agent's merge, during reduce, and while waiting at merge
review (on a terminal). After each resume the final tree must equal the uninterrupted
run's, and no item the store had recorded at the kill may have run again.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from gitutil import make_repo, run_git, treefork_branches, worktree_paths
from jobutil import (
    TREEFORK,
    cli_env,
    event_count,
    events,
    log_lines,
    mapreduce_workflow,
    recorded_items,
    start,
    store_rows,
    treefork,
    wait_until,
)

ITEMS = ["a", "b", "c", "d", "e", "f"]

pytestmark = pytest.mark.slow


def _nth(kind: str, n: int, **fields: Any) -> Callable[[list[dict[str, Any]]], int]:
    """Kill point: the number of events up to the n-th event of ``kind`` (matching ``fields``)."""

    def count(reference: list[dict[str, Any]]) -> int:
        seen = 0
        for number, event in enumerate(reference, 1):
            if event["event"] == kind and all(event.get(k) == v for k, v in fields.items()):
                seen += 1
                if seen == n:
                    return number
        raise AssertionError(f"no {n}th {kind} event in the uninterrupted run")

    return count


KILL_POINTS = {
    "setup": _nth("step_start", 1, phase="setup"),
    "mid-map": _nth("agent_end", 3),
    "after-agent-merge": _nth("merge", 4),
    "reduce": _nth("step_start", 1, phase="reduce"),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(
        tmp_path_factory.mktemp("pristine") / "repo",
        {"README.md": "# sample\n", ".gitignore": "items.json\n"},
    )


@pytest.fixture(scope="module")
def uninterrupted(
    pristine: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, list[dict[str, Any]]]:
    """The final tree and the events of a run nobody interrupted."""
    base = tmp_path_factory.mktemp("uninterrupted")
    repo = shutil.copytree(pristine, base / "repo")
    home = base / "home"
    flow = mapreduce_workflow(base / "flow.yml", base / "agents.log", ITEMS)
    done = treefork(home, "run", flow, "--repo", repo, "--yes", "--job-id", "whole")
    assert done.returncode == 0, done.stderr
    assert sorted(log_lines(base / "agents.log")) == sorted(["setup", "reduce", *ITEMS])
    return run_git(repo, "rev-parse", "main^{tree}").strip(), events(home, "whole")


def _read_until(descriptor: int, text: str, timeout: float = 60) -> str:
    """Read a terminal's output until ``text`` appears."""
    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {text!r} on the terminal; it showed {seen[-500:]!r}")
        ready, _, _ = select.select([descriptor], [], [], remaining)
        if ready:
            seen += os.read(descriptor, 4096).decode(errors="replace")
    return seen


def _has_rows(home: Path, sql: str) -> bool:
    try:
        return bool(store_rows(home, sql))
    except sqlite3.OperationalError:  # the store is still being created
        return False


def _kill_at(
    home: Path, job: str, process: subprocess.Popen[str], count: int, errors: Path
) -> None:
    wait_until(
        lambda: event_count(home, job) >= count or process.poll() is not None,
        what=f"{count} events",
    )
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, (
        f"the job ended before the kill point: {errors.read_text()[-2000:]}"
    )


def _kill_and_resume(
    home: Path, base: Path, pristine: Path, name: str, *, kill_after: int, tree: str
) -> Path:
    """Run the workflow as job ``name``, SIGKILL it after ``kill_after`` events, resume it."""
    repo = shutil.copytree(pristine, base / name / "repo")
    log = base / name / "agents.log"
    flow = mapreduce_workflow(base / name / "flow.yml", log, ITEMS, sleep=0.15)
    errors = base / name / "stderr.txt"
    with errors.open("w") as stderr:
        process = start(home, "run", flow, "--repo", repo, "--yes", "--job-id", name, stderr=stderr)
        _kill_at(home, name, process, kill_after, errors)
    before, recorded = log_lines(log), recorded_items(home, name)
    setup_sql = "SELECT 1 FROM domains WHERE job_id = ? AND setup IS NOT NULL"
    setup_done = bool(store_rows(home, setup_sql, [name]))
    resumed = treefork(home, "resume", name, "--yes")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = log_lines(log)
    for item in recorded:
        assert after.count(item) == before.count(item), f"{name}: {item} ran again after its result was recorded"
    if setup_done:
        assert after.count("setup") == before.count("setup"), f"{name}: setup ran again"
    assert set(after) == {"setup", "reduce", *ITEMS}
    assert run_git(repo, "rev-parse", "main^{tree}").strip() == tree, f"{name}: final tree differs"
    return repo


def test_killed_runs_resume_to_the_uninterrupted_tree_without_rerunning_recorded_agents(
    tmp_path: Path, pristine: Path, uninterrupted: tuple[str, list[dict[str, Any]]]
) -> None:
    tree, reference = uninterrupted
    home = tmp_path / "home"
    # The kill points are independent jobs on their own repositories, sharing one home and
    # its store: they run two at a time (tests/cli/test_concurrent.py covers concurrent jobs).
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(_kill_and_resume, home, tmp_path, pristine, name, kill_after=point(reference), tree=tree)
            for name, point in KILL_POINTS.items()
        ]
        repos = [future.result() for future in futures]
    assert recorded_items(home, "mid-map"), "the mid-map kill should land after some results"
    statuses = {row["job_id"]: row["merge_status"] for row in store_rows(home, "SELECT * FROM jobs")}
    assert statuses == dict.fromkeys(KILL_POINTS, "merged")
    again = treefork(home, "resume", "mid-map")
    assert again.returncode == 0 and "already finished" in again.stderr
    _assert_gc_leaves_no_orphan(home, repos)


def _assert_gc_leaves_no_orphan(home: Path, repos: list[Path]) -> None:
    collected = treefork(home, "worktree", "gc")
    assert collected.returncode == 0, collected.stdout + collected.stderr
    for repo in repos:
        assert worktree_paths(repo) == [repo]
        assert treefork_branches(repo) == []
        assert run_git(repo, "worktree", "prune", "--dry-run", "-v") == ""
    leftovers = (
        [p for p in (home / "worktrees").rglob("*")] if (home / "worktrees").exists() else []
    )
    assert leftovers == []
    assert treefork(home, "worktree", "list", "--json").stdout == ""


def test_a_job_killed_while_waiting_at_merge_review_is_asked_again(
    tmp_path: Path, pristine: Path, uninterrupted: tuple[str, list[dict[str, Any]]]
) -> None:
    tree, _ = uninterrupted
    home = tmp_path / "home"
    repo = shutil.copytree(pristine, tmp_path / "repo")
    log = tmp_path / "agents.log"
    flow = mapreduce_workflow(tmp_path / "flow.yml", log, ITEMS, sleep=0.05)
    # On a terminal, `run` asks before merging; the kill comes while it waits for the answer.
    controller, terminal = pty.openpty()
    process = start(home, "run", flow, "--repo", repo, "--job-id", "review", stdin=terminal, stdout=terminal)
    try:
        _read_until(controller, "Merge into")
        assert _has_rows(home, "SELECT 1 FROM jobs WHERE job_id = 'review' AND merge_status = 'pending'")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        os.close(controller)
        os.close(terminal)
    before = log_lines(log)
    assert run_git(repo, "rev-parse", "main^{tree}").strip() != tree
    asked = treefork(home, "resume", "review", "--json")
    assert asked.returncode == 0, asked.stderr
    assert '"status": "pending"' in asked.stdout
    merged = treefork(home, "resume", "review", "--yes")
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert "merged" in merged.stdout
    assert log_lines(log) == before
    assert run_git(repo, "rev-parse", "main^{tree}").strip() == tree


def test_a_second_resume_of_a_running_job_says_so_and_touches_nothing(tmp_path: Path, pristine: Path) -> None:
    home = tmp_path / "home"
    repo = shutil.copytree(pristine, tmp_path / "repo")
    log, gate = tmp_path / "agents.log", tmp_path / "gate"
    # The agents wait for the gate: the job is surely running while the others knock.
    agent = (
        f"echo ${{item}} >> {log}; while [ ! -e {gate} ]; do sleep 0.05; done; "
        "echo ${item} > out-${item}.txt; git add out-${item}.txt; git commit -qm \"out ${item}\""
    )
    flow = mapreduce_workflow(tmp_path / "flow.yml", log, ["a", "b"], agent=agent, sleep=0)
    process = start(home, "run", flow, "--repo", repo, "--yes", "--job-id", "busy")
    try:
        wait_until(lambda: len(log_lines(log)) == 3, what="both agents running")
        seen, branches = event_count(home, "busy"), treefork_branches(repo)
        second = treefork(home, "resume", "busy", "--yes")
        assert second.returncode == 3
        assert "is running in process" in second.stderr and str(process.pid) in second.stderr
        rerun = treefork(home, "run", flow, "--repo", repo, "--job-id", "busy")
        assert rerun.returncode == 3
        assert treefork_branches(repo) == branches
        assert event_count(home, "busy") == seen
        assert log_lines(log) == ["setup", "a", "b"] or log_lines(log) == ["setup", "b", "a"]
        gate.touch()
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (repo / "out-a.txt").exists() and (repo / "out-b.txt").exists()


def test_resume_of_an_unknown_job_is_invalid_input(tmp_path: Path) -> None:
    result = treefork(tmp_path / "home", "resume", "nope")
    assert result.returncode == 2
    assert "no job 'nope'" in result.stderr


def test_events_and_jobs_show_the_job_log(tmp_path: Path, pristine: Path) -> None:
    home = tmp_path / "home"
    repo = shutil.copytree(pristine, tmp_path / "repo")
    log, gate = tmp_path / "agents.log", tmp_path / "gate"
    agent = (
        f"echo ${{item}} >> {log}; while [ ! -e {gate} ]; do sleep 0.05; done; "
        "echo ${item} > out-${item}.txt; git add out-${item}.txt; git commit -qm \"out ${item}\""
    )
    flow = mapreduce_workflow(tmp_path / "flow.yml", log, ["a"], agent=agent, sleep=0)
    process = start(home, "run", flow, "--repo", repo, "--yes", "--job-id", "logged")
    try:
        wait_until(lambda: "a" in log_lines(log), what="the agent")
        listed = treefork(home, "jobs", "--json")
        assert '"job_id": "logged", "workflow": "out-flow", "status": "running"' in listed.stdout
        with subprocess.Popen(
            [str(TREEFORK), "events", "logged", "--follow", "--json"],
            env=cli_env(home), stdout=subprocess.PIPE, text=True,
        ) as follower:
            gate.touch()
            followed, _ = follower.communicate(timeout=60)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    kinds = [json.loads(line)["event"] for line in followed.splitlines()]
    assert kinds[0] == "job_start" and kinds[-1] == "job_end"
    assert {"agent_start", "agent_end", "merge", "worktree", "phase_start", "merge_review"} <= set(kinds)
    assert followed.splitlines() == treefork(home, "events", "logged", "--json").stdout.splitlines()
    human = treefork(home, "events", "logged").stdout.splitlines()
    assert len(human) == len(kinds) and any("agent_end" in line and "item=0" in line for line in human)
    table = treefork(home, "jobs").stdout
    assert "logged" in table and "out-flow" in table and "succeeded" in table
    assert treefork(home, "events", "nope").returncode == 2
