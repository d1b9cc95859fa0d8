"""Where ``treefork report`` finds a job's events: the job store, else the job's event log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from treefork.cli.app import _register, app
from treefork.cli.report import load_job_events, read_events_file

EVENTS = [
    {
        "event": "job_start",
        "job_id": "j1",
        "ts": 1.0,
        "task": "t",
        "repo": "/r",
        "base_branch": "main",
    },
    {"event": "agent_start", "job_id": "j1", "ts": 2.0, "domain": "d", "item": "a"},
    {
        "event": "agent_end",
        "job_id": "j1",
        "ts": 3.0,
        "domain": "d",
        "item": "a",
        "status": "succeeded",
    },
]


def _write_log(home: Path, job_id: str, lines: list[str]) -> Path:
    log = home / "jobs" / job_id / "events.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text("\n".join(lines) + "\n")
    return log


def test_the_event_log_is_read_and_a_line_cut_short_is_skipped(treefork_home: Path) -> None:
    lines = [json.dumps(event) for event in EVENTS]
    _write_log(treefork_home, "j1", [*lines[:2], "", lines[2], '{"event": "agent_st'])

    job, events = load_job_events(treefork_home, "j1")

    assert job is None
    assert events == EVENTS


def test_an_unknown_job_has_no_events(treefork_home: Path) -> None:
    assert load_job_events(treefork_home, "nope") == (None, [])
    assert not (treefork_home / "treefork.db").exists()  # reading never creates a store


def test_the_job_store_is_preferred_when_it_knows_the_job(treefork_home: Path) -> None:
    store_module = pytest.importorskip("treefork.store")
    with store_module.JobStore.in_home(treefork_home) as store:
        store.start_job("j1", task="from the store")
        for event in EVENTS:
            store.append_event(event)
    _write_log(treefork_home, "j1", [json.dumps(EVENTS[0])])

    job, events = load_job_events(treefork_home, "j1")

    assert job is not None and job["task"] == "from the store"
    assert [event["event"] for event in events] == ["job_start", "agent_start", "agent_end"]


def test_events_from_a_file_given_on_the_command_line(tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    source.write_text("".join(json.dumps(event) + "\n" for event in EVENTS))
    page = tmp_path / "page.html"
    _register()

    result = CliRunner().invoke(app, ["report", "j1", "--events", str(source), "-o", str(page)])

    assert result.exit_code == 0, result.output
    assert read_events_file(source) == EVENTS
    assert 'data-node="supervisor"' in page.read_text()
