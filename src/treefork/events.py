"""Progress events: one stream for apps, notebooks, Studio, the CLI and the job log.

Nodes emit events through an :class:`Emitter`. Each event is a flat JSON-compatible dict with
``event`` (its kind), ``job_id`` and ``ts`` (Unix time). They go to LangGraph's custom stream
(``graph.astream(..., stream_mode="custom")``), to the ``treefork.events`` logger, and to any
extra sinks (the job store, a progress display). Secret values are masked in every event
(:mod:`treefork.core.masking`).

Kinds: ``job_start``, ``routing``, ``domain_start``, ``phase_start``, ``phase_end``,
``agent_start``, ``agent_end``, ``step_start``, ``step_end``, ``merge``, ``conflict``,
``budget``, ``worktree``, ``domain_end``, ``merge_review``, ``job_end``, and for operations
on a job later: ``resume`` (what a resumed run reuses, merges or runs again) and ``dlq``
(dead letter queue retries).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from langgraph.config import get_stream_writer

from treefork.core.masking import mask

__all__ = ("Emitter", "EventSink", "stream_writer_or_none")

logger = logging.getLogger("treefork.events")

_NOT_LOGGED = frozenset({"event", "job_id", "ts", "results"})

EventSink = Callable[[dict[str, Any]], None]
"""Something that receives events."""


def stream_writer_or_none() -> EventSink | None:
    """LangGraph's custom stream writer when running inside a graph, else None."""
    try:
        return get_stream_writer()
    except RuntimeError:
        return None


class Emitter:
    """Sends events of one job to every sink; a failing sink never fails the job."""

    def __init__(self, job_id: str, sinks: list[EventSink] | None = None) -> None:
        self.job_id = job_id
        self.sinks: list[EventSink] = list(sinks or [])

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        """Send one event; returns it."""
        payload: dict[str, Any] = mask(
            {"event": event, "job_id": self.job_id, "ts": time.time(), **fields}
        )
        logger.info(
            "%s %s", event, {k: v for k, v in payload.items() if k not in _NOT_LOGGED}
        )
        for sink in self.sinks:
            try:
                sink(payload)
            except Exception:  # a display or log sink must never break the job
                logger.exception("event sink failed for %s", event)
        return payload

    def __call__(self, payload: dict[str, Any]) -> None:
        """Forward an event built elsewhere (e.g. by the step runner)."""
        fields = {k: v for k, v in payload.items() if k not in ("event", "job_id", "ts")}
        self.emit(str(payload.get("event", "event")), **fields)
