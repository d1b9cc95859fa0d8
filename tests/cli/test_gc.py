"""``treefork worktree list`` and ``gc``: merged work and orphans go, unmerged work stays
unless forced, jobs still running or awaiting merge are never touched, ``--dry-run``
changes nothing."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest
from gitutil import make_repo, run_git, treefork_branches, worktree_paths
from jobutil import log_lines, mapreduce_workflow, start, treefork, wait_until

pytestmark = pytest.mark.slow


def _failing_flow(tmp_path: Path, name: str, fail: str) -> Path:
    """Agents commit their file; item ``fail`` then leaves a stray file and fails: its
    commit stays on its branch, its worktree (holding the stray file) is kept."""
    agent = (
        "echo ${item} > " + name + "-${item}.txt; git add " + name + "-${item}.txt; "
        "git commit -qm \"" + name + " ${item}\"; "
        "if [ \"${item}\" = " + fail + " ]; then echo x > stray.txt; false; fi"
    )
    return mapreduce_workflow(
        tmp_path / f"{name}.yml", tmp_path / f"{name}.log", ["a", "b"], agent=agent, sleep=0, prefix=name
    )


def _disk(home: Path, repo: Path) -> tuple[list[Path], list[str], list[str]]:
    files = sorted(str(p) for p in (home / "worktrees").rglob("*")) if (home / "worktrees").exists() else []
    return worktree_paths(repo), treefork_branches(repo), files


def _lines(text: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in text.splitlines()]


def test_gc_removes_merged_work_and_orphans_and_refuses_unmerged_work(tmp_path: Path) -> None:
    home = tmp_path / "home"
    # items.json is not ignored here: a setup output, it goes to the job's artifacts.
    repo = make_repo(tmp_path / "repo", {"README.md": "# r\n"})
    merged_job = treefork(home, "run", _failing_flow(tmp_path, "m", fail="b"), "--repo", repo, "--yes", "--job-id", "m")
    assert merged_job.returncode == 1, merged_job.stderr  # partial: b failed, a merged
    open_job = treefork(home, "run", _failing_flow(tmp_path, "o", fail="none"), "--repo", repo, "--no-merge", "--job-id", "o")
    assert open_job.returncode == 0, open_job.stderr

    failed_branch = "treefork/m/agents/m-flow/0001-1"
    assert failed_branch in treefork_branches(repo)  # b's work, never merged
    dirty_worktree = next(p for p in worktree_paths(repo) if "/m/agents/" in str(p))
    assert not any("/domains/" in str(p) for p in worktree_paths(repo))
    assert (home / "jobs" / "m" / "artifacts" / "m-flow" / "items.json").exists()
    [key] = [p.name for p in (home / "worktrees").iterdir()]
    root = home / "worktrees" / key
    (root / "ghost" / "agents" / "x" / "slot-9").mkdir(parents=True)  # empty orphan
    (root / "ghost2" / "x").mkdir(parents=True)
    (root / "ghost2" / "x" / "keep.txt").write_text("?\n")  # orphan holding a file
    stale = root / "stale" / "session"
    run_git(repo, "worktree", "add", "-q", "-b", "treefork/stale/session", str(stale))
    shutil.rmtree(stale)  # its folder is gone: a stale entry

    listed = _lines(treefork(home, "worktree", "list", "--json").stdout)
    states = {row["path"]: (row["job_state"], row["status"]) for row in listed}
    assert states[str(dirty_worktree)] == ("closed", "1 uncommitted")
    assert states[str(stale)] == ("unknown", "missing (stale entry)")
    assert any(state == ("open", "clean") for state in states.values())

    before = _disk(home, repo)
    dry = treefork(home, "worktree", "gc", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert _disk(home, repo) == before
    assert f"would prune stale entry {stale}" in dry.stdout
    assert f"keep {dirty_worktree} (m): uncommitted changes in stray.txt" in dry.stdout
    assert "would delete branch treefork/stale/session" in dry.stdout
    assert "awaits merge" in dry.stdout

    assert dry.stdout.splitlines()[-1].startswith("would remove ")
    assert "; kept " in dry.stdout.splitlines()[-1]
    collected = treefork(home, "worktree", "gc", "--json")
    assert collected.returncode == 0, collected.stderr
    decisions = {row["target"]: row for row in _lines(collected.stdout)}
    assert decisions[str(dirty_worktree)]["action"] == "keep"
    assert decisions[failed_branch]["action"] == "keep"
    # b's branch is checked out in its kept worktree (which holds the stray file).
    assert decisions[failed_branch]["reason"] == "checked out in a worktree that stays"
    assert decisions[str(root / "ghost2" / "x")]["action"] == "keep"
    assert dirty_worktree.exists() and failed_branch in treefork_branches(repo)
    assert not (root / "ghost").exists() and (root / "ghost2" / "x" / "keep.txt").exists()
    assert "treefork/stale/session" not in treefork_branches(repo)
    assert run_git(repo, "worktree", "prune", "--dry-run", "-v") == ""
    open_branches = [b for b in treefork_branches(repo) if b.startswith("treefork/o/")]
    assert open_branches and any("/o/" in str(p) for p in worktree_paths(repo))

    forced = treefork(home, "worktree", "gc", "--force")
    assert forced.returncode == 0, forced.stderr
    assert not dirty_worktree.exists() and failed_branch not in treefork_branches(repo)
    assert [b for b in treefork_branches(repo) if b.startswith("treefork/m/")] == []
    assert not (root / "ghost2").exists()
    assert [b for b in treefork_branches(repo) if b.startswith("treefork/o/")] == open_branches

    assert treefork(home, "merge", "o").returncode == 0
    last = treefork(home, "worktree", "gc")  # a merged job: nothing of it stays
    assert last.returncode == 0, last.stderr
    assert worktree_paths(repo) == [repo] and treefork_branches(repo) == []
    assert treefork(home, "worktree", "gc").stdout.strip() == "nothing to collect"
    assert not (home / "worktrees").exists() or not any((home / "worktrees").rglob("*"))


def test_gc_after_a_crash_keeps_the_job_resumable(tmp_path: Path) -> None:
    home = tmp_path / "home"
    repo = make_repo(tmp_path / "repo", {"README.md": "# r\n", ".gitignore": "items.json\n"})
    log = tmp_path / "agents.log"
    flow = mapreduce_workflow(tmp_path / "flow.yml", log, ["a", "b", "c", "d"], sleep=0.2)
    process = start(home, "run", flow, "--repo", repo, "--yes", "--job-id", "crashed")
    wait_until(lambda: "b" in log_lines(log), what="the map phase")
    process.send_signal(signal.SIGKILL)
    process.wait()

    collected = treefork(home, "worktree", "gc", "--json")
    assert collected.returncode == 0, collected.stderr
    decisions = _lines(collected.stdout)
    branches = {d["target"]: d for d in decisions if d["what"] == "branch"}
    # Branches holding work (setup's commit, merged agents) stay; ones at the base may go.
    assert branches["treefork/crashed/domains/out-flow"]["action"] == "keep"
    # An agent killed mid-write leaves uncommitted changes: its worktree (and so its branch)
    # stays; every other worktree of the crashed job is gone.
    dirty = {
        d["target"] for d in decisions
        if d["what"] == "worktree" and d["action"] == "keep" and "uncommitted" in d["reason"]
    }
    for decision in branches.values():
        kept = decision["action"] == "keep" and (
            "resumed" in decision["reason"] or "worktree that stays" in decision["reason"]
        )
        merged = decision["action"] == "delete_branch" and "merged into one of your branches" in decision["reason"]
        assert kept or merged, decision
    assert {str(p) for p in worktree_paths(repo)} == {str(repo), *dirty}

    resumed = treefork(home, "resume", "crashed", "--yes")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert sorted(p.name for p in repo.glob("out-*.txt")) == ["out-a.txt", "out-b.txt", "out-c.txt", "out-d.txt"]
    assert treefork(home, "worktree", "gc").returncode == 0
    assert treefork_branches(repo) == [] and worktree_paths(repo) == [repo]


def test_gc_rejects_a_bad_duration_and_spares_recent_jobs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    repo = make_repo(tmp_path / "repo", {"README.md": "# r\n", ".gitignore": "items.json\n"})
    assert treefork(home, "worktree", "gc", "--older-than", "soon").returncode == 2
    ran = treefork(home, "run", _failing_flow(tmp_path, "m", fail="b"), "--repo", repo, "--yes", "--job-id", "m")
    assert ran.returncode == 1
    before = _disk(home, repo)[:2]
    assert before[1] == ["treefork/m/agents/m-flow/0001-1"]
    recent = treefork(home, "worktree", "gc", "--older-than", "1h", "--force")
    assert recent.returncode == 0
    assert _disk(home, repo)[:2] == before
    assert treefork(home, "worktree", "gc", "--older-than", "0s", "--force").returncode == 0
    assert treefork_branches(repo) == []


def test_gc_counts_what_it_removed_and_kept_in_words() -> None:
    from treefork.cli.worktree import _gc_totals
    from treefork.core.hygiene import GcAction

    actions = [
        GcAction("delete_branch", "b1", "j", "merged", "branch"),
        GcAction("delete_branch", "b2", "j", "merged", "branch"),
        GcAction("remove_worktree", "/w", "j", "merged"),
        GcAction("keep", "/k", "j", "uncommitted changes in x (--force removes it)"),
    ]
    assert _gc_totals(actions, dry_run=False) == "removed 2 branches, 1 worktree; kept 1 worktree"
    assert _gc_totals(actions[:1], dry_run=True) == "would remove 1 branch"
    assert _gc_totals([], dry_run=False) == "nothing to collect"
