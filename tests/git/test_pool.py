"""The agent worktree pool: reuse leaves nothing behind but kept folders; creation hooks."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from gitutil import commit_file, run_git, treefork_branches, worktree_paths

from treefork.errors import WorktreeError
from treefork.git import pool as pool_module
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


@pytest.mark.parametrize("reader", ["object database", "git log"])
async def test_agent_changes_name_commits_files_and_uncommitted_paths(
    repo: Path, treefork_home: Path, reader: str
) -> None:
    manager = await _manager(repo, treefork_home)
    if reader == "git log":
        manager._objects = None  # as for a repository gitdb cannot read
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


async def test_agent_changes_of_a_history_with_merges_come_from_git(
    repo: Path, treefork_home: Path
) -> None:
    manager = await _manager(repo, treefork_home)
    base = manager.repo.head
    side = commit_file(repo, "side.txt", "from main\n")
    worktree = await AgentPool(manager, "docs").acquire(_branch("0000-a"), base)
    mine = commit_file(worktree.path, "mine.txt", "mine\n")
    run_git(worktree.path, "-c", "user.name=T", "-c", "user.email=t@e", "merge", "-q", side)

    changes = await manager.agent_changes(worktree.path, base)

    assert set(changes.commits) == {mine, side, changes.head}
    assert changes.files == ("mine.txt", "side.txt")
    assert changes.on_base  # the merged commit grew from the base too


async def _agent_leaves(
    manager: WorktreeManager, pool: AgentPool, name: str, base: str, leftovers: dict[str, str]
) -> Path:
    """An agent that commits one file and leaves ``leftovers`` (ignored files) behind, and
    goes back to the pool the way the map phase sends it back."""
    worktree = await pool.acquire(_branch(name), base)
    commit_file(worktree.path, f"docs/{name}.md", "agent\n", name)
    for path, text in leftovers.items():
        (worktree.path / path).parent.mkdir(parents=True, exist_ok=True)
        (worktree.path / path).write_text(text)
    changes = await manager.agent_changes(worktree.path, base)
    await pool.release(worktree, reusable=not changes.dirty, ignored=changes.ignored)
    return worktree.path


@pytest.mark.parametrize(
    ("leftovers", "cleaned"),
    [
        ({}, False),
        ({"node_modules/dep.js": "warm\n", "src/.venv/bin/python": "warm\n"}, False),
        ({"build/out.o": "stale\n", "node_modules/dep.js": "warm\n"}, True),
        ({"run.log": "stale\n"}, True),
    ],
)
async def test_reuse_cleans_only_when_ignored_files_other_than_kept_folders_were_left(
    repo: Path,
    treefork_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    leftovers: dict[str, str],
    cleaned: bool,
) -> None:
    commit_file(repo, ".gitignore", "node_modules/\n.venv/\nbuild/\n*.log\n")
    manager = await _manager(repo, treefork_home)
    base = manager.repo.head
    pool = AgentPool(manager, "docs")
    path = await _agent_leaves(manager, pool, "0000-a", base, leftovers)
    calls: list[tuple[str, ...]] = []
    real_git = pool_module.git

    async def recording_git(*args: str, **kwargs: object) -> object:
        calls.append(args)
        return await real_git(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pool_module, "git", recording_git)

    reused = await pool.acquire(_branch("0001-b"), base)

    assert reused.path == path
    assert any(call[0] == "clean" for call in calls) == cleaned
    kept = {name for name in leftovers if "node_modules" in name or ".venv" in name}
    for name in leftovers:
        assert (reused.path / name).exists() == (name in kept)
    assert not (reused.path / "docs" / "0000-a.md").exists()
    assert run_git(reused.path, "status", "--porcelain", "--untracked-files=all") == ""


async def test_shrink_removes_idle_worktrees_and_leaves_the_ones_in_use(
    repo: Path, treefork_home: Path
) -> None:
    manager = await _manager(repo, treefork_home)
    base = manager.repo.head
    pool = AgentPool(manager, "docs")
    taken = [await pool.acquire(_branch(f"000{index}"), base) for index in range(3)]
    for worktree in taken[:2]:
        await pool.release(worktree, reusable=True)

    await pool.shrink()

    assert not taken[0].path.exists() and not taken[1].path.exists()
    assert taken[2].path.exists()
    assert set(worktree_paths(repo)) == {repo, taken[2].path}
    reused = await pool.acquire(_branch("0009"), base)  # a late retry still gets a worktree
    assert reused.path.exists()
