"""Object-store merges: same trees as porcelain merges, conflicts named, nothing half-done."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from gitutil import commit_file, make_repo, run_git, snapshot, worktree_paths

from treefork.errors import MergeConflictError, MergeRefusedError
from treefork.git.merge import (
    BranchMerger,
    MergeResult,
    merge_into_branch,
    merge_into_checked_out_branch,
)
from treefork.git.objects import object_database


def _branch(repo: Path, name: str, start: str = "main") -> None:
    run_git(repo, "branch", name, start)


def _commit_on(repo: Path, branch: str, name: str, content: str) -> str:
    run_git(repo, "checkout", "-q", branch)
    head = commit_file(repo, name, content, f"{branch}: {name}")
    run_git(repo, "checkout", "-q", "main")
    return head


async def test_object_store_merge_gives_the_same_tree_as_a_porcelain_merge(repo: Path) -> None:
    _branch(repo, "target")
    _branch(repo, "source")
    _commit_on(repo, "target", "docs/index.md", "line 1 changed\nline 2\nline 3\n")
    _commit_on(repo, "source", "docs/index.md", "line 1\nline 2\nline 3 changed\n")
    source = _commit_on(repo, "source", "new.txt", "new\n")
    _branch(repo, "porcelain", "target")

    result = await merge_into_branch(repo, "target", source, "merge source")

    run_git(repo, "checkout", "-q", "porcelain")
    run_git(
        repo,
        "-c",
        "user.name=T",
        "-c",
        "user.email=t@e",
        "merge",
        "-q",
        "--no-ff",
        "-m",
        "m",
        "source",
    )
    run_git(repo, "checkout", "-q", "main")
    assert result.merged
    assert run_git(repo, "rev-parse", f"{result.commit}^{{tree}}") == run_git(
        repo, "rev-parse", "porcelain^{tree}"
    )
    parents = run_git(repo, "rev-list", "--parents", "-n1", "target").split()
    assert parents[2] == source


async def test_conflict_names_the_paths_and_leaves_the_target_branch_unchanged(repo: Path) -> None:
    _branch(repo, "target")
    _branch(repo, "source")
    before = _commit_on(repo, "target", "docs/index.md", "mine\n")
    source = _commit_on(repo, "source", "docs/index.md", "theirs\n")
    state = snapshot(repo)

    with pytest.raises(MergeConflictError) as caught:
        await merge_into_branch(repo, "target", source, "merge")

    assert caught.value.paths == ("docs/index.md",)
    assert run_git(repo, "rev-parse", "target").strip() == before
    assert snapshot(repo) == state


async def test_porcelain_merge_detects_the_same_conflict(repo: Path) -> None:
    _branch(repo, "target")
    _branch(repo, "source")
    _commit_on(repo, "target", "docs/index.md", "mine\n")
    source = _commit_on(repo, "source", "docs/index.md", "theirs\n")
    with pytest.raises(MergeConflictError):
        await merge_into_branch(repo, "target", source, "merge")
    run_git(repo, "checkout", "-q", "target")
    porcelain = run_git(repo, "merge", "--no-ff", "source", check=False)
    assert "CONFLICT" in porcelain
    run_git(repo, "merge", "--abort")


async def test_merging_an_ancestor_changes_nothing(repo: Path) -> None:
    _branch(repo, "target")
    head = _commit_on(repo, "target", "a.txt", "a\n")
    result = await merge_into_branch(repo, "target", "main", "merge")
    assert not result.merged
    assert result.commit == head


async def test_merge_into_checked_out_branch_updates_the_checkout(repo: Path) -> None:
    _branch(repo, "session")
    source = _commit_on(repo, "session", "docs/new.md", "new\n")
    result = await merge_into_checked_out_branch(repo, "main", source, "merge job")
    assert result.merged
    assert (repo / "docs/new.md").read_text() == "new\n"
    assert run_git(repo, "status", "--porcelain") == ""
    assert run_git(repo, "rev-parse", "HEAD").strip() == result.commit


async def test_merge_refuses_when_local_changes_touch_merged_files(repo: Path) -> None:
    _branch(repo, "session")
    source = _commit_on(repo, "session", "docs/index.md", "from job\n")
    (repo / "docs/index.md").write_text("local edit\n")
    state = snapshot(repo)

    with pytest.raises(MergeRefusedError) as caught:
        await merge_into_checked_out_branch(repo, "main", source, "merge job")

    assert caught.value.paths == ("docs/index.md",)
    assert snapshot(repo) == state


async def test_merge_keeps_unrelated_local_changes(repo: Path) -> None:
    _branch(repo, "session")
    source = _commit_on(repo, "session", "docs/index.md", "from job\n")
    (repo / "README.md").write_text("local edit\n")
    await merge_into_checked_out_branch(repo, "main", source, "merge job")
    assert (repo / "README.md").read_text() == "local edit\n"
    assert (repo / "docs/index.md").read_text() == "from job\n"


async def test_merge_into_a_branch_not_checked_out_moves_only_the_ref(repo: Path) -> None:
    _branch(repo, "release")
    _branch(repo, "session")
    source = _commit_on(repo, "session", "x.txt", "x\n")
    state = snapshot(repo)
    result = await merge_into_checked_out_branch(repo, "release", source, "merge job")
    assert run_git(repo, "rev-parse", "release").strip() == result.commit
    after = snapshot(repo)
    assert (after.head, after.index, after.files, after.status) == (
        state.head,
        state.index,
        state.files,
        state.status,
    )


async def test_merge_commit_uses_fallback_identity_without_configured_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "EMAIL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    repo = make_repo(tmp_path / "anon", identity=False)
    _branch(repo, "session")
    source = _commit_on(repo, "session", "x.txt", "x\n")
    result = await merge_into_checked_out_branch(repo, "main", source, "merge job")
    author = run_git(repo, "log", "-1", "--format=%an <%ae>", result.commit).strip()
    assert author == "treefork <treefork@localhost>"


# -- the porcelain fallback (git older than 2.38) and the merge queue ---------------------


@pytest.fixture
def porcelain(monkeypatch: pytest.MonkeyPatch) -> None:
    """Merges as on git older than 2.38: ``git merge`` in a private worktree."""

    async def no_merge_tree(cwd: Path) -> bool:
        return False

    monkeypatch.setattr("treefork.git.merge.object_store_merges", no_merge_tree)


def _diverged(repo: Path, *, conflict: bool) -> str:
    """Branches target and source (and a copy of target); returns source's head."""
    _branch(repo, "target")
    _branch(repo, "source")
    _commit_on(repo, "target", "docs/index.md", "line 1 changed\nline 2\nline 3\n")
    _commit_on(repo, "target", "src/app.py", "print('target')\n")
    theirs = "line 1 theirs\n" if conflict else "line 1\nline 2\nline 3 changed\n"
    _commit_on(repo, "source", "docs/index.md", theirs)
    if conflict:
        run_git(repo, "checkout", "-q", "source")
        run_git(repo, "rm", "-q", "src/app.py")
        run_git(repo, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-qm", "rm app")
        run_git(repo, "checkout", "-q", "main")
    source = _commit_on(repo, "source", "new.txt", "new\n")
    _branch(repo, "copy", "target")
    return source


async def test_fallback_merge_gives_the_object_store_merge_tree(
    repo: Path, treefork_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _diverged(repo, conflict=False)
    object_store = await merge_into_branch(repo, "copy", source, "merge")

    async def no_merge_tree(cwd: Path) -> bool:
        return False

    monkeypatch.setattr("treefork.git.merge.object_store_merges", no_merge_tree)
    state = snapshot(repo)
    fallback = await merge_into_branch(repo, "target", source, "merge")

    assert fallback.merged
    assert run_git(repo, "rev-parse", f"{fallback.commit}^{{tree}}") == run_git(
        repo, "rev-parse", f"{object_store.commit}^{{tree}}"
    )
    parents = run_git(repo, "rev-list", "--parents", "-n1", "target").split()
    assert parents[1:] == [run_git(repo, "rev-parse", "copy^1").strip(), source]
    after = snapshot(repo)
    assert (after.head, after.index, after.files, after.status) == (
        state.head,
        state.index,
        state.files,
        state.status,
    )
    assert worktree_paths(repo) == [repo]  # the private worktree is gone


async def test_fallback_conflicts_name_the_same_paths_and_change_nothing(
    repo: Path, treefork_home: Path, porcelain: None
) -> None:
    source = _diverged(repo, conflict=True)
    before = run_git(repo, "rev-parse", "target").strip()
    with pytest.raises(MergeConflictError) as fallback:
        await merge_into_branch(repo, "target", source, "merge")

    assert run_git(repo, "rev-parse", "target").strip() == before
    assert worktree_paths(repo) == [repo]
    assert fallback.value.paths == ("docs/index.md", "src/app.py")


async def test_object_store_conflicts_name_modify_delete_paths_too(repo: Path) -> None:
    source = _diverged(repo, conflict=True)
    with pytest.raises(MergeConflictError) as caught:
        await merge_into_branch(repo, "target", source, "merge")
    assert caught.value.paths == ("docs/index.md", "src/app.py")


async def test_fallback_merge_into_the_checked_out_branch(
    repo: Path, treefork_home: Path, porcelain: None
) -> None:
    _branch(repo, "session")
    source = _commit_on(repo, "session", "docs/new.md", "new\n")
    commit_file(repo, "README.md", "moved on meanwhile\n")
    (repo / "src/app.py").write_text("local edit\n")

    result = await merge_into_checked_out_branch(repo, "main", source, "merge job")

    assert result.merged
    assert run_git(repo, "rev-parse", "HEAD").strip() == result.commit
    assert (repo / "docs/new.md").read_text() == "new\n"
    assert (repo / "src/app.py").read_text() == "local edit\n"
    assert worktree_paths(repo) == [repo]


async def test_fallback_merging_an_ancestor_changes_nothing(
    repo: Path, treefork_home: Path, porcelain: None
) -> None:
    _branch(repo, "target")
    head = _commit_on(repo, "target", "a.txt", "a\n")
    result = await merge_into_branch(repo, "target", "main", "merge")
    assert (result.merged, result.commit) == (False, head)


@pytest.mark.parametrize("way", ["object-store", "commits written in process", "porcelain"])
async def test_the_merge_queue_gives_each_merge_its_own_commit(
    repo: Path, treefork_home: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    if way == "porcelain":

        async def no_merge_tree(cwd: Path) -> bool:
            return False

        monkeypatch.setattr("treefork.git.merge.object_store_merges", no_merge_tree)
    _branch(repo, "target")
    sources = {}
    for name in ("a", "b", "c", "d", "e"):
        _branch(repo, name)
        sources[name] = _commit_on(repo, name, f"{name}.txt", f"{name}\n")
    _branch(repo, "x")
    sources["x"] = _commit_on(repo, "x", "a.txt", "conflicts with a\n")
    objects = object_database(repo / ".git") if way == "commits written in process" else None
    merger = BranchMerger(repo, "target", objects=objects)
    outcomes: dict[str, object] = {}

    async def merge(name: str) -> None:
        try:
            outcomes[name] = await merger.merge(sources[name], f"merge {name}")
        except MergeConflictError as conflict:
            outcomes[name] = conflict

    async with anyio.create_task_group() as group:
        for name in sources:
            group.start_soon(merge, name)
    await merger.close()

    conflicted = [
        name for name, outcome in outcomes.items() if isinstance(outcome, MergeConflictError)
    ]
    assert len(conflicted) == 1 and conflicted[0] in ("a", "x")
    merged = [name for name in sources if name not in conflicted]
    chain = run_git(repo, "rev-list", "--first-parent", "--merges", "target").split()
    assert len(chain) == 5
    second_parents = {run_git(repo, "rev-parse", f"{commit}^2").strip() for commit in chain}
    assert second_parents == {sources[name] for name in merged}
    assert run_git(repo, "rev-parse", "target").strip() in {
        outcome.commit for outcome in outcomes.values() if isinstance(outcome, MergeResult)
    }
    assert worktree_paths(repo) == [repo]
    run_git(repo, "fsck", "--no-dangling")
    author = run_git(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>", "target").strip()
    assert author == "Test Author <author@example.com>|Test Author <author@example.com>"


async def test_the_merge_queue_follows_a_branch_that_moved_underneath(repo: Path) -> None:
    _branch(repo, "target")
    _branch(repo, "a")
    _branch(repo, "b")
    a = _commit_on(repo, "a", "a.txt", "a\n")
    b = _commit_on(repo, "b", "b.txt", "b\n")
    merger = BranchMerger(repo, "target")
    await merger.merge(a, "merge a")
    moved = _commit_on(repo, "target", "elsewhere.txt", "someone else\n")

    result = await merger.merge(b, "merge b")

    assert run_git(repo, "rev-parse", f"{result.commit}^1").strip() == moved
    assert run_git(repo, "show", "target:a.txt") == "a\n"
    assert run_git(repo, "show", "target:elsewhere.txt") == "someone else\n"


def _git_version() -> tuple[int, ...]:
    text = run_git(Path.cwd(), "--version").split()[2]
    return tuple(int(part) for part in text.split(".")[:2])


@pytest.mark.parametrize("way", ["stand-in", "stand-in written in process", "merge-base option"])
async def test_a_known_merge_base_gives_the_same_merges(
    repo: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    if way.startswith("stand-in"):

        async def old_git(cwd: Path) -> tuple[int, ...]:
            return (2, 39)

        monkeypatch.setattr("treefork.git.merge.git_version", old_git)
        monkeypatch.setattr("treefork.git.merge._STAND_IN_AFTER", 0)
    elif _git_version() < (2, 40):
        pytest.skip("merge-tree --merge-base needs git 2.40")
    base = run_git(repo, "rev-parse", "main").strip()
    _branch(repo, "hinted")
    _branch(repo, "searched")
    agents = []
    for index in range(6):
        name = f"agent{index}"
        _branch(repo, name)
        path = "docs/index.md" if index in (2, 4) else f"docs/page{index}.md"
        agents.append(_commit_on(repo, name, path, f"from {name}\n"))
    objects = object_database(repo / ".git") if way.endswith("in process") else None
    hinted = BranchMerger(repo, "hinted", objects=objects)
    searched = BranchMerger(repo, "searched")
    outcomes = []
    for agent in agents:
        pair = []
        for merger, hint in ((hinted, base), (searched, None)):
            try:
                result = await merger.merge(agent, "merge", base=hint)
                pair.append(run_git(repo, "rev-parse", f"{result.commit}^{{tree}}").strip())
            except MergeConflictError as conflict:
                pair.append(conflict.paths)
        outcomes.append(pair)

    assert all(hint == search for hint, search in outcomes)
    assert outcomes[4][0] == ("docs/index.md",)
    assert run_git(repo, "rev-list", "--count", "hinted") == run_git(
        repo, "rev-list", "--count", "searched"
    )
