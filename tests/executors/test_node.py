"""An agent attempt run the way a cluster node runs it: in the node's own clone, fed by a
bundle, its commits returned as one. No cluster here: the node's side alone, for real."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import anyio
import pytest
from gitutil import make_repo, run_git

from treefork.executors.node import (
    BASE_BUNDLE_REF,
    AgentTask,
    node_folder,
    run_agent_on_node,
)
from treefork.git.bundles import bundle_commit, fetch_bundle
from treefork.steps import Shell


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"README.md": "# sample\n", "src/a.txt": "a\n"})


@pytest.fixture
def node_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "node-home"
    monkeypatch.setenv("TREEFORK_HOME", str(home))
    return home


def _bundle(repo: Path, commit: str) -> bytes:
    ref = BASE_BUNDLE_REF.format(commit=commit)
    return anyio.run(lambda: bundle_commit(repo, commit, ref=ref, scratch=repo.parent / "s"))


def _task(base: str, item: int, *steps: Shell, **fields: object) -> AgentTask:
    values: dict[str, object] = {
        "job_id": "job1",
        "domain": "docs",
        "repo_key": "repo-1234",
        "base_commit": base,
        "item_id": f"item-{item}",
        "item_index": item,
        "item": {"n": item},
        "attempt": 1,
        "branch": f"treefork/job1/docs/item-{item}-a1",
        "steps": steps,
        "variables": {},
        **fields,
    }
    return AgentTask(**values)  # type: ignore[arg-type]


def _never() -> bytes:
    raise AssertionError("the node fetched a base commit it already has")


def test_commits_come_back_as_a_bundle_and_the_clone_is_reused(
    source: Path, node_home: Path
) -> None:
    base = run_git(source, "rev-parse", "HEAD").strip()
    commit = Shell("echo ${item.n} > out.txt && git add out.txt && git commit -qm 'item ${item.n}'")
    first = run_agent_on_node(_task(base, 1, commit), lambda: _bundle(source, base), node="n1")
    assert first.ok, first.error
    assert first.fetched_base and first.node == "n1"
    assert len(first.commits) == 1 and first.files == ("out.txt",)
    assert first.bundle is not None
    # Fetched into the user's repository as the agent's branch, it is the agent's commit.
    branch = "treefork/job1/docs/item-1-a1"
    anyio.run(
        lambda: fetch_bundle(
            source, first.bundle or b"", ref=f"refs/heads/{branch}",
            into=f"refs/heads/{branch}", scratch=source.parent / "s",
        )
    )  # fmt: skip
    assert run_git(source, "rev-parse", branch).strip() == first.head
    assert run_git(source, "show", f"{branch}:out.txt") == "1\n"
    # The second agent on the same base fetches nothing and takes the same worktree back,
    # clean: the first agent's file is not there.
    second = run_agent_on_node(_task(base, 2, Shell("test ! -e out.txt"), commit), _never)
    assert second.ok, second.error
    assert not second.fetched_base and second.worktree == first.worktree
    folder = node_folder(node_home, "repo-1234")
    assert sorted(p.name for p in (folder / "slots").iterdir()) == ["0", "0.lock"]
    # The slot is parked detached; the agents' branches are gone from the clone.
    clone = folder / "clone.git"
    assert run_git(clone, "branch", "--list") == ""
    assert run_git(Path(first.worktree or ""), "status", "--porcelain") == ""


def test_a_later_base_fetches_again_and_the_events_come_back(source: Path, node_home: Path) -> None:
    base = run_git(source, "rev-parse", "HEAD").strip()
    run_agent_on_node(_task(base, 1, Shell("true")), lambda: _bundle(source, base))
    (source / "src" / "b.txt").write_text("b\n")
    run_git(source, "add", ".")
    run_git(source, "commit", "-qm", "more")
    later = run_git(source, "rev-parse", "HEAD").strip()
    outcome = run_agent_on_node(
        _task(later, 3, Shell("cat src/b.txt", name="read")), lambda: _bundle(source, later)
    )
    assert outcome.ok and outcome.fetched_base
    assert "b" in outcome.output_tail
    kinds = [event["event"] for event in outcome.events]
    assert kinds == ["step_start", "step_end"]
    assert outcome.events[0]["item"] == "item-3"


def test_uncommitted_work_retires_the_worktree(source: Path, node_home: Path) -> None:
    base = run_git(source, "rev-parse", "HEAD").strip()
    left = run_agent_on_node(
        _task(base, 1, Shell("echo x > loose.txt"), auto_commit=False),
        lambda: _bundle(source, base),
    )
    assert left.ok and left.dirty == ("loose.txt",) and left.bundle is None
    assert (Path(left.worktree or "") / "loose.txt").is_file()  # kept for inspection
    # The next agent never gets that worktree.
    after = run_agent_on_node(_task(base, 2, Shell("test ! -e loose.txt")), _never)
    assert after.ok and after.worktree != left.worktree
    assert (Path(left.worktree or "") / "loose.txt").is_file()


def test_auto_commit_commits_with_the_shipped_identity(source: Path, node_home: Path) -> None:
    base = run_git(source, "rev-parse", "HEAD").strip()
    outcome = run_agent_on_node(
        _task(
            base, 1, Shell("echo y > y.txt"),
            identity={"user.name": "Ada", "user.email": "ada@example.org"},
        ),
        lambda: _bundle(source, base),
    )  # fmt: skip
    assert outcome.ok and len(outcome.commits) == 1
    worktree = Path(outcome.worktree or "")
    author = run_git(worktree, "log", "-1", "--format=%an <%ae>", outcome.head or "")
    assert author.strip() == "Ada <ada@example.org>"


def test_the_repository_hooks_run_on_the_node(source: Path, node_home: Path) -> None:
    base = run_git(source, "rev-parse", "HEAD").strip()
    refuse = b"#!/bin/sh\necho 'pre-commit: no commits on Fridays' >&2\nexit 1\n"
    outcome = run_agent_on_node(
        _task(
            base, 1, Shell("echo z > z.txt && git add z.txt && git commit -qm z"),
            hooks={"pre-commit": refuse},
        ),
        lambda: _bundle(source, base),
    )  # fmt: skip
    assert not outcome.ok
    assert "no commits on Fridays" in outcome.output_tail + (outcome.error or "")
    # Taken away again when the repository no longer has it.
    again = run_agent_on_node(
        _task(base, 2, Shell("echo z > z.txt && git add z.txt && git commit -qm z")), _never
    )
    assert again.ok, again.error


def test_a_read_only_agent_may_not_commit(source: Path, node_home: Path) -> None:
    base = run_git(source, "rev-parse", "HEAD").strip()
    outcome = run_agent_on_node(
        _task(base, 1, Shell("git commit -q --allow-empty -m no"), branch=None),
        lambda: _bundle(source, base),
    )
    assert not outcome.ok
    assert "read-only" in (outcome.error or "") + outcome.output_tail
    assert outcome.bundle is None and outcome.commits == ()


def test_a_full_disk_on_the_node_fails_the_agent_clearly(
    source: Path, node_home: Path, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    (source / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    run_git(source, "add", ".")
    run_git(source, "commit", "-qm", "big")
    base = run_git(source, "rev-parse", "HEAD").strip()
    node_home.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(node_home)], check=True)
    try:
        outcome = run_agent_on_node(_task(base, 1, Shell("true")), lambda: _bundle(source, base))
    finally:
        subprocess.run(["umount", str(node_home)], check=True)
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error.startswith("on node ")
    assert "no space left on device" in outcome.error
