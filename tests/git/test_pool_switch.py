"""Switching a reused worktree (``read-tree -m -u``) gives exactly a fresh checkout of the base.

Whatever an agent committed (new, changed and deleted files, a file turned into a folder and
back, modes, symbolic links) and whichever base the next agent starts from, the reused
worktree holds the same files, modes and links as a new worktree checked out at that base,
with nothing to commit, on the new branch.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import anyio
import pytest
from gitutil import commit_file, make_repo, run_git
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from treefork.errors import WorktreeError
from treefork.git import pool as pool_module
from treefork.git.pool import AgentPool
from treefork.git.repository import open_repository
from treefork.git.worktrees import Worktree, WorktreeManager

PATHS = ("a.txt", "docs/index.md", "docs/new.md", "src", "src/app.py", "x/y/z.txt", "README.md")

operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.sampled_from(PATHS), st.sampled_from(["one\n", "two\n"])),
        st.tuples(st.just("delete"), st.sampled_from(PATHS), st.just("")),
        st.tuples(st.just("chmod"), st.sampled_from(PATHS), st.just("")),
        st.tuples(st.just("link"), st.sampled_from(PATHS), st.sampled_from(["a.txt", "gone"])),
        st.tuples(st.just("ignored"), st.just("build/out.o"), st.just("object\n")),
        st.tuples(
            st.just("mkdir"), st.sampled_from(["docs/empty/deeper", "x/y", "e"]), st.just("")
        ),
    ),
    max_size=6,
)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _make_room(root: Path, name: str) -> Path:
    """``root / name``, with whatever stands in the way (a file where a folder goes) removed."""
    target = root / name
    for parent in reversed(target.relative_to(root).parents):
        if parent != Path(".") and ((root / parent).is_symlink() or (root / parent).is_file()):
            _remove(root / parent)
    _remove(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _apply(root: Path, steps: list[tuple[str, str, str]]) -> None:
    for kind, name, value in steps:
        target = root / name
        if kind == "write":
            _make_room(root, name).write_text(value)
        elif kind == "delete":
            _remove(target) if target.is_symlink() or target.exists() else None
        elif kind == "chmod" and target.is_file() and not target.is_symlink():
            target.chmod(target.stat().st_mode ^ stat.S_IXUSR)
        elif kind == "link":
            _make_room(root, name).symlink_to(value)
        elif kind == "ignored":
            _make_room(root, name).write_text(value)
        elif kind == "mkdir":
            _make_room(root, name).mkdir()


def _tree(root: Path) -> dict[str, tuple[str, str]]:
    """Every entry under ``root`` but git's own: its kind, and its content, mode or target."""
    found: dict[str, tuple[str, str]] = {}
    for folder, folders, files in os.walk(root):
        folders[:] = [name for name in folders if name != ".git"]
        for name in folders + files:
            path = Path(folder) / name
            relative = str(path.relative_to(root))
            if name == ".git":
                continue
            if path.is_symlink():
                found[relative] = ("link", os.readlink(path))
            elif path.is_dir():
                found[relative] = ("dir", "")
            else:
                executable = "x" if os.access(path, os.X_OK) else "-"
                found[relative] = (executable, path.read_text())
    return found


async def _agents(workdir: Path, agents: list[tuple[bool, list[tuple[str, str, str]]]]) -> None:
    files = {"a.txt": "a\n", "docs/index.md": "i\n", "src/app.py": "p", ".gitignore": "build/\n"}
    repo = make_repo(workdir / "repo", files)
    first = commit_file(repo, "README.md", "r\n", "readme")
    second = commit_file(repo, "docs/index.md", "changed\n", "second base")
    manager = WorktreeManager(await open_repository(repo), "job1", workdir / "home")
    pool = AgentPool(manager, "docs")
    for number, (later_base, steps) in enumerate(agents):
        base = second if later_base else first
        worktree = await pool.acquire(f"treefork/job1/agents/docs/{number:04d}", base)
        expected = workdir / f"fresh-{number}"
        run_git(repo, "worktree", "add", "-q", "--detach", str(expected), base)
        assert _tree(worktree.path) == _tree(expected)
        assert run_git(worktree.path, "status", "--porcelain", "--untracked-files=all") == ""
        assert run_git(worktree.path, "rev-parse", "HEAD").strip() == base
        assert run_git(worktree.path, "symbolic-ref", "HEAD").strip() == (
            f"refs/heads/treefork/job1/agents/docs/{number:04d}"
        )
        run_git(repo, "worktree", "remove", "--force", str(expected))
        _apply(worktree.path, steps)
        run_git(worktree.path, "add", "-A")
        run_git(worktree.path, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-q",
                "--allow-empty", "-m", f"agent {number}")  # fmt: skip
        changes = await manager.agent_changes(worktree.path, base)
        assert not changes.dirty
        await pool.release(worktree, reusable=True, ignored=changes.ignored)
    assert pool.created == 1


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), operations), min_size=2, max_size=4))
@example([(False, [("write", "x/y/z.txt", "one\n"), ("delete", "x/y/z.txt", "")]), (False, [])])
@example([(False, [("mkdir", "docs/empty/deeper", "")]), (True, [("mkdir", "e", "")]), (False, [])])
def test_a_reused_worktree_equals_a_fresh_checkout_of_its_base(
    agents: list[tuple[bool, list[tuple[str, str, str]]]],
) -> None:
    threshold = pool_module.READ_TREE_FROM
    try:
        # These small repositories are switched with checkout, then with read-tree.
        for pool_module.READ_TREE_FROM in (threshold, 0):
            with tempfile.TemporaryDirectory() as folder:
                anyio.run(_agents, Path(folder), agents)
    finally:
        pool_module.READ_TREE_FROM = threshold


@pytest.fixture
def read_tree_always(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool_module, "READ_TREE_FROM", 0)


def _recording(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real_git = pool_module.git

    async def recording_git(*args: str, **kwargs: object) -> object:
        calls.append(args[0])
        return await real_git(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pool_module, "git", recording_git)
    return calls


async def _after_one_agent(repo: Path, home: Path) -> tuple[AgentPool, str, Worktree]:
    """A pool whose one worktree is back from an agent that committed ``docs/a.md``."""
    manager = WorktreeManager(await open_repository(repo), "job1", home)
    base = manager.repo.head
    pool = AgentPool(manager, "docs")
    first = await pool.acquire("treefork/job1/agents/docs/0000", base)
    commit_file(first.path, "docs/a.md", "agent a\n", "agent a")
    await pool.release(first, reusable=True, ignored=[])  # its index: four files
    return pool, base, first


@pytest.mark.parametrize(
    ("threshold", "commands"), [(5, ["checkout"]), (4, ["update-ref", "symbolic-ref", "read-tree"])]
)
async def test_a_clean_worktree_is_switched_with_read_tree_from_the_threshold_on(
    repo: Path,
    treefork_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    threshold: int,
    commands: list[str],
) -> None:
    pool, base, _ = await _after_one_agent(repo, treefork_home)
    monkeypatch.setattr(pool_module, "READ_TREE_FROM", threshold)
    calls = _recording(monkeypatch)

    again = await pool.acquire("treefork/job1/agents/docs/0001", base)

    assert calls == commands
    assert not (again.path / "docs/a.md").exists()
    assert run_git(again.path, "rev-parse", "HEAD").strip() == base
    assert run_git(again.path, "symbolic-ref", "HEAD").strip().endswith("/0001")
    assert run_git(again.path, "status", "--porcelain", "--untracked-files=all") == ""


@pytest.mark.usefixtures("read_tree_always")
async def test_a_branch_already_at_another_commit_stops_the_switch_and_changes_nothing(
    repo: Path, treefork_home: Path
) -> None:
    pool, base, first = await _after_one_agent(repo, treefork_home)
    taken = run_git(repo, "rev-parse", "treefork/job1/agents/docs/0000").strip()
    run_git(repo, "branch", "treefork/job1/agents/docs/0001", taken)

    with pytest.raises(WorktreeError, match="not at base"):
        await pool.acquire("treefork/job1/agents/docs/0001", base)

    assert run_git(first.path, "symbolic-ref", "HEAD").strip().endswith("/0000")
    assert (first.path / "docs/a.md").exists()
    assert run_git(first.path, "status", "--porcelain", "--untracked-files=all") == ""
    again = await pool.acquire("treefork/job1/agents/docs/0002", base)
    assert again.path == first.path and not (again.path / "docs/a.md").exists()


@pytest.mark.usefixtures("read_tree_always")
async def test_a_switch_read_tree_refuses_falls_back_to_a_full_checkout(
    repo: Path, treefork_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool, base, _ = await _after_one_agent(repo, treefork_home)
    real_git = pool_module.git
    calls: list[str] = []

    async def refusing_read_tree(*args: str, **kwargs: object) -> object:
        calls.append(args[0])
        if args[0] == "read-tree":
            args = ("read-tree", "-m", "-u", "no-such-commit")
        return await real_git(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pool_module, "git", refusing_read_tree)
    again = await pool.acquire("treefork/job1/agents/docs/0001", base)

    assert calls[-2:] == ["read-tree", "checkout"]
    assert not (again.path / "docs/a.md").exists()
    assert run_git(again.path, "rev-parse", "HEAD").strip() == base
    assert run_git(again.path, "status", "--porcelain", "--untracked-files=all") == ""


def test_without_the_checkouts_folders_the_whole_worktree_is_swept(tmp_path: Path) -> None:
    (tmp_path / "src" / "kept.txt").parent.mkdir()
    (tmp_path / "src" / "kept.txt").write_text("x")
    for empty in ("src/a/b", "c", "node_modules/empty", "d/node_modules"):
        (tmp_path / empty).mkdir(parents=True)

    pool_module._remove_empty_folders(tmp_path, ("node_modules",), None, None)

    left = {str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*")}
    assert left == {
        "src",
        "src/kept.txt",
        "node_modules",
        "node_modules/empty",
        "d",
        "d/node_modules",
    }
