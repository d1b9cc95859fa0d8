"""Resuming a job in process: the job dies at a precise point (right before or after the
store records a fact), then the graph is invoked again on the same thread with a fresh
SQLite checkpointer and store connection, as a new process would.

The agents are real shell commands that append their item to a log outside the
repository, so the tests see exactly which work ran twice. Every resumed job must end with
the same tree as an uninterrupted run of the same job on a copy of the repository.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gitutil import make_repo, run_git, treefork_branches, worktree_paths
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from treefork import Domain, Map, Shell, build_graph
from treefork.store import JobStore


class Crash(BaseException):
    """Stands for the process dying at this instant (like SIGKILL, nothing runs after it)."""


class CrashingStore(JobStore):
    """A real job store that dies before or after recording the fact ``when`` picks."""

    def __init__(self, path: Path, when: Callable[[str, dict[str, Any]], str | None]) -> None:
        super().__init__(path)
        self.when = when
        self.crashed = False

    def _maybe(self, moment: str, method: str, facts: dict[str, Any]) -> None:
        if not self.crashed and self.when(method, facts) == moment:
            self.crashed = True
            raise Crash(f"{moment} {method} {facts}")

    def record_agent(self, job_id: str, domain: str, result: Any, **options: Any) -> None:
        facts = {"item": result["item"], "merge": options["merge"]}
        self._maybe("before", "record_agent", facts)
        super().record_agent(job_id, domain, result, **options)
        self._maybe("after", "record_agent", facts)

    def record_phase(self, job_id: str, domain: str, phase: str, facts: Any, **options: Any) -> None:
        self._maybe("before", "record_phase", {"phase": phase})
        super().record_phase(job_id, domain, phase, facts, **options)
        self._maybe("after", "record_phase", {"phase": phase})


ITEMS = ["a", "b", "c", "d", "e"]


def _items_json() -> str:
    return "[" + ",".join(f'"{item}"' for item in ITEMS) + "]"


def _domain(log: Path) -> Domain:
    """Setup commits a line (so running it twice on top of itself would show), writes the
    items; agents log their item and commit a file; reduce logs and commits a line."""
    return Domain(
        "docs",
        setup=[
            Shell(f"echo setup >> {log}; echo line >> docs/setup.md; git add docs && git commit -qm setup"),
            Shell(f"echo '{_items_json()}' > items.json"),
        ],
        map=Map(
            input="items.json",
            agent=[
                Shell(
                    f"echo ${{item}} >> {log}; sleep 0.1; echo ${{item}} > docs/${{item}}.md; "
                    "git add docs && git commit -qm 'doc ${item}'",
                    commit_required=True,
                )
            ],
            max_parallel=2,
        ),
        reduce=[Shell(f"echo reduce >> {log}; echo done >> docs/setup.md; git commit -qam reduce")],
    )


def _map_only_domain(log: Path) -> Domain:
    """Items listed in the definition and nothing but agents: the domain has no worktree."""
    agent = Shell(
        f"echo ${{item}} >> {log}; sleep 0.1; echo ${{item}} > docs/${{item}}.md; "
        "git add docs && git commit -qm 'doc ${item}'",
        commit_required=True,
    )
    return Domain("docs", map=Map(input=ITEMS, agent=[agent], max_parallel=2))


async def _run(
    repo: Path,
    home: Path,
    store: JobStore | None,
    log: Path,
    *,
    resume: bool = False,
    map_only: bool = False,
    checkpoints: str = "checkpoints.sqlite",
) -> dict[str, Any]:
    domain = _map_only_domain(log) if map_only else _domain(log)
    async with AsyncSqliteSaver.from_conn_string(str(home / checkpoints)) as saver:
        graph = build_graph([domain], auto_approve=True, checkpointer=saver, job_store=store)
        config = {"configurable": {"thread_id": "job-1"}}
        state_in = None if resume else {"task": "docs", "repo": str(repo), "job_id": "job-1"}
        return dict(await graph.ainvoke(state_in, config))


def _lines(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


@pytest.fixture
def project(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo", {"README.md": "# r\n", "docs/index.md": "x\n", ".gitignore": "items.json\n"})
    shutil.copytree(repo, tmp_path / "pristine")
    return repo


async def _uninterrupted_tree(tmp_path: Path, *, map_only: bool = False) -> str:
    repo = tmp_path / "pristine"
    home = tmp_path / "home-uninterrupted"
    with JobStore.in_home(home) as store:
        out = await _run(repo, home, store, tmp_path / "uninterrupted.log", map_only=map_only)
    assert out["merge"]["status"] == "merged"
    return run_git(repo, "rev-parse", "main^{tree}").strip()


async def _crash_then_resume(
    tmp_path: Path,
    repo: Path,
    treefork_home: Path,
    when: Callable[[str, dict[str, Any]], str | None],
    *,
    map_only: bool = False,
) -> tuple[dict[str, Any], list[str], list[str]]:
    """Run until the crash, resume; returns the final state, the log at the crash, the log after."""
    log = tmp_path / "agents.log"
    crashing = CrashingStore(treefork_home / "treefork.db", when)
    with pytest.raises(BaseException) as caught:
        await _run(repo, treefork_home, crashing, log, map_only=map_only)
    assert crashing.crashed, caught.value
    crashing.close()
    at_crash = _lines(log)
    _committed_copy(treefork_home / "checkpoints.sqlite", treefork_home / "resumed.sqlite")
    with JobStore.in_home(treefork_home) as store:
        out = await _run(
            repo, treefork_home, store, log, resume=True, map_only=map_only, checkpoints="resumed.sqlite"
        )
    return out, at_crash, _lines(log)


def _committed_copy(source: Path, target: Path) -> None:
    """What a killed process leaves of its checkpoints: every committed transaction.

    The simulated crash leaves its process alive, and a checkpoint write of a task it cut
    off can outlive the closed connection: SQLite then keeps that connection's write lock
    until the interpreter collects the statement (``database is locked`` for 5 s on the
    next write). A dead process holds no lock, so the resumed run reads a copy.
    """
    with sqlite3.connect(source) as live, sqlite3.connect(target) as copy:
        live.backup(copy)
    live.close()
    copy.close()


def _assert_clean_end(repo: Path, out: dict[str, Any], expected_tree: str) -> None:
    assert out["status"] == "succeeded", out.get("failures")
    assert out["merge"]["status"] == "merged"
    assert run_git(repo, "rev-parse", "main^{tree}").strip() == expected_tree
    assert treefork_branches(repo) == []
    assert worktree_paths(repo) == [repo]


async def test_recorded_agents_are_not_run_again_after_a_crash_mid_map(
    tmp_path: Path, project: Path, treefork_home: Path
) -> None:
    finals: list[str] = []

    def after_second_result(method: str, facts: dict[str, Any]) -> str | None:
        if method == "record_agent" and facts["merge"] == "merged":
            finals.append(facts["item"])
            return "after" if len(finals) == 2 else None
        return None

    out, at_crash, after = await _crash_then_resume(tmp_path, project, treefork_home, after_second_result)
    _assert_clean_end(project, out, await _uninterrupted_tree(tmp_path))
    for item in finals[:2]:
        assert after.count(item) == 1, (item, after)
    assert after.count("setup") == 1
    assert sorted(set(after) - {"setup", "reduce"}) == ITEMS
    assert len(at_crash) < len(after)


async def test_a_finished_agent_whose_merge_was_cut_off_is_merged_not_run_again(
    tmp_path: Path, project: Path, treefork_home: Path
) -> None:
    def after_pending_b(method: str, facts: dict[str, Any]) -> str | None:
        return "after" if method == "record_agent" and facts == {"item": "b", "merge": "pending"} else None

    out, at_crash, after = await _crash_then_resume(tmp_path, project, treefork_home, after_pending_b)
    assert "b" in at_crash
    assert after.count("b") == 1
    _assert_clean_end(project, out, await _uninterrupted_tree(tmp_path))
    b = next(a for a in out["domain_results"]["docs"]["agents"] if a["item"] == "b")
    assert (b["status"], b["attempts"]) == ("succeeded", 1)


async def test_a_merge_that_happened_but_was_not_recorded_is_adopted(
    tmp_path: Path, project: Path, treefork_home: Path
) -> None:
    def before_merged_c(method: str, facts: dict[str, Any]) -> str | None:
        return "before" if method == "record_agent" and facts == {"item": "c", "merge": "merged"} else None

    out, _, after = await _crash_then_resume(tmp_path, project, treefork_home, before_merged_c)
    assert after.count("c") == 1
    _assert_clean_end(project, out, await _uninterrupted_tree(tmp_path))


async def test_finished_setup_is_not_run_again(tmp_path: Path, project: Path, treefork_home: Path) -> None:
    def after_setup(method: str, facts: dict[str, Any]) -> str | None:
        return "after" if method == "record_phase" and facts["phase"] == "setup" else None

    out, at_crash, after = await _crash_then_resume(tmp_path, project, treefork_home, after_setup)
    assert at_crash == ["setup"]
    assert after.count("setup") == 1
    _assert_clean_end(project, out, await _uninterrupted_tree(tmp_path))


async def test_setup_cut_off_after_its_commit_runs_again_from_the_job_base(
    tmp_path: Path, project: Path, treefork_home: Path
) -> None:
    # Setup appends to a tracked file and commits: run twice on top of itself, the file
    # would have two lines. The resume must undo the first run's commit.
    def before_setup_recorded(method: str, facts: dict[str, Any]) -> str | None:
        return "before" if method == "record_phase" and facts["phase"] == "setup" else None

    out, _, after = await _crash_then_resume(tmp_path, project, treefork_home, before_setup_recorded)
    assert after.count("setup") == 2
    _assert_clean_end(project, out, await _uninterrupted_tree(tmp_path))
    assert (project / "docs/setup.md").read_text() == "line\ndone\n"


async def test_reduce_cut_off_after_its_commit_is_undone_and_run_again(
    tmp_path: Path, project: Path, treefork_home: Path
) -> None:
    def before_reduce_recorded(method: str, facts: dict[str, Any]) -> str | None:
        return "before" if method == "record_phase" and facts["phase"] == "reduce" else None

    out, _, after = await _crash_then_resume(tmp_path, project, treefork_home, before_reduce_recorded)
    assert after.count("reduce") == 2
    assert sorted(set(after) - {"setup", "reduce"}) == ITEMS and len(after) == len(ITEMS) + 3
    _assert_clean_end(project, out, await _uninterrupted_tree(tmp_path))
    assert (project / "docs/setup.md").read_text() == "line\ndone\n"


async def test_a_finished_domain_is_not_run_again(tmp_path: Path, project: Path, treefork_home: Path) -> None:
    def after_result(method: str, facts: dict[str, Any]) -> str | None:
        return "after" if method == "record_phase" and facts["phase"] == "result" else None

    out, at_crash, after = await _crash_then_resume(tmp_path, project, treefork_home, after_result)
    assert at_crash == after
    _assert_clean_end(project, out, await _uninterrupted_tree(tmp_path))


async def test_every_agent_result_is_recorded_with_its_events(tmp_path: Path, project: Path, treefork_home: Path) -> None:
    with JobStore.in_home(treefork_home) as store:
        out = await _run(project, treefork_home, store, tmp_path / "log")
        assert out["merge"]["status"] == "merged"
        agents = store.agents("job-1")
        assert [(a["item_id"], a["status"], a["merge"]) for a in agents] == [
            (str(n), "succeeded", "merged") for n in range(len(ITEMS))
        ]
        job = store.job("job-1")
        assert job is not None and (job["status"], job["merge_status"]) == ("succeeded", "merged")
        kinds = [event["event"] for event in store.events("job-1")]
        assert kinds[0] == "job_start" and kinds[-1] == "job_end"
        assert kinds.count("agent_end") == len(ITEMS)
        jsonl = (treefork_home / "jobs" / "job-1" / "events.jsonl").read_text().splitlines()
        assert len(jsonl) == len(kinds)
        domain = store.domain("job-1", "docs")
        assert domain is not None and domain["status"] == "succeeded"
        assert {"setup", "map", "reduce", "integrate", "result"} <= {k for k, v in domain.items() if v}


async def test_a_graph_without_a_store_records_nothing(project: Path, treefork_home: Path, tmp_path: Path) -> None:
    graph = build_graph([_domain(tmp_path / "log")], auto_approve=True, job_store=False)
    out = await graph.ainvoke({"task": "docs", "repo": str(project)})
    assert out["merge"]["status"] == "merged"
    assert not (treefork_home / "treefork.db").exists()
    assert not (treefork_home / "jobs" / out["job_id"] / "events.jsonl").exists()


@pytest.mark.parametrize(
    "moment",
    ["after a result", "after a pending merge"],
)
async def test_a_domain_without_a_worktree_resumes_without_rerunning_recorded_agents(
    tmp_path: Path, project: Path, treefork_home: Path, moment: str
) -> None:
    recorded: list[str] = []

    def when(method: str, facts: dict[str, Any]) -> str | None:
        if method != "record_agent":
            return None
        if moment == "after a result" and facts["merge"] == "merged":
            recorded.append(facts["item"])
            return "after" if len(recorded) == 2 else None
        if moment == "after a pending merge" and facts == {"item": "c", "merge": "pending"}:
            recorded.append("c")
            return "after"
        return None

    out, at_crash, after = await _crash_then_resume(
        tmp_path, project, treefork_home, when, map_only=True
    )

    _assert_clean_end(project, out, await _uninterrupted_tree(tmp_path, map_only=True))
    assert out["domain_results"]["docs"]["worktree"] is None
    for item in recorded:
        assert after.count(item) == 1, (item, after)
    assert sorted(set(after)) == ITEMS
    assert len(at_crash) < len(after) or moment == "after a pending merge"
