"""Merges computed in the object store, with a porcelain fallback for older git.

``git merge-tree --write-tree`` (git 2.38 and later) computes the merged tree without
touching any working tree or index; ``commit-tree`` makes the merge commit and ``update-ref``
moves the branch with a compare-and-swap on its old value. A conflict is detected before
anything changes, so no half-merged state can ever be left behind, and merges into
different branches need no lock.

With git older than 2.38 the same merge commit is made by ``git merge --no-ff`` in a private
detached worktree (:mod:`treefork.git.porcelain`), and the branch is moved by the same
``update-ref``. Neither way touches the worktree where the target branch is checked out,
and neither runs hooks.

:class:`BranchMerger` is the serial merge queue for one branch: it remembers the branch tip
between merges and moves the branch once for all the merges that queued up meanwhile, so
a merge costs two git commands and a share of a third. Given the repository's
:class:`~treefork.git.objects.ObjectDatabase`, it writes the merge commits itself (the same
object ``commit-tree`` writes), and a merge costs one git command and a share of another.

:func:`merge_into_checked_out_branch` brings a finished job into the user's branch: it
computes the merge the same way, checks that the user's uncommitted changes do not overlap
it, then fast-forwards the checkout to the merge commit (git refuses, changing nothing, if
anything would be overwritten).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio

from treefork.errors import GitError, MergeConflictError, MergeRefusedError
from treefork.git.command import git
from treefork.git.locks import RepositoryLock
from treefork.git.objects import CommitIdentity, ObjectDatabase, commit_identity
from treefork.git.porcelain import ScratchMerger
from treefork.git.repository import FALLBACK_IDENTITY, commit_identity_env, git_version

__all__ = (
    "OBJECT_STORE_MERGE_VERSION",
    "BranchMerger",
    "BranchTip",
    "MergeResult",
    "changed_files",
    "changes_contained",
    "merge_into_branch",
    "merge_into_checked_out_branch",
    "merged_tree",
    "object_store_merges",
    "squash_into_branch",
)

OBJECT_STORE_MERGE_VERSION = (2, 38)
"""The first git with ``merge-tree --write-tree``."""
MERGE_BASE_OPTION_VERSION = (2, 40)
"""The first git whose ``merge-tree`` takes ``--merge-base``."""
_STAND_IN_AFTER = 100
"""Merges into one branch after which older git merges against a stand-in (see below),
when git writes the stand-in: searching for the merge base through that many merges costs
about what starting ``git commit-tree`` does. Written in process, a stand-in costs next to
nothing, and every merge with a known base uses one."""

_MOVE_ATTEMPTS = 2


@dataclass(frozen=True, slots=True)
class MergeResult:
    """The outcome of a merge."""

    commit: str
    """The new tip of the target branch (unchanged if there was nothing to merge)."""
    merged: bool
    """False when the source was already contained in the target."""


@dataclass(frozen=True, slots=True)
class BranchTip:
    """A commit a branch points at, with its tree."""

    commit: str
    tree: str


async def object_store_merges(cwd: Path) -> bool:
    """Whether this git computes merges in the object store (2.38 or later)."""
    return await git_version(cwd) >= OBJECT_STORE_MERGE_VERSION


async def changed_files(cwd: Path, old: str, new: str) -> list[str]:
    """Files that differ between two commits (renames shown as the new path)."""
    if old == new:
        return []
    result = await git("diff", "--name-only", "-z", "--no-renames", old, new, cwd=cwd)
    return sorted(path for path in result.stdout.split("\0") if path)


async def merged_tree(
    cwd: Path, target: str, source: str, *, label: str, merge_base: str | None = None
) -> str:
    """The tree of merging ``source`` into ``target``, computed in the object store.

    Args:
        cwd: A checkout of the repository.
        target: The commit merged into.
        source: The commit merged.
        label: The branch named in a conflict.
        merge_base: The merge base, when the caller knows it (git 2.40 and later): git
            then does not search for it.

    Raises:
        MergeConflictError: The merge conflicts; the conflicting paths are named.
    """
    known_base = [f"--merge-base={merge_base}"] if merge_base else []
    result = await git(
        "merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", *known_base,
        target, source,
        cwd=cwd, ok_codes=(0, 1),
    )  # fmt: skip
    fields = result.stdout.split("\0")
    tree = fields[0].strip()
    if result.returncode == 1:
        paths = sorted({field for field in fields[1:] if field})
        raise MergeConflictError(label, source, paths, cwd)
    return tree


async def _read_tip(cwd: Path, branch: str) -> BranchTip:
    result = await git("log", "-1", "--format=%H %T", f"refs/heads/{branch}", "--", cwd=cwd)
    commit, tree = result.stdout.split()
    return BranchTip(commit, tree)


@dataclass(slots=True, eq=False)
class _Request:
    """One commit waiting to be merged, and what became of it."""

    source: str
    message: str
    base: str | None
    result: MergeResult | None = None
    error: Exception | None = None

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None


class BranchMerger:
    """Merges commits into one branch, one at a time: the serial merge queue of a branch.

    Merges that arrive while another is being made are made next, in arrival order, each on
    top of the one before, and the branch is then moved once for all of them: every merge
    still gets its own merge commit (a conflict fails only its own), and each caller
    returns once the branch contains its merge.

    Args:
        cwd: A checkout of the repository; git commands run there.
        branch: The branch merged into.
        scratch: Folder for the private worktree of porcelain merges (git older than 2.38);
            default a new folder under the treefork home.
        lock: The repository lock, held while that worktree is added or removed.
        objects: The repository's object database: merge commits are then written in
            process instead of by ``git commit-tree``.
    """

    def __init__(
        self,
        cwd: Path,
        branch: str,
        *,
        scratch: Path | None = None,
        lock: RepositoryLock | None = None,
        objects: ObjectDatabase | None = None,
    ) -> None:
        self.cwd = cwd
        self.branch = branch
        self.objects = objects
        self._commit_identity: CommitIdentity | None = None
        self._scratch_folder = scratch
        self._lock = lock
        self._queue = anyio.Lock()
        self._pending: list[_Request] = []
        self._tip: BranchTip | None = None
        self._identity: Mapping[str, str] | None = None
        self._object_store: bool | None = None
        self._porcelain: ScratchMerger | None = None
        self._merges = 0

    async def merge(self, source: str, message: str, *, base: str | None = None) -> MergeResult:
        """Merge commit ``source`` into the branch, without touching its worktree.

        Always makes a merge commit (like ``--no-ff``) unless ``source`` is already
        contained.

        Args:
            source: The commit to merge.
            message: The merge commit's message.
            base: The merge base of the branch and ``source``, when the caller knows it
                (agents branch from the domain branch's post-setup commit, and nothing of
                theirs is merged yet). Searching for it walks every merge made into the
                branch, so with thousands of agents the hint keeps each merge's cost flat.

        Raises:
            MergeConflictError: Conflicts; the branch is left exactly as it was.
            GitError: The branch kept moving underneath, or git failed.
        """
        request = _Request(source, message, base)
        self._pending.append(request)
        try:
            async with self._queue:
                if not request.done:
                    # Shielded: the batch holds other callers' merges too, and each git
                    # command in it takes milliseconds.
                    with anyio.CancelScope(shield=True):
                        await self._merge_pending()
        finally:
            if request in self._pending:  # cancelled before its turn: never merged
                self._pending.remove(request)
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    async def _merge_pending(self) -> None:
        """Merge every waiting request, then move the branch once."""
        batch, self._pending = self._pending, []
        for attempt in range(1, _MOVE_ATTEMPTS + 1):
            try:
                start = self._tip or await _read_tip(self.cwd, self.branch)
                tip = await self._merge_batch(start, batch)
                moved = tip == start or await self._move(
                    start, tip, batch[-1].message, last=attempt == _MOVE_ATTEMPTS
                )
            except Exception as error:
                for request in batch:
                    request.result, request.error = None, request.error or error
                self._tip = None
                return
            self._tip = tip if moved else None
            if moved:
                return
            for request in batch:  # the branch moved underneath: merge again on its new tip
                request.result = request.error = None

    async def _merge_batch(self, tip: BranchTip, batch: list[_Request]) -> BranchTip:
        """Make each request's merge commit on top of the previous one; returns the last."""
        for request in batch:
            try:
                merged = await self.merge_commit(
                    tip, request.source, request.message, base=request.base
                )
            except MergeConflictError as conflict:
                request.error = conflict
                continue
            if merged is None:
                request.result = MergeResult(tip.commit, merged=False)
                continue
            request.result = MergeResult(merged.commit, merged=True)
            tip = merged
        return tip

    async def merge_commit(
        self, tip: BranchTip, source: str, message: str, *, base: str | None = None
    ) -> BranchTip | None:
        """The merge commit of ``source`` into ``tip``; None if ``tip`` contains ``source``.

        ``base``, if given, is the merge base of ``tip`` and ``source`` (see :meth:`merge`).

        Raises:
            MergeConflictError: The merge conflicts (nothing was changed).
        """
        if self._object_store is None:
            self._object_store = await object_store_merges(self.cwd)
        if self._object_store:
            return await self._object_store_merge(tip, source, message, base)
        return await self._porcelain_merge(tip, source, message)

    async def close(self) -> None:
        """Remove the private worktree, if porcelain merges made one."""
        porcelain, self._porcelain = self._porcelain, None
        if porcelain is not None:
            await porcelain.close()

    # -- the two ways -------------------------------------------------------------------

    async def _object_store_merge(
        self, tip: BranchTip, source: str, message: str, base: str | None
    ) -> BranchTip | None:
        tree = await self._merged_tree(tip, source, base)
        if tree == tip.tree and await self._contains(tip.commit, source):
            return None
        commit = await self._commit(tree, (tip.commit, source), message)
        self._merges += 1
        return BranchTip(commit, tree)

    async def _commit(self, tree: str, parents: tuple[str, ...], message: str) -> str:
        """Write a commit: in process with an object database, else by git."""
        if self.objects is not None:
            identity = await self._writer_identity()
            return await anyio.to_thread.run_sync(
                self.objects.write_commit, tree, parents, message, identity
            )
        result = await git(
            "commit-tree", tree, *(f"-p{parent}" for parent in parents), "-m", message,
            cwd=self.cwd, env=await self._identity_env(),
        )  # fmt: skip
        return result.stdout.strip()

    async def _writer_identity(self) -> CommitIdentity:
        if self._commit_identity is None:
            try:
                self._commit_identity = await commit_identity(self.cwd, {})
            except GitError:  # no identity configured: treefork's own
                self._commit_identity = await commit_identity(self.cwd, FALLBACK_IDENTITY)
        return self._commit_identity

    async def _merged_tree(self, tip: BranchTip, source: str, base: str | None) -> str:
        label = self.branch
        if base is None or base == tip.commit:
            return await merged_tree(self.cwd, tip.commit, source, label=label)
        if await git_version(self.cwd) >= MERGE_BASE_OPTION_VERSION:
            return await merged_tree(self.cwd, tip.commit, source, label=label, merge_base=base)
        if self.objects is None and self._merges < _STAND_IN_AFTER:
            return await merged_tree(self.cwd, tip.commit, source, label=label)
        # Older git finds the merge base by walking back from the tip through every merge
        # made so far. A stand-in commit with the tip's tree and the base as its only parent
        # merges with the source exactly as the tip does (same three trees), and git finds
        # its merge base at once. The stand-in is left unreachable, for gc to collect.
        stand_in = await self._commit(tip.tree, (base,), f"treefork: stand-in for {tip.commit}")
        return await merged_tree(self.cwd, stand_in, source, label=label)

    async def _porcelain_merge(self, tip: BranchTip, source: str, message: str) -> BranchTip | None:
        if self._porcelain is None:
            self._porcelain = ScratchMerger(
                self.cwd, self.branch, folder=self._scratch_folder, lock=self._lock
            )
        merged = await self._porcelain.merge_commit(
            tip.commit, source, message, env=await self._identity_env()
        )
        return BranchTip(*merged) if merged is not None else None

    # -- helpers ------------------------------------------------------------------------

    async def _contains(self, tip: str, source: str) -> bool:
        result = await git("merge-base", "--is-ancestor", source, tip, cwd=self.cwd, check=False)
        return result.returncode == 0

    async def _identity_env(self) -> Mapping[str, str]:
        if self._identity is None:
            self._identity = await commit_identity_env(self.cwd)
        return self._identity

    async def _move(self, tip: BranchTip, merged: BranchTip, message: str, *, last: bool) -> bool:
        """Point the branch at ``merged`` if it is still at ``tip``; False if it moved."""
        ref = f"refs/heads/{self.branch}"
        reflog = f"treefork: {message.splitlines()[0] if message else 'merge'}"
        result = await git(
            "update-ref", "-m", reflog, ref, merged.commit, tip.commit, cwd=self.cwd, check=False
        )
        if result.returncode == 0:
            return True
        if last:
            raise GitError(
                ("update-ref", ref, merged.commit, tip.commit),
                self.cwd,
                result.returncode,
                result.stderr,
            )
        return False


async def merge_into_branch(
    cwd: Path,
    branch: str,
    source: str,
    message: str,
    *,
    scratch: Path | None = None,
    lock: RepositoryLock | None = None,
) -> MergeResult:
    """Merge commit ``source`` into ``branch`` without touching any worktree.

    Always makes a merge commit (like ``--no-ff``) unless ``source`` is already contained.
    For many merges into one branch, keep one :class:`BranchMerger` instead.

    Raises:
        MergeConflictError: Conflicts; ``branch`` is left exactly as it was.
        GitError: The branch moved while merging (callers serialize merges per branch).
    """
    merger = BranchMerger(cwd, branch, scratch=scratch, lock=lock)
    try:
        return await merger.merge(source, message)
    finally:
        await merger.close()


async def squash_into_branch(cwd: Path, branch: str, source: str, message: str) -> MergeResult:
    """Bring the changes of commit ``source`` into ``branch`` as one commit on top of it.

    The commit's only parent is the branch's tip: ``source`` and its history stay out of
    the branch. Nothing is made when the branch already holds every change of ``source``
    (``merged`` is False), so squashing the same source twice, after a crash for instance,
    adds nothing. Needs git 2.38 (``merge-tree --write-tree``); older git merges instead.

    Raises:
        MergeConflictError: Conflicts; ``branch`` is left exactly as it was.
        GitError: The branch moved while squashing (callers serialize merges per branch).
    """
    if not await object_store_merges(cwd):
        return await merge_into_branch(cwd, branch, source, message)
    tip = await _read_tip(cwd, branch)
    tree = await merged_tree(cwd, tip.commit, source, label=branch)
    if tree == tip.tree:
        return MergeResult(tip.commit, merged=False)
    made = await git(
        "commit-tree", tree, "-p", tip.commit, "-m", message,
        cwd=cwd, env=await commit_identity_env(cwd),
    )  # fmt: skip
    commit = made.stdout.strip()
    reflog = f"treefork: {message.splitlines()[0]}"
    await git("update-ref", "-m", reflog, f"refs/heads/{branch}", commit, tip.commit, cwd=cwd)
    return MergeResult(commit, merged=True)


async def changes_contained(cwd: Path, commit: str, target: str) -> bool:
    """Whether ``target`` already holds every change ``commit`` makes, by content.

    True when merging ``commit`` into ``target`` would leave ``target``'s tree as it is: the
    commit is an ancestor, or its changes came in squashed. False when it conflicts, or
    git is older than 2.38 and cannot tell without a worktree.
    """
    if not await object_store_merges(cwd):
        return False
    target_tree = await git("rev-parse", "--verify", "-q", f"{target}^{{tree}}", cwd=cwd)
    try:
        tree = await merged_tree(cwd, target, commit, label=target)
    except MergeConflictError:
        return False
    return tree == target_tree.stdout.strip()


async def _checked_out_at(cwd: Path, branch: str) -> Path | None:
    listing = await git("worktree", "list", "--porcelain", cwd=cwd)
    current: Path | None = None
    for line in listing.stdout.splitlines():
        if line.startswith("worktree "):
            current = Path(line.removeprefix("worktree "))
        elif line == f"branch refs/heads/{branch}":
            return current
    return None


async def _overlapping_local_changes(checkout: Path, touched: set[str]) -> list[str]:
    status = await git("status", "--porcelain", "-z", "--untracked-files=all", cwd=checkout)
    entries = [entry for entry in status.stdout.split("\0") if entry]
    local = {entry[3:] for entry in entries if len(entry) > 3}
    return sorted(local & touched)


async def merge_into_checked_out_branch(
    cwd: Path, branch: str, source: str, message: str
) -> MergeResult:
    """Merge ``source`` into the user's ``branch``, updating its checkout if it has one.

    Raises:
        MergeRefusedError: The merge conflicts, or uncommitted changes in the checkout
            touch files the merge changes. Nothing is changed in either case.
    """
    ref = f"refs/heads/{branch}"
    merger = BranchMerger(cwd, branch)
    try:
        tip = await _read_tip(cwd, branch)
        merged = await merger.merge_commit(tip, source, message)
    except MergeConflictError as conflict:
        raise MergeRefusedError(branch, "the merge conflicts in", conflict.paths) from conflict
    finally:
        await merger.close()
    if merged is None:
        return MergeResult(tip.commit, merged=False)
    checkout = await _checked_out_at(cwd, branch)
    if checkout is None:
        await git(
            "update-ref", "-m", f"treefork: {message}", ref, merged.commit, tip.commit, cwd=cwd
        )
        return MergeResult(merged.commit, merged=True)
    touched = set(await changed_files(cwd, tip.commit, merged.commit))
    overlap = await _overlapping_local_changes(checkout, touched)
    if overlap:
        raise MergeRefusedError(
            branch, f"uncommitted changes in {checkout} touch files the merge changes", overlap
        )
    try:
        # The merge commit is a descendant of the tip: a fast-forward checkout, refused by
        # git (with nothing changed) if any local change would be overwritten.
        await git("merge", "--ff-only", "-q", merged.commit, cwd=checkout)
    except GitError as error:
        raise MergeRefusedError(
            branch, f"git refused to update {checkout}: {error.stderr.strip()}"
        ) from error
    return MergeResult(merged.commit, merged=True)
