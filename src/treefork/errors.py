"""Every exception treefork raises on purpose.

Each class builds its message in ``__init__`` from structured fields, so callers can both
print it and inspect what went wrong. Errors from GitPython and subprocesses are translated
at the boundary (``raise ... from``), never leaked.

::

    TreeforkError
    ├── DefinitionError          invalid domains / steps given to build_graph (lists every problem)
    ├── InputError               invalid graph input (task, repo, job id, resume value)
    ├── WorkflowError            invalid workflow file (lists every problem with file:line:column)
    ├── RepositoryError          the user's repository cannot be used (not a repo, detached, ...)
    ├── GitError                 a git command failed (command, cwd, exit code, stderr)
    │   └── MergeConflictError   a merge would conflict (paths named); nothing was changed
    ├── WorktreeError            a worktree could not be created, reset or removed
    │   └── UnmergedWorkError    refusing to delete a worktree/branch that holds unmerged work
    ├── StepError                a step failed (phase, step, item, exit code, output tail)
    │   ├── StepTimeoutError     a step ran past its timeout; its process group was killed
    │   └── CommitRequiredError  a commit_required step did not move HEAD
    ├── WorkItemError            work items could not be loaded (missing file, bad JSON, ...)
    ├── InterpolationError       a ${...} reference cannot be resolved or safely inserted
    ├── BudgetExceededError      the budget is spent (used internally to stop new agents)
    ├── MergeRefusedError        merge review refused to merge (dirty checkout, failed job, ...)
    ├── MissingExtraError        an optional part is not installed (names the pip command)
    ├── ExecutorError            a remote executor cannot be reached or used (Ray cluster)
    ├── JobError                 a job cannot be found, resumed or is locked by another process
    │   └── JobLockedError       another process holds the job's lock (it is running)
    └── StoreError               the job store cannot be opened (unreadable, newer schema)

    DiskFullError                no space left where treefork writes (store, checkpoints,
                                 worktrees, git objects). Not a TreeforkError on purpose: no
                                 phase turns it into an item's or a domain's failure; the job
                                 stops as it is, and ``treefork resume`` finishes it.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from treefork.core.masking import mask_text

__all__ = (
    "BudgetExceededError",
    "CommitRequiredError",
    "DefinitionError",
    "DiskFullError",
    "ExecutorError",
    "GitError",
    "InputError",
    "InterpolationError",
    "JobError",
    "JobLockedError",
    "MergeConflictError",
    "MergeRefusedError",
    "MissingExtraError",
    "Problem",
    "RepositoryError",
    "StepError",
    "StepTimeoutError",
    "StoreError",
    "TreeforkError",
    "UnmergedWorkError",
    "WorkItemError",
    "WorkflowError",
    "WorktreeError",
    "disk_full_in",
    "name_some",
)


def name_some(names: Sequence[str], limit: int = 5) -> str:
    """``a, b, c and 2 more``: the first ``limit`` names of a list, for a message."""
    shown = ", ".join(names[:limit])
    return f"{shown} and {len(names) - limit} more" if len(names) > limit else shown


class TreeforkError(Exception):
    """Base class of every error treefork raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found while validating a definition or a workflow file."""

    where: str
    """Where the problem is: ``domains[1].map.max_parallel`` or ``flow.yml:12:5``."""
    message: str
    """What is wrong, and where possible how to fix it."""

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _format_problems(header: str, problems: Sequence[Problem]) -> str:
    lines = [f"{header} ({len(problems)} problem{'s' if len(problems) != 1 else ''}):"]
    lines.extend(f"  {problem}" for problem in problems)
    return "\n".join(lines)


class DefinitionError(TreeforkError):
    """Domains or steps given in Python are invalid; lists every problem at once."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__(_format_problems("invalid treefork definition", self.problems))


class InputError(TreeforkError):
    """The graph's input state is invalid (missing task, bad job id, ...)."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"invalid input {key!r}: {reason}")


class WorkflowError(TreeforkError):
    """A workflow file is invalid; lists every problem with its file:line:column."""

    def __init__(self, path: str | Path, problems: Sequence[Problem]) -> None:
        self.path = str(path)
        self.problems = tuple(problems)
        super().__init__(_format_problems(f"invalid workflow {self.path}", self.problems))


class RepositoryError(TreeforkError):
    """The user's repository cannot be used as given."""

    def __init__(self, repo: str | Path, reason: str) -> None:
        self.repo = str(repo)
        self.reason = reason
        super().__init__(f"repository {self.repo}: {reason}")


class GitError(TreeforkError):
    """A git command failed."""

    def __init__(self, args: Sequence[str], cwd: str | Path, returncode: int, stderr: str) -> None:
        self.command = tuple(args)
        self.cwd = str(cwd)
        self.returncode = returncode
        self.stderr = stderr
        detail = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
        super().__init__(
            f"git {' '.join(self.command)} failed in {self.cwd} (exit {returncode}): {detail}"
        )


class MergeConflictError(GitError):
    """Merging would conflict; nothing was changed."""

    def __init__(self, target: str, source: str, paths: Sequence[str], cwd: str | Path) -> None:
        self.target = target
        self.source = source
        self.paths = tuple(paths)
        TreeforkError.__init__(
            self,
            f"merging {source} into {target} conflicts in: {', '.join(self.paths) or '(unknown)'}",
        )
        self.command = ("merge-tree", target, source)
        self.cwd = str(cwd)
        self.returncode = 1
        self.stderr = ""


class WorktreeError(TreeforkError):
    """A worktree could not be created, reset or removed."""

    def __init__(self, worktree: str | Path, reason: str) -> None:
        self.worktree = str(worktree)
        self.reason = reason
        super().__init__(f"worktree {self.worktree}: {reason}")


class UnmergedWorkError(WorktreeError):
    """Refusing to delete a worktree or branch that holds work not merged anywhere."""

    def __init__(self, worktree: str | Path, reason: str) -> None:
        super().__init__(worktree, f"holds unmerged work, not deleted: {reason}")


class StepError(TreeforkError):
    """A step failed."""

    def __init__(
        self,
        *,
        phase: str,
        step: str,
        reason: str,
        item_id: str | None = None,
        domain: str | None = None,
        exit_code: int | None = None,
        output_tail: str = "",
        worktree: str | Path | None = None,
        usage: Any = None,
    ) -> None:
        reason, output_tail = mask_text(reason), mask_text(output_tail)
        self.phase = phase
        self.step = step
        self.reason = reason
        self.item_id = item_id
        self.domain = domain
        self.exit_code = exit_code
        self.output_tail = output_tail
        self.worktree = str(worktree) if worktree is not None else None
        self.usage = usage
        """Tokens and cost spent before the failure (a ``treefork.steps.Usage``), if known."""
        where = [f"phase {phase}"]
        if domain is not None:
            where.insert(0, f"domain {domain}")
        if item_id is not None:
            where.append(f"item {item_id}")
        where.append(f"step {step}")
        super().__init__(f"{', '.join(where)}: {reason}")


class StepTimeoutError(StepError):
    """A step ran past its timeout; its whole process group was killed."""


class CommitRequiredError(StepError):
    """A step marked commit_required finished without moving HEAD."""


class WorkItemError(TreeforkError):
    """Work items could not be loaded or selected."""

    def __init__(self, source: str, reason: str, *, domain: str | None = None) -> None:
        self.source = source
        self.reason = reason
        self.domain = domain
        prefix = f"domain {domain}, phase map, " if domain else ""
        super().__init__(f"{prefix}work items from {source}: {reason}")


class InterpolationError(TreeforkError):
    """A ${...} reference cannot be resolved or safely inserted."""

    def __init__(self, reference: str, reason: str, *, where: str | None = None) -> None:
        self.reference = reference
        self.reason = reason
        self.where = where
        location = f"{where}: " if where else ""
        super().__init__(f"{location}cannot interpolate ${{{reference}}}: {reason}")


class BudgetExceededError(TreeforkError):
    """The budget is spent; no new agent may start."""

    def __init__(self, resource: str, used: float, limit: float) -> None:
        self.resource = resource
        self.used = used
        self.limit = limit
        super().__init__(f"budget for {resource} spent: {used:g} of {limit:g}")


class MergeRefusedError(TreeforkError):
    """Merge review refused to merge into the user's branch; nothing was changed."""

    def __init__(self, target_branch: str, reason: str, paths: Sequence[str] = ()) -> None:
        self.target_branch = target_branch
        self.reason = reason
        self.paths = tuple(paths)
        suffix = f": {', '.join(self.paths)}" if self.paths else ""
        super().__init__(f"not merging into {target_branch}: {reason}{suffix}")


class MissingExtraError(TreeforkError, ImportError):
    """A feature needs an optional part of treefork that is not installed."""

    def __init__(self, feature: str, extra: str, modules: Sequence[str]) -> None:
        self.feature = feature
        self.extra = extra
        self.modules = tuple(modules)
        super().__init__(
            f"{feature} needs treefork's {extra!r} extra ({', '.join(self.modules)} is "
            f"missing): pip install 'treefork[{extra}]'"
        )


class ExecutorError(TreeforkError):
    """A remote executor cannot be reached or used."""

    def __init__(self, executor: str, reason: str) -> None:
        self.executor = executor
        self.reason = reason
        super().__init__(f"{executor}: {reason}")


class JobError(TreeforkError):
    """A job cannot be found, resumed, or is held by another process."""

    def __init__(self, job_id: str, reason: str) -> None:
        self.job_id = job_id
        self.reason = reason
        super().__init__(f"job {job_id}: {reason}")


class JobLockedError(JobError):
    """Another process holds the job's lock: the job is running there."""

    def __init__(self, job_id: str, lock_path: str | Path, holder_pid: int | None) -> None:
        self.lock_path = str(lock_path)
        self.holder_pid = holder_pid
        holder = f"process {holder_pid}" if holder_pid else "another process"
        super().__init__(
            job_id, f"is running in {holder} (lock {self.lock_path}); nothing was changed"
        )


class StoreError(TreeforkError):
    """The job store cannot be opened or read."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"job store {self.path}: {reason}")


MIN_FREE_BYTES = 64 * 2**20
"""The space treefork asks for when a disk fills: enough for its store, checkpoints and a
few worktrees of a small repository."""

_FULL_MESSAGES = ("No space left on device", "Disk quota exceeded", "database or disk is full")
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"  # pragma: no cover


class DiskFullError(Exception):
    """There is no space left where treefork was writing.

    Attributes:
        path: What was being written (a database, a worktree, a file).
        needed: Bytes treefork asks to be freed there.
    """

    def __init__(self, path: str | Path, *, needed: int = MIN_FREE_BYTES) -> None:
        self.path = Path(path)
        self.needed = needed
        super().__init__(self.describe(None))

    def describe(self, free: int | None) -> str:
        """The message, with the space ``free`` there now when the caller has measured it
        (raising never touches the disk: the error is made wherever writing failed)."""
        shown = "" if free is None else f"{_size(free)} free; "
        needed = _size(self.needed)
        return f"no space left on device at {self.path} ({shown}free at least {needed} there)"


def _is_full(error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno in _FULL_ERRNOS:
        return True
    sqlite3 = sys.modules.get("sqlite3")  # never imported here: no SQLite error without it
    if sqlite3 is not None and isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        return code == sqlite3.SQLITE_FULL or any(text in str(error) for text in _FULL_MESSAGES)
    if isinstance(error, GitError | StoreError):
        said = f"{error}\n{getattr(error, 'stderr', '')}"
        return any(text in said for text in _FULL_MESSAGES)
    return False


def _path_of(error: BaseException, default: Path) -> Path:
    if isinstance(error, OSError) and error.filename:
        return Path(os.fsdecode(error.filename))
    if isinstance(error, GitError):
        return Path(error.cwd)
    if isinstance(error, StoreError):
        return Path(error.path)
    return default


def disk_full_in(error: BaseException, *, default: Path) -> DiskFullError | None:
    """The full disk behind ``error``, if one is: found in its causes, contexts and groups.

    Args:
        error: Whatever a job ended with.
        default: The path to name when the error does not say what was written (SQLite's
            "database or disk is full" from a checkpointer names no file): the treefork home.
    """
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, DiskFullError):
            return current
        if _is_full(current):
            return DiskFullError(_path_of(current, default))
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None
