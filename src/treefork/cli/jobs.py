"""``treefork jobs`` (a table of every job) and ``treefork discard JOB``.

A job whose row says ``running`` but whose lock nobody holds was interrupted (killed,
crashed, rebooted): the table shows it as ``interrupted``; ``treefork resume`` continues it.

Exit codes: 0 done; 2 unknown job; 3 the job is running in another process.
"""

from __future__ import annotations

import json
import time
from typing import Any

import typer
from rich.table import Table

from treefork.cli.app import app
from treefork.cli.console import make_console
from treefork.cli.run import EXIT_LOCKED, _say
from treefork.errors import JobLockedError
from treefork.home import treefork_home
from treefork.store import JobLock, shared_store

__all__ = ("discard", "display_status", "jobs")

_STYLE = {
    "succeeded": "green",
    "partial": "yellow",
    "failed": "red",
    "running": "cyan",
    "interrupted": "magenta",
    "skipped": "dim",
}


def display_status(job: dict[str, Any]) -> str:
    """The job's status for people: ``running`` only while its process is alive."""
    status = str(job["status"])
    if status == "running" and not JobLock(treefork_home(), job["job_id"]).is_held_elsewhere():
        return "interrupted"
    return status


def _duration(job: dict[str, Any], status: str) -> float:
    """Seconds from the start to the end; a job that never ended (interrupted) counts up
    to the last thing it recorded (a job, domain or agent row)."""
    end = job["finished_at"] or (time.time() if status == "running" else job["last_activity"])
    return max(0.0, float(end) - float(job["created_at"]))


def _format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (
        f"{hours}h{minutes:02d}m"
        if hours
        else (f"{minutes}m{secs:02d}s" if minutes else f"{secs}s")
    )


def _started(job: dict[str, Any]) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(job["created_at"])))


def _row(job: dict[str, Any]) -> dict[str, Any]:
    status = display_status(job)
    return {
        "job_id": job["job_id"],
        "workflow": job["workflow"] or "-",
        "status": status,
        "merge": job["merge_status"] or "-",
        "succeeded": job["succeeded"],
        "failed": job["failed"],
        "skipped": job["skipped"],
        "dlq": job["dlq"],
        "started": _started(job),
        "duration": round(_duration(job, status), 1),
        "repo": job["repo"],
        "discarded": bool(job["discarded"]),
    }


@app.command()
def jobs(as_json: bool = typer.Option(False, "--json", help="One JSON object per job.")) -> None:
    """List jobs: id, workflow, status, item counts, started, duration."""
    rows = [_row(job) for job in shared_store(treefork_home()).jobs()]
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return
    table = Table(title="treefork jobs", title_justify="left")
    for column in (
        "job",
        "workflow",
        "status",
        "merge",
        "ok",
        "failed",
        "skipped",
        "dlq",
        "started",
        "duration",
    ):
        table.add_column(column)
    for row in rows:
        style = _STYLE.get(row["status"], "white")
        status = row["status"] + (" (discarded)" if row["discarded"] else "")
        table.add_row(
            row["job_id"],
            row["workflow"],
            f"[{style}]{status}[/]",
            row["merge"],
            str(row["succeeded"]),
            str(row["failed"]),
            str(row["skipped"]),
            str(row["dlq"]),
            row["started"],
            _format_duration(row["duration"]),
        )
    make_console().print(table)


@app.command()
def discard(job_id: str = typer.Argument(..., help="The job whose work you do not want.")) -> None:
    """Mark a job discarded: `treefork worktree gc` may then remove its worktrees."""
    home = treefork_home()
    store = shared_store(home)
    if store.job(job_id) is None:
        _say(f"error: no job {job_id!r}")
        raise typer.Exit(2)
    try:
        with JobLock(home, job_id):
            store.update_job(job_id, discarded=1)
    except JobLockedError as error:
        _say(f"error: {error}")
        raise typer.Exit(EXIT_LOCKED) from None
    print(
        f"job {job_id} discarded; `treefork worktree gc` removes its worktrees and merged branches"
    )
