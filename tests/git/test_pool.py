"""The agent worktree pool: reuse leaves nothing behind but kept folders; creation hooks."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from gitutil import commit_file, run_git, treefork_branches, worktree_paths

from treefork.errors import WorktreeError
from treefork.git.pool import AgentPool
from treefork.git.repository import open_repository
from treefork.git.worktrees import WorktreeManager


async def _manager(repo: Path, home: Path) -> WorktreeManager:
    return WorktreeManager(await open_repository(repo), "job1", home)


def _files(root: Path) -> set[str]:
    """Every file and folder under ``root`` except git's own."""
    return {
        str(path.relative_to(root))
        for path in root.rglob("*")
        if ".git" not in path.relative_to(root).parts
    }


def _branch(name: str) -> str:
    return f"treefork/job1/agents/docs/{name}"


async def test_reuse_keeps_only_the_kept_ignored_folders(repo: Path, treefork_home: Path) -> None:
    commit_file(repo, ".gitignore", "node_modules/\n.venv/\nbuild/\n*.log\n")
    manager = await _manager(repo, treefork_home)
    base = manager.repo.head
    pool = AgentPool(manager, "docs")
    fresh = await pool.acquire(_branch("0000-a"), base)
    pristine = _files(fresh.path)
    # What one agent leaves behind: commits, untracked and ignored files, empty folders,
    # a warm dependency folder (at the top and deeper down) and a virtualenv.
    commit_file(fresh.path, "docs/index.md", "agent a\n", "agent a")
    (fresh.path / "scratch.txt").write_text("untracked\n")
    (fresh.path / "empty" / "deeper").mkdir(parents=True)
    (fresh.path / "build").mkdir()
    (fresh.path / "build" / "out.o").write_text("ignored\n")
    (fresh.path / "run.log").write_text("ignored\n")
    for folder in ("node_modules", "src/node_modules", ".venv"):
        (fresh.path / folder).mkdir(parents=True)
        (fresh.path / folder / "dep.js").write_text("warm\n")
    await pool.release(fresh, reusable=True)

    reused = await pool.acquire(_branch("0001-b"), base)

    assert reused.path == fresh.path
    assert pool.created == 1
    kept = {
        "node_modules",
        "node_modules/dep.js",
        "src/node_modules",
        "src/node_modules/dep.js",
        ".venv",
        ".venv/dep.js",
    }
    assert _files(reused.path) == pristine | kept
    assert (reused.path / "docs/index.md").read_text() == "line 1\nline 2\nline 3\n"
    assert run_git(reused.path, "rev-parse", "HEAD").strip() == base
    assert run_git(reused.path, "symbolic-ref", "HEAD").strip() == f"refs/heads/{_branch('0001-b')}"
    assert run_git(reused.path, "status", "--porcelain", "--untracked-files=all") == ""


async def test_a_retired_worktree_is_never_handed_out_again(
    repo: Path, treefork_home: Path
) -> None:
    manager = await _manager(repo, treefork_home)
    pool = AgentPool(manager, "docs")
    first = await pool.acquire(_branch("0000-a"), manager.repo.head)
    (first.path / "unsaved.txt").write_text("work in progress\n")
    await pool.release(first, reusable=False)

    second = await pool.acquire(_branch("0001-b"), manager.repo.head)

    assert second.path != first.path
    assert (first.path / "unsaved.txt").read_text() == "work in progress\n"
    await pool.release(second, reusable=True)
    await pool.close()
    assert first.path.resolve() in [path.resolve() for path in worktree_paths(repo)]


async def test_on_create_runs_once_in_each_new_worktree(repo: Path, treefork_home: Path) -> None:
    manager = await _manager(repo, treefork_home)
    created: list[Path] = []

    async def on_create(path: Path) -> None:
        assert (path / "README.md").exists(), "the hook runs after the checkout"
        created.append(path)

    pool = AgentPool(manager, "docs", on_create=on_create)
    base = manager.repo.head
    first = await pool.acquire(_branch("0000-a"), base)
    await pool.release(first, reusable=True)
    again = await pool.acquire(_branch("0001-b"), base)
    other = await pool.acquire(_branch("0002-c"), base)

    assert again.path == first.path
    assert created == [first.path, other.path]
    assert pool.created == 2


async def test_a_failing_on_create_removes_the_new_worktree_and_its_branch(
    repo: Path, treefork_home: Path
) -> None:
    manager = await _manager(repo, treefork_home)

    async def on_create(path: Path) -> None:
        raise WorktreeError(path, "on_worktree_create failed: exit code 3\nnpm ERR! broken")

    pool = AgentPool(manager, "docs", on_create=on_create)
    with pytest.raises(WorktreeError, match="npm ERR! broken"):
        await pool.acquire(_branch("0000-a"), manager.repo.head)

    assert worktree_paths(repo) == [repo]
    assert treefork_branches(repo) == []
    assert not any((pool.folder).glob("slot-*/*"))


async def test_include_copies_ignored_files_into_every_worktree(
    repo: Path, treefork_home: Path
) -> None:
    commit_file(repo, ".gitignore", ".env\nconfig/*.local\n")
    (repo / ".env").write_text("TOKEN=secret\n")
    (repo / "config").mkdir()
    (repo / "config" / "db.local").write_text("host=localhost\n")
    manager = await _manager(repo, treefork_home)
    pool = AgentPool(manager, "docs", include=[".env", "config/*.local"])
    base = manager.repo.head

    first = await pool.acquire(_branch("0000-a"), base)
    (first.path / ".env").write_text("TOKEN=changed by the agent\n")
    await pool.release(first, reusable=True)
    reused = await pool.acquire(_branch("0001-b"), base)

    assert (reused.path / ".env").read_text() == "TOKEN=secret\n"
    assert (reused.path / "config" / "db.local").read_text() == "host=localhost\n"
    assert run_git(reused.path, "status", "--porcelain") == ""


async def test_close_deletes_merged_branches_and_keeps_the_others(
    repo: Path, treefork_home: Path
) -> None:
    manager = await _manager(repo, treefork_home)
    run_git(repo, "branch", "target")
    pool = AgentPool(manager, "docs", merged_into="target")
    base = manager.repo.head
    merged = await pool.acquire(_branch("0000-a"), base)
    merged_head = commit_file(merged.path, "a.txt", "a\n")
    run_git(repo, "update-ref", "refs/heads/target", merged_head)
    await pool.release(merged, reusable=True)
    pool.merged(_branch("0000-a"), merged_head)
    unmerged = await pool.acquire(_branch("0001-b"), base)
    unmerged_head = commit_file(unmerged.path, "b.txt", "b\n")
    await pool.release(unmerged, reusable=True)
    pool.merged(_branch("0001-b"), unmerged_head)  # reported merged, but it is not
    run_git(repo, "branch", _branch("0002-c"), merged_head)
    pool.merged(_branch("0002-c"), base)  # moved since it was reported

    await pool.close()

    assert treefork_branches(repo) == [_branch("0001-b"), _branch("0002-c")]
    assert worktree_paths(repo) == [repo]


async def test_close_keeps_a_worktree_with_uncommitted_tracked_changes(
    repo: Path, treefork_home: Path
) -> None:
    manager = await _manager(repo, treefork_home)
    pool = AgentPool(manager, "docs")
    worktree = await pool.acquire(_branch("0000-a"), manager.repo.head)
    await pool.release(worktree, reusable=True)
    (worktree.path / "README.md").write_text("edited after release\n")

    await pool.close()

    assert (worktree.path / "README.md").read_text() == "edited after release\n"


async def test_concurrent_acquires_create_one_worktree_each(
    repo: Path, treefork_home: Path
) -> None:
    manager = await _manager(repo, treefork_home)
    pool = AgentPool(manager, "docs")
    paths: list[Path] = []

    async def take(index: int) -> None:
        paths.append((await pool.acquire(_branch(f"{index:04d}"), manager.repo.head)).path)

    async with anyio.create_task_group() as group:
        for index in range(6):
            group.start_soon(take, index)
    assert len(set(paths)) == 6
    assert pool.created == 6


async def test_agent_changes_name_commits_files_and_uncommitted_paths(
    repo: Path, treefork_home: Path
) -> None:
    manager = await _manager(repo, treefork_home)
    pool = AgentPool(manager, "docs")
    base = manager.repo.head
    worktree = await pool.acquire(_branch("0000-a"), base)

    unchanged = await manager.agent_changes(worktree.path, base)
    first = commit_file(worktree.path, "new.txt", "new\n")
    one = await manager.agent_changes(worktree.path, base)
    commit_file(worktree.path, "gone.txt", "briefly\n")
    run_git(worktree.path, "rm", "-q", "gone.txt")
    run_git(worktree.path, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-qm", "rm")
    last = commit_file(worktree.path, "docs/index.md", "changed\n")
    (worktree.path / "scratch").mkdir()
    (worktree.path / "scratch" / "notes.txt").write_text("left\n")
    several = await manager.agent_changes(worktree.path, base)

    assert (unchanged.head, unchanged.commits, unchanged.files, unchanged.dirty) == (
        base,
        (),
        (),
        (),
    )
    assert (one.head, one.commits, one.files, one.dirty) == (first, (first,), ("new.txt",), ())
    assert several.head == last
    assert len(several.commits) == 4
    assert several.commits[0] == first and several.commits[-1] == last
    assert several.files == ("docs/index.md", "new.txt")
    assert several.dirty == ("scratch/",)
