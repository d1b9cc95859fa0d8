"""Worktree hygiene, the shell: find treefork's worktrees, folders and branches, and remove
what :func:`treefork.core.hygiene.plan_gc` says.

Repositories are found from the job store (every job's repository) and from the worktree
folders under the treefork home (a worktree's ``.git`` file names its repository), so a
worktree of a job the store never heard of is found too.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from treefork.core.hygiene import (
    BranchFacts,
    FolderFacts,
    GcAction,
    JobFacts,
    WorktreeFacts,
    plan_gc,
)
from treefork.errors import GitError, TreeforkError
from treefork.git.command import git
from treefork.git.locks import RepositoryLock
from treefork.git.merge import changes_contained
from treefork.store.jobstore import JobStore
from treefork.store.lock import JobLock

__all__ = (
    "GcReport",
    "Inventory",
    "RepositoryScan",
    "collect_garbage",
    "describe",
    "take_inventory",
)


@dataclass
class RepositoryScan:
    """One repository's treefork worktrees and branches."""

    root: Path
    common_dir: Path
    worktrees: list[WorktreeFacts] = field(default_factory=list)
    branches: list[BranchFacts] = field(default_factory=list)


@dataclass
class Inventory:
    """Everything treefork made that ``worktree list`` shows and ``worktree gc`` considers."""

    repositories: list[RepositoryScan]
    folders: list[FolderFacts]
    jobs: dict[str, JobFacts]


@dataclass
class GcReport:
    """What ``worktree gc`` did (or, in a dry run, would do)."""

    actions: list[GcAction]
    failed: list[tuple[GcAction, str]] = field(default_factory=list)
    dry_run: bool = False


def _job_of_path(path: Path, worktrees_root: Path) -> str:
    # <home>/worktrees/<repo-key>/<job>/...
    parts = path.relative_to(worktrees_root).parts
    return parts[1] if len(parts) > 1 else ""


def _job_of_branch(name: str) -> str:
    parts = name.split("/")
    return parts[1] if len(parts) > 2 else ""


def _common_dir_of_folder(folder: Path) -> Path | None:
    """The repository a worktree folder belongs to, from its ``.git`` file."""
    try:
        text = (folder / ".git").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    gitdir = Path(text.removeprefix("gitdir:").strip())
    try:
        relative = (gitdir / "commondir").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    common = (gitdir / relative).resolve()
    return common if common.is_dir() else None


def _walk_folders(worktrees_root: Path) -> Iterator[tuple[Path, bool]]:
    """Candidate folders under the root: worktree-like ones (a ``.git`` entry: True), and
    folders holding files or nothing at all (False). Folders holding only folders are
    walked into."""
    if not worktrees_root.is_dir():
        return
    for current, directories, files in os.walk(worktrees_root):
        here = Path(current)
        if ".git" in files or ".git" in directories:
            directories.clear()
            yield here, True
        elif files or (not directories and here != worktrees_root):
            directories.clear()
            yield here, False


def _root_of(common_dir: Path) -> Path:
    return common_dir.parent if common_dir.name == ".git" else common_dir


async def _parse_worktrees(root: Path, worktrees_root: Path) -> list[tuple[Path, str | None, bool]]:
    listing = await git("worktree", "list", "--porcelain", cwd=root)
    found: list[tuple[Path, str | None, bool]] = []
    for block in listing.stdout.split("\n\n"):
        lines = [line for line in block.splitlines() if line]
        if not lines or not lines[0].startswith("worktree "):
            continue
        path = Path(lines[0].removeprefix("worktree "))  # git prints it absolute and normalised
        if not path.is_relative_to(worktrees_root):
            continue
        branch = next(
            (
                line.removeprefix("branch refs/heads/")
                for line in lines
                if line.startswith("branch ")
            ),
            None,
        )
        found.append((path, branch, await anyio.Path(path).is_dir()))
    return found


async def _dirty(path: Path) -> tuple[str, ...]:
    try:
        status = await git("status", "--porcelain", "-z", "--untracked-files=all", cwd=path)
    except GitError as error:
        return (f"(git status failed: {error.stderr.strip() or error})",)
    return tuple(entry[3:] for entry in status.stdout.split("\0") if len(entry) > 3)


async def _contained_branches(root: Path, names: Sequence[str]) -> set[str]:
    """treefork branches whose tip one of the user's branches contains, or whose changes
    one of them holds already (a job merged with ``history: squash``)."""
    user = await git("for-each-ref", "--format=%(refname)", "refs/heads/", cwd=root)
    mine = [ref for ref in user.lines if not ref.startswith("refs/heads/treefork/")]
    contained: set[str] = set()
    for ref in mine:
        merged = await git(
            "for-each-ref",
            f"--merged={ref}",
            "--format=%(refname:strip=2)",
            "refs/heads/treefork/",
            cwd=root,
        )
        contained.update(merged.lines)
    for name in names:
        if name not in contained:
            for ref in mine:
                if await changes_contained(root, f"refs/heads/{name}", ref):
                    contained.add(name)
                    break
    return contained


async def _scan_repository(root: Path, worktrees_root: Path) -> RepositoryScan:
    common = Path(
        (
            await git("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=root)
        ).stdout.strip()
    )
    scan = RepositoryScan(root, Path(await anyio.Path(common).resolve()))
    for path, branch, exists in await _parse_worktrees(root, worktrees_root):
        dirty = await _dirty(path) if exists else ()
        scan.worktrees.append(
            WorktreeFacts(str(path), _job_of_path(path, worktrees_root), branch, exists, dirty)
        )
    names = await git(
        "for-each-ref", "--format=%(refname:strip=2)", "refs/heads/treefork/", cwd=root
    )
    contained = await _contained_branches(root, names.lines) if names.lines else set()
    for name in names.lines:
        scan.branches.append(BranchFacts(name, _job_of_branch(name), name in contained))
    return scan


def _job_facts(store: JobStore, home: Path, job_ids: set[str]) -> dict[str, JobFacts]:
    facts: dict[str, JobFacts] = {}
    now = time.time()
    for job_id in job_ids:
        job = store.job(job_id)
        if job is None:
            continue
        changed = job["finished_at"] or job["updated_at"] or job["created_at"]
        facts[job_id] = JobFacts(
            status=job["status"],
            merge_status=job["merge_status"],
            discarded=bool(job["discarded"]),
            locked=JobLock(home, job_id).is_held_elsewhere(),
            age=now - float(changed),
        )
    return facts


def _folder_facts(folder: Path, worktrees_root: Path, now: float) -> FolderFacts:
    has_files = any(path.is_file() or path.is_symlink() for path in folder.rglob("*"))
    age = now - folder.stat().st_mtime
    return FolderFacts(str(folder), _job_of_path(folder, worktrees_root), has_files, age)


def _discover(worktrees_root: Path) -> list[tuple[Path, Path | None]]:
    """Candidate folders under the root, with the repository of each worktree-like one."""
    found: list[tuple[Path, Path | None]] = []
    for folder, is_worktree in _walk_folders(worktrees_root):
        common_dir = _common_dir_of_folder(folder) if is_worktree else None
        if common_dir is not None and not _root_of(common_dir).is_dir():
            common_dir = None
        found.append((folder, common_dir))
    return found


async def _common_dir(root: Path) -> Path | None:
    if not await anyio.Path(root).is_dir():
        return None
    try:
        found = await git("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=root)
    except GitError:
        return None
    return Path(await anyio.Path(found.stdout.strip()).resolve())


async def take_inventory(store: JobStore, home: Path) -> Inventory:
    """Find every repository, worktree, folder and branch treefork made under this home."""
    worktrees_root = (home / "worktrees").resolve()
    roots: dict[Path, Path] = {}  # common dir -> root
    for job in await anyio.to_thread.run_sync(store.jobs):
        common_dir = await _common_dir(Path(job["repo"])) if job["repo"] else None
        if common_dir is not None:
            roots.setdefault(common_dir, Path(job["repo"]))
    candidates = await anyio.to_thread.run_sync(_discover, worktrees_root)
    for _, common_dir in candidates:
        if common_dir is not None:
            roots.setdefault(common_dir, _root_of(common_dir))
    scans = [await _scan_repository(root, worktrees_root) for root in roots.values()]
    registered = {Path(w.path) for scan in scans for w in scan.worktrees}
    now = time.time()
    folders = [
        await anyio.to_thread.run_sync(_folder_facts, folder, worktrees_root, now)
        for folder, _ in candidates
        if folder not in registered
    ]
    job_ids = {w.job_id for s in scans for w in s.worktrees} | {
        b.job_id for s in scans for b in s.branches
    }
    job_ids |= {f.job_id for f in folders}
    jobs = await anyio.to_thread.run_sync(_job_facts, store, home, job_ids)
    return Inventory(scans, folders, jobs)


async def _perform(
    action: GcAction, scan: RepositoryScan | None, home: Path, store: JobStore
) -> None:
    if action.kind == "remove_folder":
        await anyio.to_thread.run_sync(shutil.rmtree, action.target)
        return
    assert scan is not None
    root = scan.root
    # The lock every job on this repository takes around worktree and branch changes.
    async with RepositoryLock(scan.common_dir, home).hold():
        if action.kind == "prune":
            await git("worktree", "prune", cwd=root)
        elif action.kind == "remove_worktree":
            await git("worktree", "remove", "--force", "--force", action.target, cwd=root)
        elif action.kind == "delete_branch":
            await git("update-ref", "-d", f"refs/heads/{action.target}", cwd=root)
    kind = "branch" if action.kind == "delete_branch" else "worktree"
    await anyio.to_thread.run_sync(store.resource_removed, kind, action.target)


def _remove_empty_folders(worktrees_root: Path) -> None:
    if not worktrees_root.is_dir():
        return
    for folder in sorted(worktrees_root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


async def collect_garbage(
    store: JobStore,
    home: Path,
    *,
    dry_run: bool = False,
    force: bool = False,
    older_than: float | None = None,
) -> GcReport:
    """Remove the worktrees, folders and branches that :func:`plan_gc` decides on.

    Args:
        store: The home's job store.
        home: The treefork home.
        dry_run: Only say what would be done, and why.
        force: Also remove uncommitted work and unmerged branches (never of running jobs
            or jobs awaiting merge).
        older_than: Only jobs and folders at least this many seconds old.
    """
    inventory = await take_inventory(store, home)
    report = GcReport([], dry_run=dry_run)
    for scan in inventory.repositories:
        actions = plan_gc(
            inventory.jobs, scan.worktrees, [], scan.branches, force=force, older_than=older_than
        )
        report.actions.extend(await _run(actions, scan, home, store, report, dry_run=dry_run))
    folder_actions = plan_gc(
        inventory.jobs, [], inventory.folders, [], force=force, older_than=older_than
    )
    report.actions.extend(await _run(folder_actions, None, home, store, report, dry_run=dry_run))
    if not dry_run:
        await anyio.to_thread.run_sync(_remove_empty_folders, (home / "worktrees").resolve())
    return report


async def _run(
    actions: Sequence[GcAction],
    scan: RepositoryScan | None,
    home: Path,
    store: JobStore,
    report: GcReport,
    *,
    dry_run: bool,
) -> list[GcAction]:
    pruned = False
    done: list[GcAction] = []
    for action in actions:
        done.append(action)
        if dry_run or action.kind == "keep" or (action.kind == "prune" and pruned):
            continue
        try:
            await _perform(action, scan, home, store)
        except (TreeforkError, OSError) as error:
            report.failed.append((action, str(error)))
        pruned = pruned or action.kind == "prune"
    return done


def describe(action: GcAction, *, dry_run: bool) -> dict[str, Any]:
    """One action as a JSON-compatible dict."""
    return {
        "action": action.kind,
        "what": action.what,
        "target": action.target,
        "job_id": action.job_id,
        "reason": action.reason,
        "dry_run": dry_run,
    }
