"""The in-process object database answers exactly as git does, or hands the question back."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from gitutil import commit_file, make_repo, run_git

from treefork.git.objects import (
    CommitIdentity,
    ObjectDatabase,
    ObjectMissingError,
    commit_identity,
    object_database,
)
from treefork.git.repository import FALLBACK_IDENTITY


def _database(repo: Path) -> ObjectDatabase:
    database = ObjectDatabase(repo / ".git" / "objects")
    assert database is not None
    return database


def _rev(repo: Path, what: str) -> str:
    return run_git(repo, "rev-parse", what).strip()


def _git_diff(repo: Path, old: str, new: str) -> list[str]:
    listing = run_git(repo, "diff", "--name-only", "-z", "--no-renames", old, new)
    return sorted(name for name in listing.split("\0") if name)


def test_a_commit_written_in_process_is_the_object_commit_tree_writes(repo: Path) -> None:
    first = _rev(repo, "HEAD")
    second = commit_file(repo, "other.txt", "other\n")
    tree = _rev(repo, "HEAD^{tree}")
    identity = CommitIdentity(
        "Ann Example <ann@example.com>",
        "Bob Example <bob@example.com>",
        "1700000000 +0130",
        "1700000100 -0500",
    )
    message = "treefork: merge agent 0001-a into docs\n\nWith a body."

    ours = _database(repo).write_commit(tree, [second, first], message, identity)

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
        "GIT_AUTHOR_NAME": "Ann Example",
        "GIT_AUTHOR_EMAIL": "ann@example.com",
        "GIT_AUTHOR_DATE": "1700000000 +0130",
        "GIT_COMMITTER_NAME": "Bob Example",
        "GIT_COMMITTER_EMAIL": "bob@example.com",
        "GIT_COMMITTER_DATE": "1700000100 -0500",
    }
    theirs = subprocess.run(
        ["git", "commit-tree", tree, "-p", second, "-p", first, "-m", message],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert ours == theirs
    assert run_git(repo, "cat-file", "-t", ours).strip() == "commit"
    run_git(repo, "fsck", "--no-dangling")


async def test_the_identity_is_the_one_git_would_write(repo: Path) -> None:
    identity = await commit_identity(repo, {})
    assert identity.author == "Test Author <author@example.com>"
    assert identity.author_date is None  # dated when each commit is made

    fixed = await commit_identity(repo, {"GIT_AUTHOR_DATE": "1700000000 +0000"})
    assert fixed.author_date == "1700000000 +0000"
    assert fixed.lines()[0] == "Test Author <author@example.com> 1700000000 +0000"

    bare = make_repo(repo.parent / "no-identity", identity=False)
    fallback = await commit_identity(bare, FALLBACK_IDENTITY)
    assert fallback.author == "treefork <treefork@localhost>"


@pytest.mark.parametrize(
    "change",
    [
        "edit a file",
        "add a folder",
        "remove a folder",
        "file becomes folder",
        "folder becomes file",
        "deep edits",
        "mode change",
        "submodule entry",
    ],
)
def test_changed_paths_are_the_ones_git_diff_names(repo: Path, change: str) -> None:
    old = _rev(repo, "HEAD")
    if change == "edit a file":
        commit_file(repo, "docs/index.md", "changed\n")
    elif change == "add a folder":
        commit_file(repo, "new/deeper/file.txt", "x\n")
        commit_file(repo, "new/other.txt", "y\n")
    elif change == "remove a folder":
        run_git(repo, "rm", "-q", "-r", "docs")
        run_git(repo, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-q", "-m", "rm")
    elif change == "file becomes folder":
        run_git(repo, "rm", "-q", "README.md")
        commit_file(repo, "README.md/inside.txt", "now a folder\n")
    elif change == "folder becomes file":
        run_git(repo, "rm", "-q", "-r", "docs")
        commit_file(repo, "docs", "now a file\n")
    elif change == "deep edits":
        for index in range(5):
            commit_file(repo, f"a/b/c{index % 2}/f{index}.txt", f"{index}\n")
        commit_file(repo, "src/app.py", "print('changed')\n")
    elif change == "mode change":
        (repo / "src" / "app.py").chmod(0o755)
        run_git(repo, "add", "src/app.py")
        run_git(repo, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-q", "-m", "x")
    else:
        run_git(
            repo, "update-index", "--add", "--cacheinfo", f"160000,{old},vendor/lib"
        )
        run_git(repo, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-q", "-m", "sub")
    new = _rev(repo, "HEAD")
    database = _database(repo)

    found = database.changed_paths(database.commit(old).tree, database.commit(new).tree)

    assert found == _git_diff(repo, old, new)
    assert found  # every change above changes something


def test_a_line_of_commits_is_read_like_git_log(repo: Path) -> None:
    base = _rev(repo, "HEAD")
    commits = [commit_file(repo, f"f{index}.txt", f"{index}\n") for index in range(4)]

    line = _database(repo).line_of_commits(commits[-1], base)

    assert line == commits
    assert line == run_git(repo, "rev-list", "--reverse", f"{base}..HEAD").split()


def test_a_history_that_is_not_a_line_is_left_to_git(repo: Path) -> None:
    base = _rev(repo, "HEAD")
    run_git(repo, "checkout", "-q", "-b", "side")
    commit_file(repo, "side.txt", "side\n")
    run_git(repo, "checkout", "-q", "main")
    commit_file(repo, "main.txt", "main\n")
    run_git(repo, "-c", "user.name=T", "-c", "user.email=t@e", "merge", "-q", "--no-ff", "side")
    database = _database(repo)

    assert database.line_of_commits(_rev(repo, "HEAD"), base) is None
    # A base that is not on the line (another branch's commit) is not searched for long.
    unrelated = _rev(repo, "side")
    assert database.line_of_commits(_rev(repo, "HEAD~1"), unrelated, limit=8) is None


def test_objects_packed_after_the_database_opened_are_still_found(repo: Path) -> None:
    database = _database(repo)
    head = commit_file(repo, "late.txt", "written after\n")
    database.commit(_rev(repo, "HEAD~1"))  # the database has looked at the packs once
    run_git(repo, "gc", "-q", "--prune=now")
    assert not list((repo / ".git" / "objects").glob(f"{head[:2]}/{head[2:]}"))

    assert database.commit(head).parents == (_rev(repo, "HEAD~1"),)


def test_an_object_nobody_has_is_reported_missing(repo: Path) -> None:
    with pytest.raises(ObjectMissingError):
        _database(repo).commit("0" * 40)
    with pytest.raises(ObjectMissingError):  # a tree asked for as a commit
        _database(repo).commit(_rev(repo, "HEAD^{tree}"))


def test_sha256_repositories_are_left_to_git(tmp_path: Path) -> None:
    path = tmp_path / "sha256"
    path.mkdir()
    run_git(path, "init", "-q", "--object-format=sha256")

    assert object_database(path / ".git") is None
    assert object_database(make_repo(tmp_path / "sha1") / ".git") is not None


def test_the_folders_of_a_commit_are_the_ones_git_lists(repo: Path) -> None:
    commit_file(repo, "a/b/c/deep.txt", "deep\n")
    commit_file(repo, "a/side.txt", "side\n")
    submodule = _rev(repo, "HEAD")  # any commit id will do for a gitlink entry
    run_git(repo, "update-index", "--add", "--cacheinfo", f"160000,{submodule},vendor/lib")
    run_git(repo, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-q", "-m", "submodule")
    listed = run_git(repo, "ls-tree", "-r", "-d", "--name-only", "HEAD").split()

    folders = _database(repo).folders(_rev(repo, "HEAD"))

    assert folders == {"", *listed, "vendor/lib"}  # ls-tree -d leaves out gitlinks
    assert {"a/b/c", "vendor"} <= folders
