"""Reading HEAD from git's files gives what ``git rev-parse`` gives, in every ref layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from gitutil import commit_file, run_git

from treefork.git.refs import head_commit, read_head


def _rev_parse(path: Path) -> str | None:
    out = run_git(path, "rev-parse", "--verify", "-q", "HEAD^{commit}", check=False).strip()
    return out or None


async def test_branch_detached_and_packed_heads_match_git(repo: Path, tmp_path: Path) -> None:
    assert read_head(repo) == _rev_parse(repo)
    worktree = tmp_path / "wt"
    run_git(repo, "worktree", "add", "-q", "-b", "feature", str(worktree))
    head = commit_file(worktree, "x.txt", "x\n")
    assert read_head(worktree) == head
    run_git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "feature").exists()
    assert read_head(worktree) == head
    run_git(worktree, "checkout", "-q", "--detach", "main")
    assert read_head(worktree) == _rev_parse(worktree)
    assert await head_commit(worktree) == _rev_parse(worktree)


async def test_an_unborn_or_deleted_branch_has_no_head(repo: Path, tmp_path: Path) -> None:
    worktree = tmp_path / "wt"
    run_git(repo, "worktree", "add", "-q", "-b", "doomed", str(worktree))
    run_git(repo, "update-ref", "-d", "refs/heads/doomed")
    assert read_head(worktree) is None
    assert await head_commit(worktree) is None
    run_git(repo, "checkout", "-q", "--orphan", "fresh")
    assert read_head(repo) is None


async def test_a_symbolic_ref_chain_is_followed(repo: Path) -> None:
    run_git(repo, "symbolic-ref", "refs/heads/alias", "refs/heads/main")
    run_git(repo, "symbolic-ref", "HEAD", "refs/heads/alias")
    assert read_head(repo) == _rev_parse(repo)


async def test_anything_unusual_is_left_to_git(repo: Path, tmp_path: Path) -> None:
    (repo / ".git" / "reftable").mkdir()  # as if the repository used the reftable backend
    with pytest.raises(ValueError, match="directly"):
        read_head(repo)
    (repo / ".git" / "reftable").rmdir()
    (tmp_path / "not-a-repo").mkdir()
    assert await head_commit(tmp_path / "not-a-repo") is None
