"""What the coordinator sends with remote agents, and how their commits come back.

A domain's agents on a remote executor get, besides their item, what a local agent finds
in its worktree without being told: the repository's hooks, its commit identity, and the
ignored files the domain copies into each worktree (``worktree_include``). They are read
once per domain (:func:`shipment`). The base commit goes as a :class:`BaseContent`, bundled
at most once per executor; an agent's commits come back as a bundle fetched into the
user's repository as the agent's branch (:func:`receive_commits`), after which merging is
the same as for a local agent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from treefork.events import Emitter
from treefork.executors import BaseContent
from treefork.executors.node import BASE_BUNDLE_REF
from treefork.git.bundles import bundle_commit, fetch_bundle
from treefork.git.command import git
from treefork.git.worktrees import WorktreeManager, repository_key

__all__ = ("Shipment", "base_content", "receive_commits", "shipment")


@dataclass(frozen=True)
class Shipment:
    """What every remote agent of one domain is sent besides its item."""

    repo_key: str
    hooks: Mapping[str, bytes] = field(default_factory=dict)
    identity: Mapping[str, str] = field(default_factory=dict)
    include: Mapping[str, bytes] = field(default_factory=dict)


async def shipment(worktrees: WorktreeManager, include: Sequence[str]) -> Shipment:
    """Read the repository's hooks, identity and included files once for a domain."""
    root = worktrees.repo.root
    hooks_path = (await git("rev-parse", "--git-path", "hooks", cwd=root)).stdout.strip()
    hooks_folder = (root / hooks_path).resolve()
    identity = {}
    for key in ("user.name", "user.email"):
        value = (await git("config", "--get", key, cwd=root, check=False)).stdout.strip()
        if value:
            identity[key] = value

    def read() -> tuple[dict[str, bytes], dict[str, bytes]]:
        hooks = {
            path.name: path.read_bytes()
            for path in (sorted(hooks_folder.iterdir()) if hooks_folder.is_dir() else ())
            if path.is_file() and not path.name.endswith(".sample") and os.access(path, os.X_OK)
        }
        files: dict[str, bytes] = {}
        for pattern in include:
            for found in root.glob(pattern):
                if found.is_file():
                    files[str(found.relative_to(root))] = found.read_bytes()
        return hooks, files

    hooks, files = await anyio.to_thread.run_sync(read)
    return Shipment(repository_key(worktrees.repo), hooks, identity, files)


def base_content(
    worktrees: WorktreeManager, key: str, commit: str, *, emit: Emitter | None = None
) -> BaseContent:
    """The base commit of a domain's agents as the executor sends it to its nodes (the
    ``base_bundle`` event gives its size when it is made)."""
    root, scratch = worktrees.repo.root, worktrees.root / "bundles"

    async def bundle() -> bytes:
        data = await bundle_commit(
            root, commit, ref=BASE_BUNDLE_REF.format(commit=commit), scratch=scratch
        )
        if emit is not None:
            emit.emit("base_bundle", commit=commit, bytes=len(data))
        return data

    async def publish(url: str) -> None:
        ref = f"refs/treefork/bases/{commit}"
        await git("push", "-q", "--no-verify", url, f"{commit}:{ref}", cwd=root)

    return BaseContent(f"{key}@{commit}", commit, bundle, publish)


async def receive_commits(
    worktrees: WorktreeManager, bundle: bytes, branch: str, scratch: Path
) -> None:
    """Fetch a remote agent's commits into the user's repository as its branch."""
    await fetch_bundle(
        worktrees.repo.root,
        bundle,
        ref=f"refs/heads/{branch}",
        into=f"refs/heads/{branch}",
        scratch=scratch,
    )
