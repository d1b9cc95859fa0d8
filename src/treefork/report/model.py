"""The run report's page model: a job's events turned into what the page shows (pure).

:func:`build_report_model` takes the job's summary (a row of the job store or the graph's
final state; optional) and its progress events (see :mod:`treefork.events`) in the order
they were emitted, and returns a :class:`ReportModel`. No I/O, no clock: times are seconds
since the job started, taken from the events' ``ts``.

Events it reads (others are ignored, missing fields tolerated):

- ``job_start`` (task, repo, base_branch), ``routing`` (domains with reasons, analyzer),
  ``job_end`` (status), ``merge_review`` (status, message, commit, target_branch);
- ``domain_start``, ``domain_end`` (status, counts, files, error);
- ``phase_start`` / ``phase_end`` (domain, phase, ok);
- ``agent_start`` / ``agent_end`` (domain, item, status, started_at, finished_at, error,
  files, tokens, cost); the last ``agent_end`` of an item wins (a resumed job may run it
  again); an agent that started and never ended is shown as ``unfinished``;
- ``merge`` (an agent into its domain when ``item`` is set, else a domain into the
  session), ``conflict`` (paths), ``budget`` (tokens, cost, agent_runs used; exhausted).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = (
    "AgentBar",
    "BudgetPoint",
    "DomainRow",
    "FailureRow",
    "JobSummary",
    "Lane",
    "Marker",
    "PhaseSpan",
    "ReportModel",
    "assign_tracks",
    "build_report_model",
)

AgentStatus = Literal["succeeded", "failed", "conflict", "skipped", "unfinished"]
"""How an agent's bar is coloured; ``conflict`` is a failure to merge its work."""

_PHASE_TRACK = 1
"""Each lane's first track shows the domain's phases; agents take the tracks below it."""


@dataclass(frozen=True, slots=True)
class AgentBar:
    """One agent (one work item) on the timeline."""

    domain: str
    item: str
    status: AgentStatus
    start: float
    """Seconds since the job started."""
    end: float
    """Seconds since the job started (``start`` for a skipped item)."""
    error: str | None
    files: tuple[str, ...]
    tokens: int
    cost: float
    track: int = 0
    """Row inside the domain's lane, so that agents running at once do not overlap."""


@dataclass(frozen=True, slots=True)
class PhaseSpan:
    """One phase of a domain (setup, map, reduce, tests, merge)."""

    domain: str
    phase: str
    start: float
    end: float
    ok: bool | None
    """None while the phase had not ended."""


@dataclass(frozen=True, slots=True)
class Marker:
    """A point event on the timeline."""

    kind: Literal["merge", "conflict", "budget"]
    domain: str | None
    """The lane it belongs to; None for job-wide events (the final merge)."""
    at: float
    label: str


@dataclass(frozen=True, slots=True)
class Lane:
    """One domain's lane: a phase track, then as many agent tracks as ran at once."""

    domain: str
    status: str
    offset: int
    """Index of the lane's first track on the whole timeline."""
    tracks: int
    """Tracks in the lane, the phase track included."""


@dataclass(frozen=True, slots=True)
class BudgetPoint:
    """Resources used by the job up to a moment."""

    at: float
    tokens: int
    cost: float
    agent_runs: int


@dataclass(frozen=True, slots=True)
class FailureRow:
    """A failure with its error: an agent, a conflict, a phase or a whole domain."""

    at: float
    domain: str
    item: str | None
    kind: str
    error: str


@dataclass(frozen=True, slots=True)
class DomainRow:
    """A chosen domain in the summary."""

    name: str
    reason: str
    status: str
    succeeded: int
    failed: int
    skipped: int
    files: int
    tests_passed: bool | None


@dataclass(frozen=True, slots=True)
class JobSummary:
    """The job at a glance."""

    job_id: str
    task: str
    repo: str
    base_branch: str
    status: str
    merge_status: str
    merge_message: str
    started_at: float | None
    """Unix time of the first event (None without events)."""
    duration: float
    analyzer: str
    agents: Mapping[str, int]
    """Agents by status."""
    files: tuple[str, ...]
    domains: tuple[DomainRow, ...]


@dataclass(frozen=True, slots=True)
class ReportModel:
    """Everything the report page shows."""

    summary: JobSummary
    lanes: tuple[Lane, ...]
    bars: tuple[AgentBar, ...]
    phases: tuple[PhaseSpan, ...]
    markers: tuple[Marker, ...]
    budget: tuple[BudgetPoint, ...]
    budget_limit: Mapping[str, float | None] = field(default_factory=dict)
    failures: tuple[FailureRow, ...] = ()
    phase_outcomes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Per domain, per sub-graph node, ``ok``, ``failed`` or ``running`` (for the graph)."""
    job_outcomes: Mapping[str, str] = field(default_factory=dict)
    """Per top-level node, ``ok``, ``failed`` or ``running`` (for the graph)."""


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


def _text(value: Any, default: str = "") -> str:
    return default if value is None else str(value)


def _number(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _of_kind(events: Sequence[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return [event for event in events if event.get("event") == kind]


def _last(events: Sequence[Mapping[str, Any]], kind: str) -> Mapping[str, Any]:
    found = _of_kind(events, kind)
    return found[-1] if found else {}


class _Clock:
    """Turns Unix times into seconds since the job started."""

    def __init__(self, events: Sequence[Mapping[str, Any]]) -> None:
        times = [_number(event.get("ts"), -1.0) for event in events if event.get("ts") is not None]
        times = [t for t in times if t >= 0]
        self.origin = min(times) if times else None
        self.last = max(times) if times else 0.0

    def __call__(self, unix_time: Any) -> float:
        if self.origin is None:
            return 0.0
        return max(0.0, _number(unix_time, self.origin) - self.origin)

    @property
    def duration(self) -> float:
        return self(self.last)


# -- agents --------------------------------------------------------------------------------


def _conflicted_items(events: Sequence[Mapping[str, Any]]) -> set[tuple[str, str]]:
    return {
        (_text(event.get("domain")), _text(event.get("item")))
        for event in _of_kind(events, "conflict")
        if event.get("item") is not None
    }


def _agent_status(end: Mapping[str, Any], conflicted: bool) -> AgentStatus:
    status = _text(end.get("status"), "failed")
    if status == "failed" and conflicted:
        return "conflict"
    if status in ("succeeded", "failed", "skipped"):
        return status  # type: ignore[return-value]
    return "failed"


def _agent_bar(
    key: tuple[str, str],
    start_event: Mapping[str, Any] | None,
    end_event: Mapping[str, Any] | None,
    clock: _Clock,
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
        _text(error) if error else None,
        tuple(_text(path) for path in end_event.get("files") or ()),
        int(_number(end_event.get("tokens"))),
        _number(end_event.get("cost")),
    )


def _agents(events: Sequence[Mapping[str, Any]], clock: _Clock) -> list[AgentBar]:
    starts: dict[tuple[str, str], Mapping[str, Any]] = {}
    ends: dict[tuple[str, str], Mapping[str, Any]] = {}
    for event in events:
        kind = event.get("event")
        if kind not in ("agent_start", "agent_end"):
            continue
        key = (_text(event.get("domain")), _text(event.get("item")))
        (starts if kind == "agent_start" else ends)[key] = event
    conflicted = _conflicted_items(events)
    keys = list(dict.fromkeys([*starts, *ends]))
    return [_agent_bar(key, starts.get(key), ends.get(key), clock, conflicted) for key in keys]


# -- lanes ---------------------------------------------------------------------------------


def _domain_order(events: Sequence[Mapping[str, Any]], bars: Iterable[AgentBar]) -> list[str]:
    names: list[str] = [
        _text(choice.get("name")) for choice in _last(events, "routing").get("domains") or []
    ]
    names += [_text(e.get("domain")) for e in events if e.get("event") == "domain_start"]
    names += [bar.domain for bar in bars]
    return [name for name in dict.fromkeys(names) if name]


def _lanes(
    order: Sequence[str], bars: list[AgentBar], statuses: Mapping[str, str]
) -> tuple[list[Lane], list[AgentBar]]:
    lanes: list[Lane] = []
    placed: list[AgentBar] = []
    offset = 0
    for domain in order:
        mine = [bar for bar in bars if bar.domain == domain]
        tracks = assign_tracks([(bar.start, bar.end) for bar in mine])
        placed += [
            _with_track(bar, _PHASE_TRACK + track) for bar, track in zip(mine, tracks, strict=True)
        ]
        count = _PHASE_TRACK + (max(tracks) + 1 if tracks else 0)
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


def _phases(events: Sequence[Mapping[str, Any]], clock: _Clock) -> list[PhaseSpan]:
    open_phases: dict[tuple[str, str], float] = {}
    spans: list[PhaseSpan] = []
    for event in events:
        kind = event.get("event")
        key = (_text(event.get("domain")), _text(event.get("phase")))
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


def _merge_marker(event: Mapping[str, Any], clock: _Clock) -> Marker:
    item = event.get("item")
    into = _text(event.get("into"))
    label = f"agent {item} merged into {into}" if item is not None else f"domain merged into {into}"
    return Marker("merge", _text(event.get("domain")) or None, clock(event.get("ts")), label)


def _markers(events: Sequence[Mapping[str, Any]], clock: _Clock) -> list[Marker]:
    markers: list[Marker] = []
    for event in events:
        kind = event.get("event")
        if kind == "merge":
            markers.append(_merge_marker(event, clock))
        elif kind == "conflict":
            paths = ", ".join(_text(path) for path in event.get("paths") or [])
            who = f"agent {event['item']}" if event.get("item") is not None else "domain"
            label = f"conflict: {who} in {paths or 'unknown paths'}"
            markers.append(
                Marker(
                    "conflict", _text(event.get("domain")) or None, clock(event.get("ts")), label
                )
            )
        elif kind == "budget" and event.get("exhausted"):
            label = f"budget reached: {_text(event.get('reason'), 'limit reached')}"
            markers.append(
                Marker("budget", _text(event.get("domain")) or None, clock(event.get("ts")), label)
            )
        elif kind == "merge_review" and event.get("status") == "merged":
            label = f"merged into {_text(event.get('target_branch'), 'the base branch')}"
            markers.append(Marker("merge", None, clock(event.get("ts")), label))
    return markers


def _budget(
    events: Sequence[Mapping[str, Any]], bars: Sequence[AgentBar], clock: _Clock
) -> list[BudgetPoint]:
    reported = [
        BudgetPoint(
            clock(event.get("ts")),
            int(_number(event.get("tokens"))),
            _number(event.get("cost")),
            int(_number(event.get("agent_runs"))),
        )
        for event in _of_kind(events, "budget")
        if event.get("tokens") is not None
    ]
    if reported:
        return [BudgetPoint(0.0, 0, 0.0, 0), *reported]
    # Without a limit no budget event is sent: add up what the agents reported.
    points = [BudgetPoint(0.0, 0, 0.0, 0)]
    finished = sorted(
        (bar for bar in bars if bar.status not in ("skipped", "unfinished")),
        key=lambda bar: bar.end,
    )
    for bar in finished:
        last = points[-1]
        points.append(
            BudgetPoint(
                bar.end, last.tokens + bar.tokens, last.cost + bar.cost, last.agent_runs + 1
            )
        )
    return points


def _failures(
    events: Sequence[Mapping[str, Any]], bars: Sequence[AgentBar], clock: _Clock
) -> list[FailureRow]:
    rows = [
        FailureRow(bar.end, bar.domain, bar.item, bar.status, bar.error or bar.status)
        for bar in bars
        if bar.status in ("failed", "conflict")
    ]
    for event in events:
        kind = event.get("event")
        domain = _text(event.get("domain"))
        if kind == "phase_end" and event.get("ok") is False:
            rows.append(
                FailureRow(
                    clock(event.get("ts")),
                    domain,
                    None,
                    f"{event.get('phase')} phase",
                    "the phase failed",
                )
            )
        elif kind == "conflict" and event.get("item") is None:
            paths = ", ".join(_text(path) for path in event.get("paths") or [])
            rows.append(
                FailureRow(
                    clock(event.get("ts")), domain, None, "conflict", f"conflicts in {paths}"
                )
            )
        elif kind == "domain_end" and event.get("status") == "failed":
            rows.append(
                FailureRow(
                    clock(event.get("ts")),
                    domain,
                    None,
                    "domain",
                    _text(event.get("error"), "failed"),
                )
            )
    return sorted(rows, key=lambda row: row.at)


# -- outcomes for the graph ----------------------------------------------------------------


def _phase_outcomes(
    events: Sequence[Mapping[str, Any]], domains: Sequence[str]
) -> dict[str, dict[str, str]]:
    outcomes: dict[str, dict[str, str]] = {name: {} for name in domains}
    for event in events:
        kind = event.get("event")
        domain = _text(event.get("domain"))
        if domain not in outcomes:
            continue
        mine = outcomes[domain]
        if kind == "domain_start":
            mine["prepare"] = "ok"
        elif kind == "phase_start":
            mine.setdefault(_text(event.get("phase")), "running")
        elif kind == "phase_end":
            mine[_text(event.get("phase"))] = "failed" if event.get("ok") is False else "ok"
        elif kind == "merge" and event.get("item") is None:
            mine["integrate"] = "ok"
        elif kind == "conflict" and event.get("item") is None:
            mine["integrate"] = "failed"
        elif kind == "domain_end":
            mine["finish"] = "failed" if event.get("status") == "failed" else "ok"
    return outcomes


def _job_outcomes(events: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    kinds = {_text(event.get("event")) for event in events}
    outcomes: dict[str, str] = {}
    if "routing" in kinds:
        outcomes["supervisor"] = "ok"
    if kinds & {"domain_start", "domain_end"}:
        outcomes["dispatcher"] = "ok" if "merge_review" in kinds else "running"
    if "merge_review" in kinds:
        outcomes["aggregator"] = "ok"
        review = _text(_last(events, "merge_review").get("status"))
        outcomes["merge_review"] = "failed" if review in ("refused", "conflict") else "ok"
    return outcomes


# -- summary -------------------------------------------------------------------------------


def _domain_rows(
    events: Sequence[Mapping[str, Any]], order: Sequence[str], bars: Sequence[AgentBar]
) -> list[DomainRow]:
    reasons = {
        _text(choice.get("name")): _text(choice.get("reason"))
        for choice in _last(events, "routing").get("domains") or []
    }
    ends = {_text(event.get("domain")): event for event in _of_kind(events, "domain_end")}
    rows = []
    for name in order:
        end = ends.get(name, {})
        mine = [bar for bar in bars if bar.domain == name]
        rows.append(
            DomainRow(
                name=name,
                reason=reasons.get(name, ""),
                status=_text(end.get("status"), "running"),
                succeeded=int(
                    _number(end.get("succeeded"), sum(b.status == "succeeded" for b in mine))
                ),
                failed=int(
                    _number(
                        end.get("failed"), sum(b.status in ("failed", "conflict") for b in mine)
                    )
                ),
                skipped=int(_number(end.get("skipped"), sum(b.status == "skipped" for b in mine))),
                files=len(end.get("files") or ()),
                tests_passed=end.get("tests_passed"),
            )
        )
    return rows


def _summary(
    job: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    clock: _Clock,
    rows: Sequence[DomainRow],
    bars: Sequence[AgentBar],
) -> JobSummary:
    start = _last(events, "job_start")
    routing = _last(events, "routing")
    review = _last(events, "merge_review")
    job_end = _last(events, "job_end")
    job_id = _text(
        job.get("job_id") or next((e.get("job_id") for e in events if e.get("job_id")), "")
    )
    counts: dict[str, int] = {}
    for bar in bars:
        counts[bar.status] = counts.get(bar.status, 0) + 1
    files = sorted(
        {path for bar in bars for path in bar.files} | set(job.get("aggregated_files") or ())
    )
    return JobSummary(
        job_id=job_id,
        task=_text(start.get("task") or job.get("task")),
        repo=_text(start.get("repo") or job.get("repo")),
        base_branch=_text(start.get("base_branch") or job.get("base_branch")),
        status=_text(job_end.get("status") or job.get("status"), "running"),
        merge_status=_text(
            review.get("status")
            or job.get("merge_status")
            or (job.get("merge") or {}).get("status"),
            "pending",
        ),
        merge_message=_text(
            review.get("message")
            or job.get("merge_message")
            or (job.get("merge") or {}).get("message")
        ),
        started_at=clock.origin,
        duration=clock.duration,
        analyzer=_text(routing.get("analyzer") or job.get("analyzer")),
        agents=counts,
        files=tuple(files),
        domains=tuple(rows),
    )


def _budget_limit(job: Mapping[str, Any]) -> dict[str, float | None]:
    limit = (job.get("budget") or {}).get("limit") or {}
    return {
        key: limit.get(key)
        for key in ("tokens", "cost", "agent_runs")
        if limit.get(key) is not None
    }


def build_report_model(
    job: Mapping[str, Any] | None, events: Sequence[Mapping[str, Any]]
) -> ReportModel:
    """The report page's model for one job.

    Args:
        job: What is known of the job besides its events (a job store row, or the graph's
            final state); None when only the events are known.
        events: The job's progress events, in the order they were emitted.

    Returns:
        The model: summary, one lane per domain with its agents' bars placed on tracks,
        phases, merge/conflict/budget markers, budget over time and failures.
    """
    job = job or {}
    events = sorted(events, key=lambda event: _number(event.get("ts")))  # stable: ties keep order
    clock = _Clock(events)
    bars = _agents(events, clock)
    order = _domain_order(events, bars)
    rows = _domain_rows(events, order, bars)
    lanes, placed = _lanes(order, bars, {row.name: row.status for row in rows})
    return ReportModel(
        summary=_summary(job, events, clock, rows, placed),
        lanes=tuple(lanes),
        bars=tuple(placed),
        phases=tuple(_phases(events, clock)),
        markers=tuple(_markers(events, clock)),
        budget=tuple(_budget(events, placed, clock)),
        budget_limit=_budget_limit(job),
        failures=tuple(_failures(events, placed, clock)),
        phase_outcomes=_phase_outcomes(events, order),
        job_outcomes=_job_outcomes(events),
    )
