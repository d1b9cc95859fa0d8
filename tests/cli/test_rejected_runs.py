"""A run refused at the start leaves nothing: no job record, branch or worktree, and no
change in the repository. Output written to a pipe is never wrapped."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cliutil import TRACEBACK, environment, treefork
from gitutil import commit_file, make_repo, run_git, snapshot, treefork_branches

WORKFLOW = """\
name: rejected
mode: mapreduce
map:
  input: "printf 'a\\n'"
  agent_template:
    - shell: "echo ${item} > ${item}.txt"
"""


def _bare(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


def _empty(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    return path


def _plain_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _detached(path: Path) -> Path:
    repo = make_repo(path)
    run_git(repo, "checkout", "-q", "--detach")
    return repo


def _merging(path: Path) -> Path:
    repo = make_repo(path, {"a.txt": "base\n"})
    run_git(repo, "checkout", "-q", "-b", "other")
    commit_file(repo, "a.txt", "other\n")
    run_git(repo, "checkout", "-q", "main")
    commit_file(repo, "a.txt", "main\n")
    run_git(repo, "merge", "-q", "other", check=False)  # conflicts: MERGE_HEAD stays
    return repo


def _conflicted_stash(path: Path) -> Path:
    repo = make_repo(path, {"a.txt": "base\n"})
    (repo / "a.txt").write_text("stashed\n")
    run_git(repo, "stash", "-q")
    commit_file(repo, "a.txt", "committed\n")
    run_git(repo, "stash", "pop", "-q", check=False)  # conflicts without MERGE_HEAD
    return repo


def _cherry_picking(path: Path) -> Path:
    repo = make_repo(path, {"a.txt": "base\n"})
    run_git(repo, "checkout", "-q", "-b", "other")
    picked = commit_file(repo, "a.txt", "other\n")
    run_git(repo, "checkout", "-q", "main")
    commit_file(repo, "a.txt", "main\n")
    run_git(repo, "cherry-pick", picked, check=False)
    return repo


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "bare": (_bare, "bare repository"),
    "no commits": (_empty, "no commits"),
    "not a repository": (_plain_folder, "not a git repository"),
    "detached HEAD": (_detached, "HEAD is detached"),
    "merge in progress": (_merging, "a merge is in progress"),
    "conflicts after stash pop": (
        _conflicted_stash,
        "unresolved conflicts in the checkout (a.txt)",
    ),
    "cherry-pick in progress": (_cherry_picking, "a cherry-pick is in progress"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_rejected_run_exits_2_and_leaves_nothing(tmp_path: Path, case: str) -> None:
    make, expected = CASES[case]
    repo = make(tmp_path / "repo")
    workflow = tmp_path / "w.yml"
    workflow.write_text(WORKFLOW)
    home = tmp_path / "home"
    before = snapshot(repo) if (repo / ".git").is_dir() and case != "no commits" else None

    finished = treefork(
        "run", workflow, "--repo", repo, "--yes", env=environment(TREEFORK_HOME=str(home))
    )

    assert finished.returncode == 2, finished.stdout + finished.stderr
    assert expected in finished.stderr, finished.stderr
    assert TRACEBACK not in finished.stderr
    if (home / "treefork.db").exists():
        with sqlite3.connect(home / "treefork.db") as db:
            assert db.execute("select count(*) from jobs").fetchone() == (0,)
    assert not (home / "worktrees").exists() or not any((home / "worktrees").rglob("*"))
    jobs = treefork("jobs", env=environment(TREEFORK_HOME=str(home)))
    assert "rejected" not in jobs.stdout and "interrupted" not in jobs.stdout
    if before is not None:
        assert treefork_branches(repo) == []
        assert snapshot(repo) == before


def test_a_piped_summary_never_breaks_a_command_or_a_path(tmp_path: Path) -> None:
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "repo"
    repo = make_repo(deep)
    workflow = tmp_path / "w.yml"
    workflow.write_text(WORKFLOW.replace("a\\n", "a\\nb\\n"))
    home = tmp_path / "home"

    finished = treefork(
        "run", workflow, "--repo", repo, "--no-merge", env=environment(TREEFORK_HOME=str(home))
    )

    assert finished.returncode == 0, finished.stdout + finished.stderr
    lines = (finished.stdout + finished.stderr).splitlines()
    suggestion = next(line for line in lines if "git merge treefork/" in line)
    assert "`treefork merge " in suggestion and "`treefork resume " in suggestion
    assert "merged into session" in finished.stdout
    assert "all tests passed: no tests" in finished.stdout
