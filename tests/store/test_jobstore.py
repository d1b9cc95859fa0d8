"""The job store on a real SQLite file: jobs, phases, agent results, DLQ, events, resources."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from treefork.errors import StoreError
from treefork.store import JobStore, shared_store
from treefork.store.schema import SCHEMA_VERSION


def _result(item_id: str, index: int, status: str, **fields: Any) -> dict[str, Any]:
    return {
        "item_id": item_id, "item_index": index, "item": {"name": item_id}, "status": status,
        "error": None, "output_tail": "", "branch": f"treefork/j/agents/d/{index:04d}-{item_id}",
        "commits": [], "files": [], "conflict_paths": [], "attempts": 1, "tokens": 5, "cost": 0.5,
        "started_at": None, "finished_at": None, **fields,
    }


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    with JobStore(tmp_path / "treefork.db") as opened:
        yield opened  # type: ignore[misc]


def test_opens_in_wal_mode_with_the_current_schema(store: JobStore) -> None:
    connection = sqlite3.connect(store.path)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        connection.close()


def test_a_store_written_by_a_newer_treefork_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "treefork.db"
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    with pytest.raises(StoreError, match="newer"):
        JobStore(path)


def test_jobs_are_created_updated_and_listed_with_counts(store: JobStore) -> None:
    store.start_job("j1", repo="/r", task="t", workflow="wf", options={"yes": True})
    store.start_job("j1", base_branch="main")  # None fields and re-creation keep what is there
    store.record_agent("j1", "d", _result("a", 0, "succeeded"), merge="merged", head="c" * 40)
    store.record_agent("j1", "d", _result("b", 1, "failed", error="boom"), merge="none", head=None)
    store.record_agent("j1", "d", _result("c", 2, "skipped"), merge="none", head=None)
    store.update_job("j1", status="partial", merge_status="pending", summary={"files": ["x"]})
    job = store.job("j1")
    assert job is not None
    assert (job["repo"], job["task"], job["base_branch"], job["options"]) == ("/r", "t", "main", {"yes": True})
    assert (job["status"], job["merge_status"], job["summary"]) == ("partial", "pending", {"files": ["x"]})
    assert (job["succeeded"], job["failed"], job["skipped"], job["dlq"], job["total"]) == (1, 1, 1, 1, 3)
    assert store.job("nope") is None
    store.start_job("j2")
    assert [j["job_id"] for j in store.jobs()] == ["j2", "j1"]
    with pytest.raises(ValueError, match="unknown job columns"):
        store.update_job("j1", nonsense=1)


def test_failed_items_enter_the_dlq_with_every_attempt_and_a_success_resolves_them(store: JobStore) -> None:
    store.start_job("j")
    store.agent_started("j", "d", item_id="b", item_index=1, item={"name": "b"}, attempt=1, branch="br1")
    store.attempt_finished("j", "d", item_id="b", attempt=1, status="failed", error="first", output_tail="out1", branch="br1", head=None)
    store.agent_started("j", "d", item_id="b", item_index=1, item={"name": "b"}, attempt=2, branch="br2")
    store.attempt_finished("j", "d", item_id="b", attempt=2, status="failed", error="second", output_tail="out2", branch="br2", head=None)
    store.record_agent("j", "d", _result("b", 1, "failed", error="second", attempts=2, branch="br2"), merge="none", head=None)
    [entry] = store.dlq("j")
    assert (entry["item"], entry["error"], entry["branch"], entry["attempts"]) == ({"name": "b"}, "second", "br2", 2)
    attempts = store.attempts("j", "d", "b")
    assert [(a["attempt"], a["error"], a["output_tail"]) for a in attempts] == [(1, "first", "out1"), (2, "second", "out2")]
    store.record_agent("j", "d", _result("b", 1, "succeeded", attempts=3), merge="merged", head="c" * 40)
    assert store.dlq("j") == []
    assert store.dlq("j", include_resolved=True)[0]["resolved_at"] is not None


def test_on_item_failure_skip_keeps_failures_out_of_the_dlq(store: JobStore) -> None:
    store.record_agent("j", "d", _result("a", 0, "failed"), merge="none", head=None, dead_letter=False)
    assert store.dlq("j") == []
    assert store.agents("j")[0]["status"] == "failed"


def test_phases_are_recorded_and_forgotten(store: JobStore) -> None:
    store.record_phase("j", "d", "setup", {"base_commit": "b" * 40, "items": [], "variables": {"x": 1}})
    store.record_phase("j", "d", "result", {"status": "succeeded"}, status="succeeded")
    row = store.domain("j", "d")
    assert row is not None
    assert row["setup"]["variables"] == {"x": 1}
    assert (row["status"], row["map"], row["result"]) == ("succeeded", None, {"status": "succeeded"})
    store.record_phase("j", "d", "setup", None)
    assert store.domain("j", "d")["setup"] is None  # type: ignore[index]
    with pytest.raises(ValueError, match="unknown phase"):
        store.record_phase("j", "d", "lunch", {})


def test_events_keep_their_order_and_payload(store: JobStore) -> None:
    for number in range(5):
        store.append_event({"event": "agent_end", "job_id": "j", "ts": 1.0 + number, "item": str(number)})
    store.append_event({"event": "job_start", "job_id": "other", "ts": 0.0})
    events = store.events("j")
    assert [e["item"] for e in events] == ["0", "1", "2", "3", "4"]
    assert events[0]["event"] == "agent_end" and events[0]["ts"] == 1.0
    assert [e["item"] for e in store.events("j", after=events[2]["seq"])] == ["3", "4"]


def test_resources_record_creation_and_removal(store: JobStore) -> None:
    store.record_resource("j", "worktree", "/h/w/session", role="session", repo="/r")
    store.record_resource("j", "branch", "treefork/j/session", role="session")
    store.resource_removed("worktree", "/h/w/session")
    assert [r["name"] for r in store.resources("j", live_only=True)] == ["treefork/j/session"]
    assert len(store.resources("j")) == 2


def test_writes_from_threads_and_another_process_all_land(store: JobStore, tmp_path: Path) -> None:
    def write(thread: int) -> None:
        for number in range(50):
            store.append_event({"event": "step_end", "job_id": "j", "ts": 0.0, "n": f"{thread}-{number}"})

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    script = (
        "import sys; from treefork.store import JobStore\n"
        "with JobStore(sys.argv[1]) as s:\n"
        "    for n in range(100): s.append_event({'event': 'x', 'job_id': 'j', 'ts': 0.0})\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script, str(store.path)])
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert process.wait(timeout=60) == 0
    assert len(store.events("j")) == 300


def test_the_shared_store_is_one_per_home_while_held(tmp_path: Path) -> None:
    first = shared_store(tmp_path)
    assert shared_store(tmp_path) is first
    first.close()
    again = shared_store(tmp_path)
    assert again is not first and again.is_open
    again.close()


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "x.db")
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.jobs()


def test_a_batch_commits_once_and_a_failing_write_takes_back_only_its_own_changes(
    store: JobStore,
) -> None:
    store.start_job("j", status="running")

    def failing() -> None:
        store.record_resource("j", "branch", "half-written", role="agent")
        raise ValueError("this write fails after writing")

    outcomes = store.write_batch(
        [
            lambda: store.record_agent("j", "d", _result("a", 0, "succeeded"), merge="none", head=None),
            failing,
            lambda: store.record_resource("j", "branch", "kept", role="agent"),
        ]
    )

    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], ValueError)
    assert [agent["item_id"] for agent in store.agents("j")] == ["a"]
    assert [resource["name"] for resource in store.resources("j")] == ["kept"]


def test_a_batch_interrupted_between_writes_keeps_the_writes_that_returned(store: JobStore) -> None:
    class Interrupted(BaseException):
        pass

    def interrupt() -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        store.write_batch(
            [lambda: store.record_resource("j", "branch", "done", role="agent"), interrupt]
        )

    assert [resource["name"] for resource in store.resources("j")] == ["done"]
    store.record_resource("j", "branch", "after", role="agent")  # no transaction left open
    assert len(store.resources("j")) == 2


def test_queued_writes_from_many_threads_all_land_and_report_their_own_failures(
    store: JobStore,
) -> None:
    futures = []

    def submit(thread: int) -> None:
        for number in range(50):
            futures.append(
                store.submit(
                    lambda t=thread, n=number: store.record_resource(
                        "j", "branch", f"b-{t}-{n}", role="agent"
                    )
                )
            )

    threads = [threading.Thread(target=submit, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    def broken() -> None:
        store.record_resource("j", "branch", "taken-back", role="agent")
        raise ValueError("broken write")

    failing = store.submit(broken)

    for future in futures:
        assert future.result(timeout=10) is None
    with pytest.raises(ValueError, match="broken write"):
        failing.result(timeout=10)
    assert len(store.resources("j")) == 200


def _open_at_once(path: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        JobStore(path).close()
        results.put(None)
    except StoreError as error:
        results.put(str(error))


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    # Two jobs started together on a new home both create the store and switch it to WAL.
    context = multiprocessing.get_context("fork")
    failures = []
    for attempt in range(30):
        path = str(tmp_path / f"home-{attempt}" / "treefork.db")
        barrier, results = context.Barrier(3), context.Queue()
        openers = [
            context.Process(target=_open_at_once, args=(path, barrier, results)) for _ in range(3)
        ]
        for opener in openers:
            opener.start()
        failures += [results.get(timeout=60) for _ in openers]
        for opener in openers:
            opener.join(timeout=60)
    assert [failure for failure in failures if failure] == []


def test_an_interrupted_job_lasts_until_the_last_thing_it_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time
    from types import SimpleNamespace

    from treefork.cli.jobs import _duration
    from treefork.store import jobstore

    clock = SimpleNamespace(now=1000.0)
    fake = SimpleNamespace(time=lambda: clock.now, monotonic=time.monotonic, sleep=time.sleep)
    monkeypatch.setattr(jobstore, "time", fake)
    with JobStore(tmp_path / "treefork.db") as store:
        store.start_job("j", repo="/r", task="t")
        clock.now = 1042.5
        store.record_phase("j", "docs", "setup", {"commit": "abc"})
        job = store.job("j")
    assert job is not None and job["finished_at"] is None
    assert job["last_activity"] == 1042.5
    assert _duration(job, "interrupted") == 42.5
