"""Two jobs on one repository at the same time: both succeed, each with its own branches and
worktrees, without git lock failures, and both merge into the same branch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gitutil import make_repo, run_git, treefork_branches, worktree_paths
from jobutil import events, mapreduce_workflow, start

pytestmark = pytest.mark.slow

ITEMS = [f"i{number}" for number in range(6)]
LOCK_FAILURES = ("index.lock", "cannot lock ref", "Unable to create", "already exists", "is locked")


def test_two_jobs_on_one_repository_at_once_both_succeed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    repo = make_repo(tmp_path / "repo", {"README.md": "# r\n", ".gitignore": "items.json\n"})
    processes = {}
    for name in ("left", "right"):
        flow = mapreduce_workflow(tmp_path / f"{name}.yml", tmp_path / f"{name}.log", ITEMS, sleep=0.05, max_parallel=3, prefix=name)
        output = (tmp_path / f"{name}.out").open("w")
        errors = (tmp_path / f"{name}.err").open("w")
        processes[name] = (start(home, "run", flow, "--repo", repo, "--yes", "--json", "--job-id", name, stdout=output, stderr=errors), output, errors)
    for name, (process, output, errors) in processes.items():
        assert process.wait(timeout=120) == 0, (tmp_path / f"{name}.err").read_text()
        output.close()
        errors.close()
    for name in ("left", "right"):
        report = json.loads((tmp_path / f"{name}.out").read_text())
        assert (report["status"], report["merge"]["status"]) == ("succeeded", "merged")
        stderr = (tmp_path / f"{name}.err").read_text()
        assert not any(failure in stderr for failure in LOCK_FAILURES), stderr
        for item in ITEMS:
            assert (repo / f"{name}-{item}.txt").read_text() == f"{item}\n"
        made = {e["path"] for e in events(home, name) if e["event"] == "worktree" and e.get("action") == "created"}
        assert made and all(f"/{name}/" in path for path in made)
    # The two jobs overlapped in time, and their merges both landed on main.
    spans = {name: (events(home, name)[0]["ts"], events(home, name)[-1]["ts"]) for name in ("left", "right")}
    assert spans["left"][0] < spans["right"][1] and spans["right"][0] < spans["left"][1]
    log = run_git(repo, "log", "--format=%s", "main")
    assert "treefork: merge job left" in log and "treefork: merge job right" in log
    assert run_git(repo, "status", "--porcelain") == ""
    assert treefork_branches(repo) == [] and worktree_paths(repo) == [repo]
