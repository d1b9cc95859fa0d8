"""Worktree gc decisions: what is removed, what is kept, and why."""

from __future__ import annotations

import pytest

from treefork.core.hygiene import (
    BranchFacts,
    FolderFacts,
    JobFacts,
    WorktreeFacts,
    job_state,
    parse_duration,
    plan_gc,
)

MERGED = JobFacts("succeeded", merge_status="merged", age=10_000)
OPEN = JobFacts("succeeded", merge_status="pending", age=10_000)
RUNNING = JobFacts("running", locked=True, age=1)
CRASHED = JobFacts("running", age=10_000)


def test_job_states() -> None:
    assert job_state(None) == "unknown"
    assert job_state(RUNNING) == "running"
    assert job_state(MERGED) == "closed"
    assert job_state(JobFacts("failed", merge_status="refused", discarded=True)) == "closed"
    assert job_state(CRASHED) == "interrupted"
    assert job_state(OPEN) == "open"


def test_clean_worktrees_of_merged_jobs_go_and_dirty_ones_stay_without_force() -> None:
    worktrees = [
        WorktreeFacts("/h/w/r/j/session", "j", "treefork/j/session", True),
        WorktreeFacts("/h/w/r/j/domains/d", "j", "treefork/j/domains/d", True, ("notes.txt",)),
    ]
    actions = plan_gc({"j": MERGED}, worktrees, [], [])
    assert [a.kind for a in actions] == ["remove_worktree", "keep"]
    assert "notes.txt" in actions[1].reason and "--force" in actions[1].reason
    forced = plan_gc({"j": MERGED}, worktrees, [], [], force=True)
    assert [a.kind for a in forced] == ["remove_worktree", "remove_worktree"]


def test_unmerged_branches_are_kept_without_force_and_checked_out_ones_always() -> None:
    worktrees = [WorktreeFacts("/h/w/r/j/domains/d", "j", "treefork/j/domains/d", True, ("x",))]
    branches = [
        BranchFacts("treefork/j/session", "j", contained=True),
        BranchFacts("treefork/j/agents/d/0001-b", "j", contained=False),
        BranchFacts("treefork/j/domains/d", "j", contained=True),
    ]
    actions = plan_gc({"j": MERGED}, worktrees, [], branches)
    kinds = {a.target: a.kind for a in actions}
    assert kinds["treefork/j/session"] == "delete_branch"
    assert kinds["treefork/j/agents/d/0001-b"] == "keep"
    assert kinds["treefork/j/domains/d"] == "keep"
    forced = {a.target: a.kind for a in plan_gc({"j": MERGED}, worktrees, [], branches, force=True)}
    assert forced["treefork/j/agents/d/0001-b"] == "delete_branch"


def test_running_and_open_jobs_are_never_touched_even_with_force() -> None:
    for facts in (RUNNING, OPEN):
        worktrees = [WorktreeFacts("/h/w/r/j/session", "j", "treefork/j/session", True)]
        branches = [BranchFacts("treefork/j/session", "j", contained=True)]
        actions = plan_gc({"j": facts}, worktrees, [], branches, force=True)
        assert {a.kind for a in actions} == {"keep"}


def test_orphans_stale_entries_and_crashed_jobs() -> None:
    worktrees = [
        WorktreeFacts("/h/w/r/x/session", "x", "treefork/x/session", True),  # no job knows x
        WorktreeFacts("/h/w/r/c/session", "c", "treefork/c/session", True),  # crashed job
        WorktreeFacts("/h/w/r/c/agents/d/slot-1", "c", None, False),  # folder gone
    ]
    folders = [FolderFacts("/h/w/r/y/agents", "y", has_files=False), FolderFacts("/h/w/r/z", "z", has_files=True)]
    branches = [BranchFacts("treefork/c/domains/d", "c", contained=False)]
    actions = plan_gc({"c": CRASHED}, worktrees, folders, branches)
    assert [a.kind for a in actions] == ["remove_worktree", "remove_worktree", "prune", "remove_folder", "keep", "keep"]
    assert "resumed" in actions[-1].reason


def test_older_than_spares_recent_jobs() -> None:
    worktrees = [WorktreeFacts("/h/w/r/j/session", "j", "treefork/j/session", True)]
    actions = plan_gc({"j": JobFacts("succeeded", merge_status="merged", age=60)}, worktrees, [], [], older_than=3600)
    assert actions[0].kind == "keep" and "older-than" in actions[0].reason


def test_durations() -> None:
    assert parse_duration("30s") == 30
    assert parse_duration("15m") == 900
    assert parse_duration("1d12h") == 36 * 3600
    assert parse_duration("2w") == 14 * 86400
    for bad in ("", "7", "abc", "3x"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)
