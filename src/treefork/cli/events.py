"""``treefork events JOB [--follow] [--json]``: a job's event log.

The same events the graph streams (``stream_mode="custom"``), read from the job store:
job, routing, phase, agent, step, merge, conflict, DLQ, worktree, budget and resume events,
each with its timestamp. ``--follow`` keeps printing new ones until the job ends (its
``job_end`` event) or its process is gone.

Exit codes: 0 done; 2 unknown job.
"""

from __future__ import annotations

import json
import time
from typing import Any

import typer

from treefork.cli.app import app
from treefork.cli.run import EXIT_INVALID, _say
from treefork.home import treefork_home
from treefork.store import JobLock, shared_store

__all__ = ("describe_event", "events")

_POLL_SECONDS = 0.25
_SHOWN = (
    "domain",
    "phase",
    "item",
    "status",
    "action",
    "error",
    "reason",
    "paths",
    "path",
    "branch",
)


def describe_event(event: dict[str, Any]) -> str:
    """One line for people: time, kind, and the fields that say what happened."""
    stamp = time.strftime("%H:%M:%S", time.localtime(float(event.get("ts") or 0)))
    parts = [f"{key}={event[key]}" for key in _SHOWN if event.get(key) not in (None, "", [])]
    extra = {
        key: value
        for key, value in event.items()
        if key not in (*_SHOWN, "event", "job_id", "ts", "seq") and value not in (None, "", [], {})
    }
    if extra and event.get("event") in (
        "merge",
        "budget",
        "routing",
        "merge_review",
        "job_end",
        "resume",
        "dlq",
    ):
        parts.append(json.dumps(extra, default=str, sort_keys=True))
    return f"{stamp} {event.get('event', '?'):<13} " + " ".join(parts)


def _print(event: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps({k: v for k, v in event.items() if k != "seq"}, default=str), flush=True)
    else:
        print(describe_event(event), flush=True)


@app.command()
def events(
    job_id: str = typer.Argument(..., help="The job."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new events."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line, as emitted."),
) -> None:
    """Print a job's events (JSONL with --json)."""
    home = treefork_home()
    store = shared_store(home)
    if store.job(job_id) is None and not store.events(job_id):
        _say(f"error: no job {job_id!r}; `treefork jobs` lists them")
        raise typer.Exit(EXIT_INVALID)
    lock = JobLock(home, job_id)
    after, idle = 0, 0
    while True:
        batch = store.events(job_id, after=after)
        for event in batch:
            _print(event, as_json)
            after = int(event["seq"])
        ended = any(event.get("event") == "job_end" for event in batch)
        if not follow or ended:
            return
        # Stop once the job's process is gone and nothing new arrived twice in a row.
        idle = 0 if batch or lock.is_held_elsewhere() else idle + 1
        if idle >= 2:
            return
        time.sleep(_POLL_SECONDS)
