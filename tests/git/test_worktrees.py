"""Worktrees: outside the repository, reusable agent slots, no unmerged work deleted."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from gitutil import commit_file, run_git, snapshot, treefork_branches, worktree_paths

from treefork.errors import RepositoryError, UnmergedWorkError, WorktreeError
from treefork.git.pool import AgentPool
from treefork.git.repository import open_repository
from treefork.git.worktrees import WorktreeManager


async def _manager(repo: Path, home: Path, job: str = "job1") -> WorktreeManager:
    info = await open_repository(repo)
    return WorktreeManager(info, job, home)


async def test_session_and_domain_worktrees_live_under_the_home(repo: Path, treefork_home: Path) -> None:
    manager = await _manager(repo, treefork_home)
    state = snapshot(repo)
    session = await manager.session_worktree(manager.repo.head)
    domain = await manager.domain_worktree("docs", manager.repo.head)
    assert session.path.is_relative_to(treefork_home)
    assert domain.path.is_relative_to(treefork_home)
    assert session.branch == "treefork/job1/session"
    assert domain.branch == "treefork/job1/domains/docs"
    assert (domain.path / "docs/index.md").exists()
    assert snapshot(repo) == state


async def test_ensure_worktree_is_idempotent(repo: Path, treefork_home: Path) -> None:
    manager = await _manager(repo, treefork_home)
    first = await manager.domain_worktree("docs", manager.repo.head)
    second = await manager.domain_worktree("docs", manager.repo.head)
    assert first == second


async def test_reused_agent_worktree_carries_nothing_but_kept_folders(repo: Path, treefork_home: Path) -> None:
    commit_file(repo, ".gitignore", "node_modules/\n")
    manager = await _manager(repo, treefork_home)
    pool = AgentPool(manager, "docs")
    base = manager.repo.head
    first = await pool.acquire("treefork/job1/agents/docs/0000-a", base)
    (first.path / "scratch.txt").write_text("left behind\n")
    (first.path / "node_modules").mkdir()
    (first.path / "node_modules" / "dep.js").write_text("warm\n")
    (first.path / "README.md").write_text("edited\n")
    run_git(first.path, "add", "README.md")
    run_git(first.path, "commit", "-q", "-m", "agent a")
    await pool.release(first, reusable=True)

    second = await pool.acquire("treefork/job1/agents/docs/0001-b", base)

    assert second.path == first.path
    assert pool.created == 1
    assert not (second.path / "scratch.txt").exists()
    assert (second.path / "node_modules" / "dep.js").read_text() == "warm\n"
    assert (second.path / "README.md").read_text() == "# sample\n"
    assert run_git(second.path, "rev-parse", "HEAD").strip() == base
    assert run_git(second.path, "status", "--porcelain") == ""


async def test_acquire_refuses_a_branch_that_holds_other_work(repo: Path, treefork_home: Path) -> None:
    manager = await _manager(repo, treefork_home)
    run_git(repo, "branch", "treefork/job1/agents/docs/0000-a")
    other = commit_file(repo, "x.txt", "x\n")
    run_git(repo, "branch", "-f", "treefork/job1/agents/docs/0000-a", other)
    pool = AgentPool(manager, "docs")
    with pytest.raises(WorktreeError):
        await pool.acquire("treefork/job1/agents/docs/0000-a", manager.repo.head)


async def test_parallel_slot_creation_never_fails_on_git_locks(repo: Path, treefork_home: Path) -> None:
    manager = await _manager(repo, treefork_home)
    pool = AgentPool(manager, "docs")
    acquired = []

    async def take(index: int) -> None:
        acquired.append(await pool.acquire(f"treefork/job1/agents/docs/{index:04d}", manager.repo.head))

    async with anyio.create_task_group() as group:
        for index in range(8):
            group.start_soon(take, index)
    assert len({worktree.path for worktree in acquired}) == 8
    assert len(treefork_branches(repo)) == 8


async def test_remove_refuses_a_worktree_with_uncommitted_changes(repo: Path, treefork_home: Path) -> None:
    manager = await _manager(repo, treefork_home)
    domain = await manager.domain_worktree("docs", manager.repo.head)
    (domain.path / "docs/index.md").write_text("unsaved\n")
    with pytest.raises(UnmergedWorkError):
        await manager.remove_worktree(domain.path)
    assert domain.path.exists()


async def test_delete_branch_refuses_unmerged_commits(repo: Path, treefork_home: Path) -> None:
    manager = await _manager(repo, treefork_home)
    domain = await manager.domain_worktree("docs", manager.repo.head)
    commit_file(domain.path, "new.txt", "work\n")
    await manager.remove_worktree(domain.path)
    with pytest.raises(UnmergedWorkError):
        await manager.delete_branch("treefork/job1/domains/docs", merged_into="main")
    assert "treefork/job1/domains/docs" in treefork_branches(repo)


async def test_sync_worktree_checks_out_a_branch_moved_in_the_object_store(repo: Path, treefork_home: Path) -> None:
    manager = await _manager(repo, treefork_home)
    domain = await manager.domain_worktree("docs", manager.repo.head)
    run_git(repo, "branch", "feature")
    run_git(repo, "checkout", "-q", "feature")
    moved = commit_file(repo, "docs/added.md", "added\n")
    run_git(repo, "checkout", "-q", "main")
    run_git(repo, "update-ref", "refs/heads/treefork/job1/domains/docs", moved)
    await manager.sync_worktree(domain.path, manager.repo.head)
    assert (domain.path / "docs/added.md").read_text() == "added\n"
    assert run_git(domain.path, "status", "--porcelain") == ""


async def test_home_inside_the_repository_is_refused(repo: Path) -> None:
    info = await open_repository(repo)
    with pytest.raises(RepositoryError):
        WorktreeManager(info, "job1", repo / ".treefork")


async def test_open_repository_errors_are_clear(tmp_path: Path, repo: Path) -> None:
    with pytest.raises(RepositoryError, match="not a git repository"):
        await open_repository(tmp_path)
    with pytest.raises(RepositoryError, match="no such directory"):
        await open_repository(tmp_path / "missing")
    with pytest.raises(RepositoryError, match="no branch named"):
        await open_repository(repo, "nope")
    run_git(repo, "checkout", "-q", "--detach")
    with pytest.raises(RepositoryError, match="detached"):
        await open_repository(repo)


async def test_worktrees_listed_by_git_include_the_pool(repo: Path, treefork_home: Path) -> None:
    manager = await _manager(repo, treefork_home)
    pool = AgentPool(manager, "docs")
    worktree = await pool.acquire("treefork/job1/agents/docs/0000", manager.repo.head)
    assert worktree.path in [path.resolve() for path in worktree_paths(repo)]
    await pool.release(worktree, reusable=True)
    await pool.close()
    assert worktree.path not in [path.resolve() for path in worktree_paths(repo)]
