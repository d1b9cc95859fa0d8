"""``treefork report JOB``: one self-contained HTML page for a job, from its recorded events.

The events come from the job store in the treefork home when it knows the job, else from
the job's event log (``<home>/jobs/<job>/events.jsonl``), or from the file ``--events``
names. The page needs no network to be viewed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from treefork.cli.app import app
from treefork.cli.console import make_console
from treefork.home import treefork_home

__all__ = ("load_job_events", "read_events_file", "report")

EXIT_INVALID = 2

_err = make_console(stderr=True)


def read_events_file(path: Path) -> list[dict[str, Any]]:
    """The events in a JSONL file (one JSON object a line; blank and broken lines skipped).

    A job killed mid-write can leave a last line cut short: the rest is still worth a report.
    """
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def _from_store(home: Path, job_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    try:
        from treefork.store import STORE_FILE, JobStore
    except ImportError:  # a treefork without the job store: the event log alone
        return None, []
    if not (home / STORE_FILE).is_file():
        return None, []  # never create an empty store just to read from it
    with JobStore.in_home(home) as store:
        return store.job(job_id), store.events(job_id)


def load_job_events(home: Path, job_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The job's row (if the store has one) and its events, from the store or the event log.

    Returns:
        ``(job, events)``; events empty when neither the store nor a log knows the job.
    """
    job, events = _from_store(home, job_id)
    if events:
        return job, events
    log = home / "jobs" / job_id / "events.jsonl"
    if log.is_file():
        return job, read_events_file(log)
    return job, []


@app.command()
def report(
    job_id: Annotated[str, typer.Argument(metavar="JOB", help="The job id.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="HTML file (default report-JOB.html).")
    ] = None,
    events_file: Annotated[
        Path | None,
        typer.Option("--events", help="Read the events from this JSONL file instead of the home."),
    ] = None,
) -> None:
    """Write one self-contained HTML report of a job: timeline, budget, failures, graph."""
    from treefork.report import write_report

    home = treefork_home()
    if events_file is not None:
        job, events = None, read_events_file(events_file)
    else:
        job, events = load_job_events(home, job_id)
    events = [event for event in events if str(event.get("job_id", job_id)) == job_id]
    if not events:
        where = events_file or home
        _err.print(f"no events of job {job_id} in {where}", markup=False, highlight=False)
        raise typer.Exit(EXIT_INVALID)
    target = write_report(output or Path(f"report-{job_id}.html"), job, events)
    make_console().print(f"wrote {target} ({len(events)} events)", markup=False, highlight=False)
