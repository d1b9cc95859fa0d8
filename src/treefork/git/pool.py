"""The agent worktree pool of one domain: worktrees reused from agent to agent.

A worktree (a *slot*) is created once, with ``git worktree add --no-checkout`` under the
repository lock and a checkout outside it, then handed from agent to agent: each agent gets
it switched to its own new branch at the base commit (on a large repository with
``git read-tree -m -u``, which writes only the paths that differ; otherwise, and in a new
slot, with a checkout) and cleaned
(``git clean -ffdx``) except for the ignored dependency folders kept warm (``node_modules``,
``.venv``, ``target``). Ignored files a domain lists in ``worktree_include`` (``.env``) are
copied in from the user's checkout each time; its ``on_worktree_create`` command runs once,
in each new slot.

A slot goes back to the pool only when its agent left nothing uncommitted; one that holds
uncommitted work is retired, left as it is. Branches reported merged are deleted together
when the pool closes, in one transaction, and only if their work is reachable from the
branch they were merged into.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import anyio

from treefork.errors import GitError, TreeforkError, WorktreeError
from treefork.git.command import GitResult, git
from treefork.git.objects import ObjectMissingError
from treefork.git.refs import index_entries
from treefork.git.worktrees import Worktree, WorktreeManager

__all__ = ("DEFAULT_KEEP", "READ_TREE_FROM", "AgentPool", "OnCreate")

logger = logging.getLogger("treefork.git")

DEFAULT_KEEP: tuple[str, ...] = ("node_modules", ".venv", "target")
"""Ignored folders kept warm when an agent worktree is reused."""

READ_TREE_FROM = 1000
"""Tracked files from which a clean worktree is switched with ``read-tree`` (three small git
commands) rather than ``checkout`` (one that ``lstat``s every file): on this project's
2-core benchmark machine ``checkout`` cost about 2 ms of CPU on 20 files and 8-19 ms on
2,000, the three small commands about 4.5 ms together."""

OnCreate = Callable[[Path], Awaitable[None]]
"""Runs once in each new agent worktree (after its checkout); raising fails that agent."""


class AgentPool:
    """Reusable agent worktrees for one domain.

    ``acquire`` hands out a worktree with a fresh agent branch at the base commit;
    ``release`` returns it for reuse (its agent's work is all in commits, which the merge
    needs no worktree for) or retires it (it holds uncommitted work). ``close`` removes the
    idle slots and deletes the branches reported merged with :meth:`merged`.

    Args:
        manager: The job's worktree manager.
        domain: The domain the agents work for.
        keep: Ignored folders (any depth) kept warm when a worktree is reused.
        include: Glob patterns of ignored files (``.env``) copied from the user's checkout
            into each agent worktree.
        on_create: Runs once in each new worktree, after its checkout; when it raises, the
            new worktree is removed and the error reaches the agent.
        merged_into: The branch agents merge into; :meth:`close` deletes merged branches
            only if their work is reachable from it.
        on_slot: Told the path of each new worktree once git registered it (to record it).
        create_at_once: Worktrees being created at most at once (see :meth:`acquire`).
    """

    def __init__(
        self,
        manager: WorktreeManager,
        domain: str,
        *,
        keep: Sequence[str] = DEFAULT_KEEP,
        include: Sequence[str] = (),
        on_create: OnCreate | None = None,
        merged_into: str | None = None,
        on_slot: Callable[[Path], Awaitable[None]] | None = None,
        create_at_once: int = 1,
    ) -> None:
        self.manager = manager
        self.domain = domain
        self.keep = tuple(keep)
        self.include = tuple(include)
        self.on_create = on_create
        self.merged_into = merged_into
        self.on_slot = on_slot
        self.folder = manager.root / "agents" / domain
        self._idle: list[Path] = []
        self._pristine: set[Path] = set()
        """Idle slots known to hold no ignored file but the kept folders: no clean needed."""
        self._slots = 0
        self._merged: dict[str, str] = {}
        self.created = 0
        """Slots created with ``git worktree add`` (the rest were reused)."""
        self.create_at_once = create_at_once
        self._creating = 0
        self._waiting = 0
        self._changed: anyio.Event | None = None
        self._handed_out: dict[Path, int] = {}
        """When each slot was last handed to an agent (``time.time_ns``)."""
        self._base_folders: dict[str, frozenset[str] | None] = {}

    async def acquire(self, branch: str, base: str) -> Worktree:
        """A worktree with ``branch`` created at ``base`` and checked out, all else clean.

        An idle worktree is taken if there is one. Otherwise a new one is made, but only
        :attr:`create_at_once` at a time: on a large repository a checkout takes far longer
        than an agent, so a caller waiting for its turn to create takes the first worktree
        an agent hands back instead, and agents start one checkout after another rather
        than all after the last.

        Raises:
            WorktreeError: ``branch`` already exists at another commit (it may hold work),
                or ``on_create`` failed in a new worktree.
        """
        while True:
            if self._idle:
                return await self._reuse(self._idle.pop(), branch, base)
            if self._creating < self.create_at_once:
                break
            if self._changed is None:
                self._changed = anyio.Event()
            self._waiting += 1
            try:
                await self._changed.wait()
            finally:
                self._waiting -= 1
        self._creating += 1
        try:
            return await self._create(branch, base)
        finally:
            self._creating -= 1
            self._notify()

    def _notify(self) -> None:
        """Wake the callers waiting for an idle worktree or for their turn to create one."""
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def _reuse(self, path: Path, branch: str, base: str) -> Worktree:
        pristine = path in self._pristine
        self._pristine.discard(path)
        try:
            await self._switch(path, branch, base, clean=True)
            if not pristine:
                await git(
                    "clean", "-q", "-ffdx", *(f"-e{name}" for name in self.keep), cwd=path
                )  # fmt: skip
            else:  # empty folders, which no git status shows, are all that can be left
                folders = await self._folders(base)
                since = self._handed_out.get(path)
                await anyio.to_thread.run_sync(
                    _remove_empty_folders, path, self.keep, folders, since
                )
            await self._copy_included(path)
        except BaseException:
            self._idle.append(path)  # it was clean, and the switch changed nothing else
            self._notify()
            raise
        self._handed_out[path] = time.time_ns()
        return Worktree(path, branch)

    async def _folders(self, base: str) -> frozenset[str] | None:
        """The folders of a checkout of ``base`` (None when the object database is not
        available to read them)."""
        if base not in self._base_folders:
            objects = await self.manager.objects()
            folders = None
            if objects is not None:
                try:
                    folders = await anyio.to_thread.run_sync(objects.folders, base)
                except (ObjectMissingError, ValueError, OSError) as error:
                    logger.debug("could not list the folders of %s: %s", base, error)
            self._base_folders = {base: folders}  # one base per pool in practice
        return self._base_folders[base]

    async def _create(self, branch: str, base: str) -> Worktree:
        path = await self._new_slot(base)
        try:
            if self.on_slot is not None:
                await self.on_slot(path)
            await self._switch(path, branch, base)
            await self._copy_included(path)
            if self.on_create is not None:
                await self.on_create(path)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._discard(path, branch, base)
            raise
        self._handed_out[path] = time.time_ns()
        return Worktree(path, branch)

    async def _switch(self, path: Path, branch: str, base: str, *, clean: bool = False) -> None:
        """Check out a new ``branch`` at ``base`` in ``path``.

        A new slot gets a full ``git checkout -f``. A slot handed back ``clean`` (its
        agent's ``git status`` found nothing modified, staged or untracked) is switched by
        ``git read-tree -m -u``, which writes only the paths whose blobs differ between its
        index and ``base``: unlike ``checkout``, it does not ``lstat`` every tracked file,
        which on a large repository is most of what a switch costs. It takes three git
        commands (``update-ref``, ``symbolic-ref``, ``read-tree``) where ``checkout`` takes
        one, so it is used from :data:`READ_TREE_FROM` tracked files on.
        """
        if not clean or (index_entries(path) or 0) < READ_TREE_FROM:
            await self._checkout(path, branch, base)
            return
        ref = f"refs/heads/{branch}"
        created = await git(
            "update-ref", "-m", f"branch: Created from {base}", ref, base, "",
            cwd=path, check=False,
        )  # fmt: skip
        if created.returncode != 0:
            await self._existing_at_base(branch, base, path, created)
        try:
            await git("symbolic-ref", "-m", f"treefork: to {branch}", "HEAD", ref, cwd=path)
            switched = await git("read-tree", "-m", "-u", base, cwd=path, check=False)
            if switched.returncode != 0:
                logger.info("read-tree could not switch %s: %s", path, switched.stderr.strip())
                await git("checkout", "-q", "-f", "-B", branch, base, cwd=path)
        except BaseException:
            if created.returncode == 0:  # the branch is new and holds nothing: not left over
                with anyio.CancelScope(shield=True):
                    await git("update-ref", "-d", ref, base, cwd=path, check=False)
            raise

    async def _checkout(self, path: Path, branch: str, base: str) -> None:
        created = await git("checkout", "-q", "-f", "-b", branch, base, cwd=path, check=False)
        if created.returncode == 0:
            return
        await self._existing_at_base(branch, base, path, created)
        await git("checkout", "-q", "-f", "-B", branch, base, cwd=path)

    async def _existing_at_base(
        self, branch: str, base: str, path: Path, failed: GitResult
    ) -> None:
        """After creating ``branch`` failed: go on only if it already exists at ``base``."""
        existing = await self.manager.branch_head(branch)
        if existing is None:
            raise GitError(("branch", branch, base), path, failed.returncode, failed.stderr)
        if existing != base:
            raise WorktreeError(
                branch, f"branch exists at {existing[:12]}, not at base {base[:12]}"
            )

    async def _new_slot(self, base: str) -> Path:
        self.created += 1
        path = await anyio.to_thread.run_sync(self._free_slot_path)
        # Only the registration takes the repository lock (git reads every registered
        # worktree while adding one, so registrations must not overlap); the checkout that
        # follows, the expensive part on a large repository, takes none.
        async with self.manager.lock.hold():
            await git(
                "worktree",
                "add",
                "-q",
                "--no-checkout",
                "--detach",
                str(path),
                base,
                cwd=self.manager.repo.root,
            )
        return path

    def _free_slot_path(self) -> Path:
        """The next ``slot-<n>`` folder name not in use (the folder is not created)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            self._slots += 1
            path = (self.folder / f"slot-{self._slots}").resolve()
            if not path.exists():
                return path

    async def _discard(self, path: Path, branch: str, base: str) -> None:
        """Remove a new worktree whose preparation failed, and its branch if still empty."""
        try:
            await self.manager.remove_worktree(path, force=True)
        except TreeforkError as error:
            logger.warning("Could not remove worktree %s: %s", path, error)
        await git(
            "update-ref",
            "-d",
            f"refs/heads/{branch}",
            base,
            cwd=self.manager.repo.root,
            check=False,
        )

    async def _copy_included(self, path: Path) -> None:
        """Copy ignored files named by ``include`` globs (``.env``) from the user's checkout."""
        if not self.include:
            return
        source = self.manager.repo.root

        def _copy() -> None:
            for pattern in self.include:
                for found in source.glob(pattern):
                    if not found.is_file():
                        continue
                    target = path / found.relative_to(source)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(found, target)

        await anyio.to_thread.run_sync(_copy)

    async def release(
        self, worktree: Worktree, *, reusable: bool, ignored: Sequence[str] | None = None
    ) -> None:
        """Return a worktree to the pool, or retire it.

        Args:
            worktree: What :meth:`acquire` returned.
            reusable: True when nothing is left uncommitted (``git status`` says so): the
                agent's work, if any, is in commits on its branch, which stays. A retired
                worktree is left as it is, with its branch, for inspection and retry.
            ignored: The ignored paths ``git status --ignored`` found in it, if it was
                asked: when they are all inside kept folders, the next agent gets the
                worktree without a ``git clean``.
        """
        if not reusable:
            logger.info(
                "Keeping worktree %s (branch %s) with uncommitted work",
                worktree.path,
                worktree.branch,
            )
            return
        # The branch stays checked out until the next agent switches the worktree to its
        # own: nothing is written here.
        self._idle.append(worktree.path)
        if ignored is not None and all(self._kept(path) for path in ignored):
            self._pristine.add(worktree.path)
        self._notify()

    def _kept(self, path: str) -> bool:
        """Whether an ignored path lies in a kept folder (``git clean`` leaves it)."""
        return any(part in self.keep for part in path.rstrip("/").split("/"))

    async def discard(self, worktree: Worktree) -> None:
        """Remove a handed-out worktree and its branch: its agent was cut off (an interrupt
        asked for input) and runs again from the start, so nothing in it is work."""
        self._pristine.discard(worktree.path)
        self._handed_out.pop(worktree.path, None)
        try:
            await self.manager.remove_worktree(worktree.path, force=True)
            if worktree.branch is not None:
                await self.manager.delete_branch(worktree.branch, merged_into=None, force=True)
        except TreeforkError as error:  # never fatal: the next attempt discards it
            logger.warning("Keeping worktree %s: %s", worktree.path, error)
        self._notify()

    def merged(self, branch: str, commit: str) -> None:
        """Report that ``branch``'s work, up to ``commit``, is merged: :meth:`close` deletes it."""
        self._merged[branch] = commit

    async def shrink(self) -> None:
        """Remove the idle slots no caller is waiting for, now: called once no new agent
        will start, it takes the removals off the end of the job while the last agents run."""
        spare = len(self._idle) - self._waiting
        if spare > 0:
            idle, self._idle = self._idle[:spare], self._idle[spare:]
            await self._remove_slots(idle)

    async def close(self) -> None:
        """Remove idle slots (their agents' work is merged), then delete merged branches."""
        idle, self._idle = self._idle, []
        await self._remove_slots(idle)
        merged, self._merged = self._merged, {}
        if merged and self.merged_into is not None:
            await self.manager.delete_merged_branches(merged, merged_into=self.merged_into)

    async def _remove_slots(self, idle: list[Path]) -> None:
        for path in idle:
            self._pristine.discard(path)
            self._handed_out.pop(path, None)

        async def remove(path: Path) -> None:
            # Untracked leftovers of a merged agent are not work; tracked changes would be
            # (something edited the slot after it came back clean).
            try:
                if await self.manager.dirty_paths(path, untracked=False):
                    logger.warning("Keeping worktree %s: it has uncommitted changes", path)
                    return
                await self.manager.remove_worktree(path, force=True)
            except TreeforkError as error:  # never fatal: the worktree simply stays
                logger.warning("Keeping worktree %s: %s", path, error)

        async with anyio.create_task_group() as group:
            for path in idle:
                group.start_soon(remove, path)


_CLOCK_SLACK_NS = 2_000_000_000
"""How far before a slot was handed out a folder's mtime still counts as changed since:
file times come from the kernel's coarse clock, which lags ``time.time_ns``."""


def _remove_empty_folders(
    root: Path, keep: Sequence[str], folders: frozenset[str] | None, since: int | None
) -> None:
    """Remove the folders under ``root`` that hold no file, however deep (not ``.git``, not
    the kept folders, not those of the checkout).

    With the checkout's ``folders`` and the time the slot was handed out, only the folders
    whose mtime moved since are listed (a folder made, or emptied, changes its parent's
    mtime); otherwise the whole worktree is walked. Either costs far less than ``git clean``.
    """
    if folders is None or since is None:
        _remove_fileless(root, keep, include_top=False)
        return
    cutoff = since - _CLOCK_SLACK_NS
    for relative in folders:
        folder = root / relative if relative else root
        try:
            if os.stat(folder).st_mtime_ns < cutoff:
                continue
            if relative and os.path.lexists(folder / ".git"):
                continue  # a submodule's checkout: its folders are its own
            with os.scandir(folder) as entries:
                strays = [
                    Path(entry.path)
                    for entry in entries
                    if entry.name != ".git"
                    and entry.name not in keep
                    and entry.is_dir(follow_symlinks=False)
                    and (f"{relative}/{entry.name}" if relative else entry.name) not in folders
                ]
        except OSError:
            continue
        for stray in strays:
            _remove_fileless(stray, keep, include_top=True)


def _remove_fileless(top: Path, keep: Sequence[str], *, include_top: bool) -> None:
    """Remove the folders from ``top`` down that hold no file, deepest first."""
    found: list[tuple[str, bool]] = []
    for folder, folders, files in os.walk(top):
        folders[:] = [name for name in folders if name != ".git" and name not in keep]
        found.append((folder, not files))
    for folder, fileless in reversed(found if include_top else found[1:]):
        if fileless:
            with contextlib.suppress(OSError):  # a subfolder still there: it must stay
                os.rmdir(folder)
