"""Git bundles: repository content carried as bytes between machines.

A remote executor sends each domain's base commit to its worker nodes as a bundle, and each
agent's commits come back as a bundle of ``base..agent``, which the coordinator fetches into
the user's repository as the agent's branch. Nothing else about the repository has to be
shared: no filesystem, no remote.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.to_thread

from treefork.git.command import git

__all__ = ("bundle_commit", "bundle_range", "fetch_bundle")

async def bundle_commit(repo: Path, commit: str, *, ref: str, scratch: Path) -> bytes:
    """A bundle of ``commit`` and its whole history, under the ref ``ref``.

    Args:
        repo: The repository holding the commit.
        commit: The commit.
        ref: The ref the bundle names the commit by (made in ``repo`` while the bundle is
            written, then deleted).
        scratch: A folder for the bundle file while it is written (removed after).
    """
    await git("update-ref", ref, commit, cwd=repo)
    try:
        return await _create(repo, [ref], scratch)
    finally:
        await git("update-ref", "-d", ref, cwd=repo, check=False)


async def bundle_range(repo: Path, branch: str, base: str, *, scratch: Path) -> bytes:
    """A bundle of the commits on ``branch`` that ``base`` does not have (``base..branch``);
    fetching it needs ``base``."""
    return await _create(repo, [f"refs/heads/{branch}", f"^{base}"], scratch)


@asynccontextmanager
async def _bundle_file(scratch: Path) -> AsyncIterator[Path]:
    """A path for one bundle file in a fresh folder under ``scratch``, removed after."""
    await anyio.Path(scratch).mkdir(parents=True, exist_ok=True)
    folder = Path(await anyio.to_thread.run_sync(lambda: tempfile.mkdtemp(dir=scratch)))
    try:
        yield folder / "content.bundle"
    finally:
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(folder, ignore_errors=True))


async def _create(repo: Path, revisions: list[str], scratch: Path) -> bytes:
    async with _bundle_file(scratch) as path:
        await git("bundle", "create", "-q", str(path), *revisions, cwd=repo)
        return await anyio.Path(path).read_bytes()


async def fetch_bundle(
    repo: Path, data: bytes, *, ref: str, into: str, scratch: Path
) -> None:
    """Fetch ``ref`` of a bundle into the ref ``into`` of ``repo`` (made or moved there).

    Objects are unpacked loose, so that readers of the object database that do not look
    for new packs see them at once.

    Raises:
        GitError: The bundle is not valid, or lacks a commit it needs that ``repo`` has not.
    """
    async with _bundle_file(scratch) as path:
        await anyio.Path(path).write_bytes(data)
        await git(
            "-c", "fetch.unpackLimit=1000000", "-c", "transfer.unpackLimit=1000000",
            "fetch", "-q", "--no-tags", "--no-write-fetch-head", str(path), f"+{ref}:{into}",
            cwd=repo,
        )  # fmt: skip
