"""Live progress for the command line: a bar per domain on a terminal, plain lines otherwise.

Both are event sinks (see :mod:`treefork.events`); logs and progress go to stderr so that
``--json`` output on stdout stays machine-readable.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ("LiveProgress", "PlainProgress", "make_progress")


class PlainProgress:
    """One line per notable event, for logs and pipes."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def __call__(self, event: dict[str, Any]) -> None:
        line = _describe(event)
        if line:
            print(line, file=self.stream, flush=True)


def _routing(event: dict[str, Any]) -> str:
    names = ", ".join(f"{c['name']} ({c['reason']})" for c in event.get("domains", []))
    return f"domains: {names or 'none'}" + (f" — {event['note']}" if event.get("note") else "")


def _agent_end(event: dict[str, Any]) -> str:
    detail = event.get("error") or event.get("reason") or ", ".join(event.get("files") or [])
    line = f"[{event.get('domain', '')}] agent {event.get('item')}: {event.get('status')}"
    return line + (f" — {detail}" if detail else "")


def _domain_end(event: dict[str, Any]) -> str:
    return (
        f"[{event.get('domain', '')}] {event['status']}: {event.get('succeeded', 0)} succeeded, "
        f"{event.get('failed', 0)} failed, {event.get('skipped', 0)} skipped"
    ) + (f" — {event['error']}" if event.get("error") else "")


_LINES: dict[str, Callable[[dict[str, Any]], str]] = {
    "routing": _routing,
    "phase_start": lambda event: f"[{event.get('domain', '')}] {event['phase']} ...",
    "agent_end": _agent_end,
    "conflict": lambda event: (
        f"[{event.get('domain', '')}] conflict in {', '.join(event.get('paths', []))}"
    ),
    "domain_end": _domain_end,
    "merge_review": lambda event: f"merge: {event.get('status')} — {event.get('message')}",
}


def _describe(event: dict[str, Any]) -> str | None:
    """One plain line for the events worth a line; None for the others."""
    describe = _LINES.get(event["event"])
    return describe(event) if describe else None


class LiveProgress:
    """A rich progress display: one bar per domain with running, done and failed counts."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.fields[domain]:<12}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def __enter__(self) -> LiveProgress:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    def _task(self, domain: str) -> TaskID:
        if domain not in self.tasks:
            self.tasks[domain] = self.progress.add_task(
                "", total=None, domain=domain, detail="starting"
            )
        return self.tasks[domain]

    def _refresh(self, domain: str, phase: str | None = None) -> None:
        counts = self.counts[domain]
        detail = (
            f"running {counts['running']}  done {counts['succeeded']}  failed {counts['failed']}"
            + (f"  skipped {counts['skipped']}" if counts["skipped"] else "")
        )
        if phase:
            detail = f"{phase:<7} {detail}"
        done = counts["succeeded"] + counts["failed"] + counts["skipped"]
        self.progress.update(self._task(domain), completed=done, detail=detail)

    def __call__(self, event: dict[str, Any]) -> None:
        kind, domain = event["event"], event.get("domain")
        if kind == "routing":
            line = _describe(event)
            if line:
                self.console.print(line)
            return
        if not domain:
            return
        counts = self.counts[domain]
        if kind == "phase_start":
            if event["phase"] == "map":
                self.progress.update(self._task(domain), total=event.get("items") or 0)
            self._refresh(domain, event["phase"])
        elif kind == "agent_start":
            counts["running"] += 1
            self._refresh(domain, "map")
        elif kind == "agent_end":
            if event.get("status") != "skipped":
                counts["running"] -= 1
            counts[str(event.get("status"))] += 1
            self._refresh(domain, "map")
        elif kind == "domain_end":
            self._refresh(domain, str(event.get("status")))


def make_progress(*, live: bool | None = None) -> LiveProgress | PlainProgress:
    """A live display on a terminal, plain lines otherwise."""
    if live is None:
        live = sys.stderr.isatty()
    return LiveProgress() if live else PlainProgress()
