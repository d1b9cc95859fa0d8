"""One map agent run on a worker node: the part of a remote executor that does the work.

Nothing here knows of Ray: the executor calls :func:`run_agent_on_node` on the node with an
:class:`AgentTask` and a way to get the base commit's bundle, and gets an
:class:`AgentOutcome` back. On the node, in its own treefork home::

    <home>/node/<repo-key>/clone.git      bare clone, cached between agents and jobs
    <home>/node/<repo-key>/slots/<n>      agent worktrees of that clone, reused
    <home>/node/<repo-key>/slots/<n>.lock held (flock) by the agent using the slot

The clone fetches a domain's base commit once, from the bundle the coordinator put in the
cluster's object store (or from a shared remote); an agent on a node that has it fetches
nothing. The agent works in a worktree of the clone exactly as it would locally: the same
steps, environment, hooks (shipped from the user's repository), identity and commit rules.
Its commits come back as a bundle of ``base..agent``; its worktree is switched back to a
detached clean state for the next agent. A worktree whose agent left uncommitted work is
retired as it is, for inspection, and never reused.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from treefork.core.masking import register_secrets
from treefork.errors import TreeforkError, disk_full_in
from treefork.git.bundles import bundle_range, fetch_bundle
from treefork.git.command import git, git_ok
from treefork.git.worktrees import AgentChanges, commit_all, read_agent_changes
from treefork.home import free_space, treefork_home
from treefork.runners.process import kill_tagged
from treefork.runners.steps import StepContext, run_steps
from treefork.steps import Shell, Step, Usage

__all__ = (
    "BASE_BUNDLE_REF",
    "AgentOutcome",
    "AgentTask",
    "node_folder",
    "run_agent_on_node",
)

BASE_BUNDLE_REF = "refs/treefork/bundles/{commit}"
"""The ref a base bundle carries its commit under."""
_BASES = "refs/treefork/bases"
"""Where the clone keeps every base commit it fetched (so that gc never drops one)."""
SLOT_TAG = "TREEFORK_NODE_SLOT"
"""In the environment of every command an agent runs on a node: its worktree. Processes a
killed agent left behind are found by it, and stopped, before the worktree is used again."""
_KEEP = ("node_modules", ".venv", "target")
"""Ignored folders kept warm when a slot is reused (as in local agent worktrees)."""


@dataclass(frozen=True)
class AgentTask:
    """Everything a node needs to run one attempt of one map agent."""

    job_id: str
    domain: str
    repo_key: str
    """The user's repository, as a folder name (one clone per repository on a node)."""
    base_commit: str
    item_id: str
    item_index: int
    item: Any
    attempt: int
    branch: str | None
    """The attempt's branch (None: a read-only agent, detached at the base)."""
    steps: tuple[Step, ...]
    variables: dict[str, Any]
    env: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    """Seconds the whole agent may take (``agent_timeout``)."""
    auto_commit: bool = True
    commit_message: str = "treefork: changes the agent left uncommitted"
    claude_command: Sequence[str] | None = None
    include: Mapping[str, bytes] = field(default_factory=dict)
    """Ignored files copied from the user's checkout (``worktree_include``), by path."""
    hooks: Mapping[str, bytes] = field(default_factory=dict)
    """The user's repository's hooks, by name."""
    identity: Mapping[str, str] = field(default_factory=dict)
    """``user.name`` and ``user.email`` of the user's repository, when it sets them."""
    on_worktree_create: str | None = None
    remote_url: str | None = None
    """A shared remote to fetch the base commit from, instead of the bundle."""
    secrets: tuple[str, ...] = ()
    """Values masked in the outcome (they are in ``env`` as they are)."""
    workflow: str | None = None
    """The workflow's name (``${workflow.name}``)."""


@dataclass
class AgentOutcome:
    """What an attempt did on its node."""

    ok: bool
    error: str | None
    output_tail: str
    usage: Usage
    node: str
    """Where it ran (Ray's node id, else the host name)."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """The progress events its steps emitted, in order (replayed by the coordinator)."""
    head: str | None = None
    commits: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    dirty: tuple[str, ...] = ()
    on_base: bool = False
    bundle: bytes | None = None
    """``base..branch`` when the agent committed."""
    worktree: str | None = None
    """The worktree on the node (kept there when the agent left uncommitted work)."""
    fetched_base: bool = False
    """The node fetched the base commit for this agent (it did not have it)."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Where the time went: ``base``, ``worktree``, ``steps``, ``bundle``."""
    started_at: float = 0.0
    """When the node started the attempt (``time.time()`` on the node)."""
    finished_at: float = 0.0
    """When it was done, its bundle made."""

    def changes(self) -> AgentChanges:
        """The agent's changes as a local agent's are read."""
        return AgentChanges(
            self.head, self.commits, self.files, self.dirty, on_base=self.on_base
        )


def node_folder(home: Path, repo_key: str) -> Path:
    """The node's folder for one repository (its clone and slots)."""
    return home / "node" / repo_key


def run_agent_on_node(
    task: AgentTask, base_bundle: Callable[[], bytes], *, node: str | None = None
) -> AgentOutcome:
    """Run one agent attempt here (blocking: this is the body of a cluster task).

    Args:
        task: The attempt.
        base_bundle: Returns the bundle of the base commit; called only when this node's
            clone lacks the commit.
        node: The name results give for this node (default: the host name).

    Failures of the agent, and of the node (a full disk, git refusing), are reported in the
    outcome, never raised.
    """
    name = node or socket.gethostname()
    register_secrets(task.secrets)
    started = time.time()
    outcome = anyio.run(_run, task, base_bundle, name)
    outcome.started_at, outcome.finished_at = started, time.time()
    return outcome


async def _run(task: AgentTask, base_bundle: Callable[[], bytes], node: str) -> AgentOutcome:
    home = await anyio.to_thread.run_sync(treefork_home)
    folder = node_folder(home, task.repo_key)
    seconds: dict[str, float] = {}
    try:
        clock = time.perf_counter()
        clone = await _make_clone(folder)
        fetched = await _ensure_base(clone, folder, task, base_bundle)
        await _sync_repository_settings(clone, folder, task)
        seconds["base"] = time.perf_counter() - clock
        async with _slot(folder) as slot:
            where = _Where(clone, folder, slot, node)
            return await _in_slot(task, where, seconds, fetched=fetched)
    except Exception as error:
        full = disk_full_in(error, default=folder)
        if full is not None:
            said = full.describe(await anyio.to_thread.run_sync(free_space, full.path))
            return _failed(task, node, f"on node {node}: {said}", seconds)
        if isinstance(error, TreeforkError | OSError):
            return _failed(task, node, f"on node {node}: {error}", seconds)
        raise


def _failed(task: AgentTask, node: str, error: str, seconds: dict[str, float]) -> AgentOutcome:
    return AgentOutcome(False, error, "", Usage(), node, seconds=seconds)


# -- the clone -------------------------------------------------------------------------------


async def _make_clone(folder: Path) -> Path:
    """The node's bare clone of the repository, made (empty) on first use."""
    clone = folder / "clone.git"
    head = anyio.Path(clone / "HEAD")
    if await head.is_file():
        return clone
    await anyio.Path(folder).mkdir(parents=True, exist_ok=True)
    async with _clone_lock(folder):
        if not await head.is_file():
            # Made aside and renamed: a killed agent never leaves a half-made clone.
            partial = folder / f"clone.git.{os.getpid()}"
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(partial, ignore_errors=True))
            await git("init", "-q", "--bare", str(partial), cwd=folder)
            await anyio.Path(partial).rename(clone)
    return clone


@contextlib.asynccontextmanager
async def _clone_lock(folder: Path) -> AsyncIterator[None]:
    handle = await anyio.to_thread.run_sync(lambda: (folder / "clone.lock").open("a"))
    try:
        await anyio.to_thread.run_sync(fcntl.flock, handle, fcntl.LOCK_EX)
        yield
    finally:
        handle.close()  # closing releases the lock


async def _has_commit(clone: Path, commit: str) -> bool:
    return await git_ok("cat-file", "-e", f"{commit}^{{commit}}", cwd=clone)


async def _ensure_base(
    clone: Path, folder: Path, task: AgentTask, base_bundle: Callable[[], bytes]
) -> bool:
    """Fetch the base commit into the clone unless it has it; whether it fetched."""
    commit = task.base_commit
    if await _has_commit(clone, commit):
        return False
    async with _clone_lock(folder):
        if await _has_commit(clone, commit):
            return False
        kept = f"{_BASES}/{commit}"
        if task.remote_url:
            await git(
                "fetch", "-q", "--no-tags", "--no-write-fetch-head", task.remote_url,
                f"+{kept}:{kept}",
                cwd=clone,
            )  # fmt: skip
        else:
            data = await anyio.to_thread.run_sync(base_bundle)
            ref = BASE_BUNDLE_REF.format(commit=commit)
            await fetch_bundle(clone, data, ref=ref, into=kept, scratch=folder / "tmp")
    return True


async def _sync_repository_settings(clone: Path, folder: Path, task: AgentTask) -> None:
    """Give the clone the user's repository's hooks and identity (written when they differ)."""
    hooks = clone / "hooks"
    wanted = dict(task.hooks)

    def differs() -> bool:
        present = {
            path.name
            for path in (hooks.iterdir() if hooks.is_dir() else ())
            if not path.name.endswith(".sample")
        }
        if present != set(wanted):
            return True
        return any((hooks / name).read_bytes() != data for name, data in wanted.items())

    listed = await git("config", "--get-regexp", r"^user\.(name|email)$", cwd=clone, check=False)
    current = dict(line.partition(" ")[::2] for line in listed.stdout.splitlines())
    identity_differs = any(current.get(key, "") != value for key, value in task.identity.items())
    if not identity_differs and not await anyio.to_thread.run_sync(differs):
        return
    async with _clone_lock(folder):
        for key, value in task.identity.items():
            await git("config", key, value, cwd=clone)

        def write_hooks() -> None:
            hooks.mkdir(exist_ok=True)
            for path in hooks.iterdir():
                if not path.name.endswith(".sample") and path.name not in wanted:
                    path.unlink()
            for name, data in wanted.items():
                target = hooks / name
                if not target.is_file() or target.read_bytes() != data:
                    target.write_bytes(data)
                target.chmod(0o755)

        await anyio.to_thread.run_sync(write_hooks)


# -- slots ---------------------------------------------------------------------------------


@dataclass
class _Slot:
    path: Path
    new: bool
    retire: bool = False


@contextlib.asynccontextmanager
async def _slot(folder: Path) -> AsyncIterator[_Slot]:
    """An agent worktree of the clone held by this agent alone (made when none is free)."""
    slots = folder / "slots"
    handle, path = await anyio.to_thread.run_sync(_take_slot, slots)
    slot = _Slot(path, new=not (path / ".git").exists())
    try:
        yield slot
    finally:
        if slot.retire:
            await anyio.to_thread.run_sync((slots / f"{path.name}.retired").touch)
        handle.close()


def _take_slot(slots: Path) -> tuple[Any, Path]:
    slots.mkdir(parents=True, exist_ok=True)
    number = 0
    while True:
        lock = slots / f"{number}.lock"
        if not (slots / f"{number}.retired").exists():
            handle = lock.open("a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                handle.close()
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            else:
                if not (slots / f"{number}.retired").exists():
                    return handle, slots / str(number)
                handle.close()
        number += 1


async def _switch(clone: Path, folder: Path, slot: _Slot, task: AgentTask) -> None:
    """Check the base commit out in the slot, clean, on the attempt's new branch."""
    path, base = slot.path, task.base_commit
    # An agent whose worker was killed may have left commands running in this worktree.
    await anyio.to_thread.run_sync(kill_tagged, SLOT_TAG, str(path))
    if not slot.new and not await git_ok("rev-parse", "--git-dir", cwd=path):
        await anyio.to_thread.run_sync(shutil.rmtree, path)  # a slot a killed agent half-made
        slot.new = True
    if slot.new:
        async with _clone_lock(folder):
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(path, ignore_errors=True))
            await git("worktree", "prune", cwd=clone)
            await git("worktree", "add", "-q", "--detach", str(path), base, cwd=clone)
    else:
        # One checkout onto the attempt's new branch (or detached, for a read-only agent).
        target = ["-B", task.branch, base] if task.branch is not None else ["--detach", base]
        await git("checkout", "-q", "-f", *target, cwd=path)
        excluded = [option for name in _KEEP for option in ("-e", name)]
        await git("clean", "-ffdxq", *excluded, cwd=path)
    if slot.new and task.branch is not None:
        await git("checkout", "-q", "-B", task.branch, cwd=path)

    def copy_included() -> None:
        for relative, data in task.include.items():
            target = (path / relative).resolve()
            if not target.is_relative_to(path.resolve()):
                continue  # never outside the worktree
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    await anyio.to_thread.run_sync(copy_included)


@dataclass(frozen=True)
class _Where:
    clone: Path
    folder: Path
    slot: _Slot
    node: str


async def _in_slot(
    task: AgentTask, where: _Where, seconds: dict[str, float], *, fetched: bool
) -> AgentOutcome:
    clone, folder, slot, node = where.clone, where.folder, where.slot, where.node
    clock = time.perf_counter()
    await _switch(clone, folder, slot, task)
    events: list[dict[str, Any]] = []
    path = slot.path
    if slot.new and task.on_worktree_create:
        hook = await run_steps(
            [Shell(task.on_worktree_create, name="on_worktree_create")],
            _context(
                task, path, "on_worktree_create", events.append, variables=dict(task.variables)
            ),
        )
        if not hook.ok:
            slot.retire = True
            said = f"on node {node}: on_worktree_create failed: {hook.error}"
            return AgentOutcome(False, said, hook.output_tail, hook.usage, node, events)
    seconds["worktree"] = time.perf_counter() - clock
    clock = time.perf_counter()
    context = _context(task, path, "map", events.append, variables=dict(task.variables))
    outcome = await run_steps(task.steps, context)
    seconds["steps"] = time.perf_counter() - clock
    clock = time.perf_counter()
    base = task.base_commit
    changes = await read_agent_changes(path, base)
    error: str | None = str(outcome.error) if outcome.error else None
    if not outcome.ok and error is None:
        error = "failed"
    read_only = task.branch is None
    if outcome.ok and changes.dirty and task.auto_commit and not read_only:
        try:
            await commit_all(path, task.commit_message)
        except TreeforkError as refused:
            error = f"auto_commit failed: {refused}"
        changes = await read_agent_changes(path, base)
    bundle = None
    if changes.commits and task.branch is not None and not changes.dirty:
        bundle = await bundle_range(path, task.branch, base, scratch=folder / "tmp")
    seconds["bundle"] = time.perf_counter() - clock
    if changes.dirty:
        slot.retire = True  # kept as it is, with its branch
    elif task.branch is not None:
        # Parked detached at the agent's last commit (its index and files untouched), its
        # branch gone.
        await git("update-ref", "--no-deref", "HEAD", changes.head or base, cwd=path)
        await git("update-ref", "-d", f"refs/heads/{task.branch}", cwd=path)
    return AgentOutcome(
        ok=outcome.ok and error is None,
        error=error,
        output_tail=outcome.output_tail,
        usage=outcome.usage,
        node=node,
        events=events,
        head=changes.head,
        commits=changes.commits,
        files=changes.files,
        dirty=changes.dirty,
        on_base=changes.on_base,
        bundle=bundle,
        worktree=str(path),
        fetched_base=fetched,
        seconds=seconds,
    )


def _context(
    task: AgentTask,
    path: Path,
    phase: str,
    emit: Callable[[dict[str, Any]], None],
    *,
    variables: dict[str, Any],
) -> StepContext:
    deadline = anyio.current_time() + task.timeout if task.timeout else None
    return StepContext(
        phase=phase,
        domain=task.domain,
        job_id=task.job_id,
        worktree=path,
        variables=variables,
        env={**task.env, SLOT_TAG: str(path)},
        item=task.item if phase == "map" else None,
        item_id=task.item_id if phase == "map" else None,
        item_index=task.item_index if phase == "map" else None,
        deadline=deadline if phase == "map" else None,
        allow_commits=task.branch is not None,
        claude_command=task.claude_command,
        emit=emit,
        workflow=task.workflow,
    )
