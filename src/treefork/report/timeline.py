"""Placing a job's agents, phases and markers on the timeline (pure).

Helpers here read events defensively: any field may be missing or of the wrong type, and
unknown kinds are ignored, so a report can always be drawn from whatever a job left behind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from treefork.report.records import AgentBar, AgentStatus, Lane, Marker, PhaseSpan

__all__ = (
    "PHASE_TRACK",
    "Clock",
    "agent_bars",
    "assign_tracks",
    "domain_order",
    "last_of",
    "markers_of",
    "number_of",
    "of_kind",
    "phase_spans",
    "place_on_lanes",
    "text_of",
)

PHASE_TRACK = 1
"""Each lane's first track shows the domain's phases; agents take the tracks below it."""


# -- tracks --------------------------------------------------------------------------------


def assign_tracks(spans: Sequence[tuple[float, float]]) -> list[int]:
    """Give each interval the lowest track free at its start (greedy interval partitioning).

    Intervals are taken in order of start; one touching another's end may share its track.
    The number of tracks used is the largest number of intervals open at one moment.

    Returns:
        The track of each interval, in the order given.
    """
    order = sorted(range(len(spans)), key=lambda index: (spans[index][0], spans[index][1]))
    track_ends: list[float] = []
    tracks = [0] * len(spans)
    for index in order:
        start, end = spans[index]
        free = next((t for t, busy_until in enumerate(track_ends) if busy_until <= start), None)
        if free is None:
            free = len(track_ends)
            track_ends.append(end)
        else:
            track_ends[free] = end
        tracks[index] = free
    return tracks


# -- helpers -------------------------------------------------------------------------------


def text_of(value: Any, default: str = "") -> str:
    """The value as text (``default`` for None)."""
    return default if value is None else str(value)


def number_of(value: Any, default: float = 0.0) -> float:
    """The value as a float (``default`` when it is not a number)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def of_kind(events: Sequence[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    """The events of one kind, in order."""
    return [event for event in events if event.get("event") == kind]


def last_of(events: Sequence[Mapping[str, Any]], kind: str) -> Mapping[str, Any]:
    """The last event of a kind (an empty mapping when there is none)."""
    found = of_kind(events, kind)
    return found[-1] if found else {}


class Clock:
    """Turns Unix times into seconds since the job started (the earliest event)."""

    def __init__(self, events: Sequence[Mapping[str, Any]]) -> None:
        times = [
            number_of(event.get("ts"), -1.0) for event in events if event.get("ts") is not None
        ]
        times = [t for t in times if t >= 0]
        self.origin = min(times) if times else None
        self.last = max(times) if times else 0.0

    def __call__(self, unix_time: Any) -> float:
        if self.origin is None:
            return 0.0
        return max(0.0, number_of(unix_time, self.origin) - self.origin)

    @property
    def duration(self) -> float:
        """Seconds from the first event to the last."""
        return self(self.last)


# -- agents --------------------------------------------------------------------------------


def _conflicted_items(events: Sequence[Mapping[str, Any]]) -> set[tuple[str, str]]:
    return {
        (text_of(event.get("domain")), text_of(event.get("item")))
        for event in of_kind(events, "conflict")
        if event.get("item") is not None
    }


def _agent_status(end: Mapping[str, Any], conflicted: bool) -> AgentStatus:
    status = text_of(end.get("status"), "failed")
    if status == "failed" and conflicted:
        return "conflict"
    if status in ("succeeded", "failed", "skipped"):
        return status  # type: ignore[return-value]
    return "failed"


def _agent_bar(
    key: tuple[str, str],
    start_event: Mapping[str, Any] | None,
    end_event: Mapping[str, Any] | None,
    clock: Clock,
    conflicted: set[tuple[str, str]],
) -> AgentBar:
    domain, item = key
    if end_event is None:
        assert start_event is not None
        start = clock(start_event.get("ts"))
        return AgentBar(domain, item, "unfinished", start, clock.duration, None, (), 0, 0.0)
    status = _agent_status(end_event, key in conflicted)
    started = end_event.get("started_at") or (start_event or {}).get("ts") or end_event.get("ts")
    finished = end_event.get("finished_at") or end_event.get("ts")
    start = clock(started)
    end = max(start, clock(finished))
    error = end_event.get("error") or end_event.get("reason")
    return AgentBar(
        domain,
        item,
        status,
        start,
        end,
        text_of(error) if error else None,
        tuple(text_of(path) for path in end_event.get("files") or ()),
        int(number_of(end_event.get("tokens"))),
        number_of(end_event.get("cost")),
    )


def agent_bars(events: Sequence[Mapping[str, Any]], clock: Clock) -> list[AgentBar]:
    """One bar per agent: its last ``agent_end`` (or its start, if it never ended)."""
    starts: dict[tuple[str, str], Mapping[str, Any]] = {}
    ends: dict[tuple[str, str], Mapping[str, Any]] = {}
    for event in events:
        kind = event.get("event")
        if kind not in ("agent_start", "agent_end"):
            continue
        key = (text_of(event.get("domain")), text_of(event.get("item")))
        (starts if kind == "agent_start" else ends)[key] = event
    conflicted = _conflicted_items(events)
    keys = list(dict.fromkeys([*starts, *ends]))
    return [_agent_bar(key, starts.get(key), ends.get(key), clock, conflicted) for key in keys]


# -- lanes ---------------------------------------------------------------------------------


def domain_order(events: Sequence[Mapping[str, Any]], bars: Iterable[AgentBar]) -> list[str]:
    """Domains in the order the routing chose them, then any others seen."""
    names: list[str] = [
        text_of(choice.get("name")) for choice in last_of(events, "routing").get("domains") or []
    ]
    names += [text_of(e.get("domain")) for e in events if e.get("event") == "domain_start"]
    names += [bar.domain for bar in bars]
    return [name for name in dict.fromkeys(names) if name]


def place_on_lanes(
    order: Sequence[str], bars: list[AgentBar], statuses: Mapping[str, str]
) -> tuple[list[Lane], list[AgentBar]]:
    """One lane per domain; each bar placed on a track of its lane (returns both)."""
    lanes: list[Lane] = []
    placed: list[AgentBar] = []
    offset = 0
    for domain in order:
        mine = [bar for bar in bars if bar.domain == domain]
        tracks = assign_tracks([(bar.start, bar.end) for bar in mine])
        placed += [
            _with_track(bar, PHASE_TRACK + track) for bar, track in zip(mine, tracks, strict=True)
        ]
        count = PHASE_TRACK + (max(tracks) + 1 if tracks else 0)
        lanes.append(Lane(domain, statuses.get(domain, "running"), offset, count))
        offset += count
    return lanes, placed


def _with_track(bar: AgentBar, track: int) -> AgentBar:
    return AgentBar(
        bar.domain,
        bar.item,
        bar.status,
        bar.start,
        bar.end,
        bar.error,
        bar.files,
        bar.tokens,
        bar.cost,
        track,
    )


# -- phases, markers, budget, failures -----------------------------------------------------


def phase_spans(events: Sequence[Mapping[str, Any]], clock: Clock) -> list[PhaseSpan]:
    """Each domain's phases from ``phase_start`` to ``phase_end`` (open ones to the end)."""
    open_phases: dict[tuple[str, str], float] = {}
    spans: list[PhaseSpan] = []
    for event in events:
        kind = event.get("event")
        key = (text_of(event.get("domain")), text_of(event.get("phase")))
        if kind == "phase_start":
            open_phases[key] = clock(event.get("ts"))
        elif kind == "phase_end" and key in open_phases:
            ok = event.get("ok")
            spans.append(
                PhaseSpan(
                    *key,
                    open_phases.pop(key),
                    clock(event.get("ts")),
                    None if ok is None else bool(ok),
                )
            )
    spans += [PhaseSpan(*key, start, clock.duration, None) for key, start in open_phases.items()]
    return sorted(spans, key=lambda span: (span.domain, span.start))


def _merge_marker(event: Mapping[str, Any], clock: Clock) -> Marker:
    item = event.get("item")
    into = text_of(event.get("into"))
    label = f"agent {item} merged into {into}" if item is not None else f"domain merged into {into}"
    return Marker("merge", text_of(event.get("domain")) or None, clock(event.get("ts")), label)


def markers_of(events: Sequence[Mapping[str, Any]], clock: Clock) -> list[Marker]:
    """Merges, conflicts, budget exhaustion and the final merge, as timeline markers."""
    markers: list[Marker] = []
    for event in events:
        kind = event.get("event")
        if kind == "merge":
            markers.append(_merge_marker(event, clock))
        elif kind == "conflict":
            paths = ", ".join(text_of(path) for path in event.get("paths") or [])
            who = f"agent {event['item']}" if event.get("item") is not None else "domain"
            label = f"conflict: {who} in {paths or 'unknown paths'}"
            markers.append(
                Marker(
                    "conflict", text_of(event.get("domain")) or None, clock(event.get("ts")), label
                )
            )
        elif kind == "budget" and event.get("exhausted"):
            label = f"budget reached: {text_of(event.get('reason'), 'limit reached')}"
            markers.append(
                Marker(
                    "budget", text_of(event.get("domain")) or None, clock(event.get("ts")), label
                )
            )
        elif kind == "merge_review" and event.get("status") == "merged":
            label = f"merged into {text_of(event.get('target_branch'), 'the base branch')}"
            markers.append(Marker("merge", None, clock(event.get("ts")), label))
    return markers
