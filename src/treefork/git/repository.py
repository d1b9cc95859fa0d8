"""The user's repository: opening it, reading its state, and treefork's fallback identity."""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

import anyio
import git as gitpython
from git.refs.symbolic import SymbolicReference

from treefork.errors import RepositoryError, name_some
from treefork.git.command import git, git_ok

__all__ = (
    "FALLBACK_IDENTITY",
    "RepositoryInfo",
    "check_checkout_ready",
    "commit_identity_env",
    "git_version",
    "open_repository",
)

FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "treefork",
    "GIT_AUTHOR_EMAIL": "treefork@localhost",
    "GIT_COMMITTER_NAME": "treefork",
    "GIT_COMMITTER_EMAIL": "treefork@localhost",
}
"""Identity of treefork's own merge commits when the repository has none configured."""


@dataclass(frozen=True, slots=True)
class RepositoryInfo:
    """The user's repository as treefork found it."""

    root: Path
    """Top of the user's working tree."""
    common_dir: Path
    """The shared ``.git`` directory (the same for every worktree of the repository)."""
    branch: str
    """The branch work starts from and merges back into."""
    head: str
    """The commit of ``branch`` when the repository was opened."""


def _open_sync(path: Path, base_branch: str | None) -> RepositoryInfo:
    path = path.expanduser()
    if not path.exists():
        raise RepositoryError(path, "no such directory")
    try:
        # Only ref files are read below (no object lookups), so GitPython starts no git
        # process here that could inherit the caller's GIT_DIR.
        repo = gitpython.Repo(path)
    except gitpython.InvalidGitRepositoryError as error:
        raise RepositoryError(path, "not a git repository") from error
    except gitpython.NoSuchPathError as error:
        raise RepositoryError(path, "no such directory") from error
    with repo:
        if repo.bare:
            raise RepositoryError(path, "bare repository: treefork needs a working tree")
        root = Path(repo.working_tree_dir or path).resolve()
        if root != path.resolve():
            raise RepositoryError(path, f"not the top of the repository (that is {root})")
        branch = base_branch or _current_branch(repo, path)
        head = _branch_head(repo, path, branch)
        return RepositoryInfo(
            root=root, common_dir=Path(repo.common_dir).resolve(), branch=branch, head=head
        )


_IN_PROGRESS = (
    ("rebase-merge", "a rebase", "git rebase --continue` or `git rebase --abort"),
    ("rebase-apply", "a rebase or `git am`", "git rebase --continue` or `git rebase --abort"),
    ("MERGE_HEAD", "a merge", "git merge --continue` or `git merge --abort"),
    (
        "CHERRY_PICK_HEAD",
        "a cherry-pick",
        "git cherry-pick --continue` or `git cherry-pick --abort",
    ),
    ("REVERT_HEAD", "a revert", "git revert --continue` or `git revert --abort"),
    ("BISECT_LOG", "a bisect", "git bisect reset"),
)
"""Files in the checkout's git directory that say an operation is under way, what it is,
and how to end it."""


def _current_branch(repo: gitpython.Repo, path: Path) -> str:
    if repo.head.is_detached:
        raise RepositoryError(
            path, "HEAD is detached: check out a branch, or pass base_branch explicitly"
        )
    return repo.head.ref.name


def _dereference(repo: gitpython.Repo, ref: str) -> str | None:
    try:
        return str(SymbolicReference.dereference_recursive(repo, ref))
    except (ValueError, OSError):
        return None


def _branch_head(repo: gitpython.Repo, path: Path, branch: str) -> str:
    head = _dereference(repo, f"refs/heads/{branch}")
    if head is not None:
        return head
    if _dereference(repo, "HEAD") is None:
        raise RepositoryError(path, "the repository has no commits yet")
    raise RepositoryError(path, f"no branch named {branch!r}")


async def open_repository(path: str | Path, base_branch: str | None = None) -> RepositoryInfo:
    """Open the user's repository and find the branch to work from.

    Args:
        path: The top of the repository's working tree.
        base_branch: The branch to start from; default the one checked out.

    Raises:
        RepositoryError: Not a directory, not a repository, bare, no commits, detached
            HEAD without ``base_branch``, or no such branch.
    """
    if base_branch is not None and not re.fullmatch(r"[^\s~^:?*\[\\]+", base_branch):
        raise RepositoryError(path, f"invalid branch name {base_branch!r}")
    return await anyio.to_thread.run_sync(_open_sync, Path(path), base_branch)


async def check_checkout_ready(info: RepositoryInfo) -> None:
    """Refuse to start a job on a checkout in the middle of something.

    A merge, rebase, cherry-pick, revert or bisect under way, or unresolved conflicts,
    would make the final merge fail after every agent ran; the job is refused before any.

    Raises:
        RepositoryError: What is under way, and the git command that ends it.
    """
    git_dir = Path((await git("rev-parse", "--absolute-git-dir", cwd=info.root)).stdout.strip())
    for name, what, how in _IN_PROGRESS:
        if await anyio.Path(git_dir / name).exists():
            raise RepositoryError(
                info.root, f"{what} is in progress in the checkout: finish it first (`{how}`)"
            )
    unmerged = await git("ls-files", "--unmerged", "-z", cwd=info.root)
    paths = sorted(
        {entry.split("\t", 1)[1] for entry in unmerged.stdout.split("\0") if "\t" in entry}
    )
    if paths:
        raise RepositoryError(
            info.root,
            f"unresolved conflicts in the checkout ({name_some(paths)}): resolve and commit them "
            "before starting a job",
        )


async def commit_identity_env(cwd: Path) -> dict[str, str]:
    """Environment for treefork's own commits: empty if the repository has an identity."""
    if await git_ok("var", "GIT_COMMITTER_IDENT", cwd=cwd) and await git_ok(
        "var", "GIT_AUTHOR_IDENT", cwd=cwd
    ):
        return {}
    return dict(FALLBACK_IDENTITY)


@functools.cache
def _parse_version(text: str) -> tuple[int, ...]:
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        return (0,)
    return tuple(int(part) for part in match.groups(default="0"))


_versions: dict[str, tuple[int, ...]] = {}


async def git_version(cwd: Path) -> tuple[int, ...]:
    """The git version as a tuple, e.g. (2, 39, 5); asked once per ``PATH``."""
    key = os.environ.get("PATH", "")
    if key not in _versions:
        _versions[key] = _parse_version((await git("--version", cwd=cwd)).stdout)
    return _versions[key]
