"""Helpers for tests: real git repositories in temporary folders, and snapshots of them."""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
}


def run_git(repo: Path, *args: str, check: bool = True) -> str:
    """Run git in ``repo`` and return stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    result = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def make_repo(path: Path, files: dict[str, str] | None = None, *, identity: bool = True) -> Path:
    """A repository on branch main with one commit of ``files``."""
    path.mkdir(parents=True, exist_ok=True)
    run_git(path, "init", "-q", "-b", "main")
    if identity:
        run_git(path, "config", "user.name", "Test Author")
        run_git(path, "config", "user.email", "author@example.com")
    for name, content in (files or {"README.md": "# sample\n"}).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    run_git(path, "add", "-A")
    env_commit = ["-c", "user.name=Test Author", "-c", "user.email=author@example.com"]
    run_git(path, *env_commit, "commit", "-q", "-m", "initial")
    return path


def commit_file(repo: Path, name: str, content: str, message: str = "change") -> str:
    """Write, add and commit one file; returns the new HEAD."""
    target = repo / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    run_git(repo, "add", name)
    run_git(repo, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-q", "-m", message)
    return run_git(repo, "rev-parse", "HEAD").strip()


@dataclass(frozen=True)
class RepoSnapshot:
    """Everything a user would notice changing in their repository."""

    head: str
    symbolic_head: str
    index: str
    status: str
    files: tuple[tuple[str, str], ...]
    refs: tuple[str, ...]
    stash: str


def snapshot(repo: Path) -> RepoSnapshot:
    """HEAD, index, working tree, refs outside treefork/*, and stash of a repository."""
    files = []
    for path in sorted(repo.rglob("*")):
        if ".git" in path.relative_to(repo).parts or not path.is_file():
            continue
        files.append((str(path.relative_to(repo)), hashlib.sha1(path.read_bytes()).hexdigest()))
    refs = tuple(
        line
        for line in run_git(repo, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
        if not line.startswith("refs/heads/treefork/")
    )
    return RepoSnapshot(
        head=run_git(repo, "rev-parse", "HEAD").strip(),
        symbolic_head=run_git(repo, "symbolic-ref", "-q", "HEAD", check=False).strip(),
        index=run_git(repo, "ls-files", "-s"),
        status=run_git(repo, "status", "--porcelain", "--untracked-files=all"),
        files=tuple(files),
        refs=refs,
        stash=run_git(repo, "stash", "list"),
    )


def treefork_branches(repo: Path) -> list[str]:
    """Branches under treefork/."""
    out = run_git(repo, "for-each-ref", "--format=%(refname:strip=2)", "refs/heads/treefork/")
    return [line for line in out.splitlines() if line]


def worktree_paths(repo: Path) -> list[Path]:
    """Every worktree git knows, the main one first."""
    out = run_git(repo, "worktree", "list", "--porcelain")
    return [
        Path(line.split(" ", 1)[1]) for line in out.splitlines() if line.startswith("worktree ")
    ]
