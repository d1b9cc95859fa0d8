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

from collections.abc import Mapping, Sequence
from typing import Any

from treefork.report.records import (
    AgentBar,
    BudgetPoint,
    DomainRow,
    FailureRow,
    JobSummary,
    Lane,
    Marker,
    PhaseSpan,
    ReportModel,
)
from treefork.report.timeline import (
    Clock,
    agent_bars,
    assign_tracks,
    domain_order,
    last_of,
    markers_of,
    number_of,
    of_kind,
    phase_spans,
    place_on_lanes,
    text_of,
)

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


def _budget(
    events: Sequence[Mapping[str, Any]], bars: Sequence[AgentBar], clock: Clock
) -> list[BudgetPoint]:
    reported = [
        BudgetPoint(
            clock(event.get("ts")),
            int(number_of(event.get("tokens"))),
            number_of(event.get("cost")),
            int(number_of(event.get("agent_runs"))),
        )
        for event in of_kind(events, "budget")
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
    events: Sequence[Mapping[str, Any]], bars: Sequence[AgentBar], clock: Clock
) -> list[FailureRow]:
    rows = [
        FailureRow(bar.end, bar.domain, bar.item, bar.status, bar.error or bar.status)
        for bar in bars
        if bar.status in ("failed", "conflict")
    ]
    for event in events:
        kind = event.get("event")
        domain = text_of(event.get("domain"))
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
            paths = ", ".join(text_of(path) for path in event.get("paths") or [])
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
                    text_of(event.get("error"), "failed"),
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
        domain = text_of(event.get("domain"))
        if domain not in outcomes:
            continue
        mine = outcomes[domain]
        if kind == "domain_start":
            mine["prepare"] = "ok"
        elif kind == "phase_start":
            mine.setdefault(text_of(event.get("phase")), "running")
        elif kind == "phase_end":
            mine[text_of(event.get("phase"))] = "failed" if event.get("ok") is False else "ok"
        elif kind == "merge" and event.get("item") is None:
            mine["integrate"] = "ok"
        elif kind == "conflict" and event.get("item") is None:
            mine["integrate"] = "failed"
        elif kind == "domain_end":
            mine["finish"] = "failed" if event.get("status") == "failed" else "ok"
    return outcomes


def _job_outcomes(events: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    kinds = {text_of(event.get("event")) for event in events}
    outcomes: dict[str, str] = {}
    if "routing" in kinds:
        outcomes["supervisor"] = "ok"
    if kinds & {"domain_start", "domain_end"}:
        outcomes["dispatcher"] = "ok" if "merge_review" in kinds else "running"
    if "merge_review" in kinds:
        outcomes["aggregator"] = "ok"
        review = text_of(last_of(events, "merge_review").get("status"))
        outcomes["merge_review"] = "failed" if review in ("refused", "conflict") else "ok"
    return outcomes


# -- summary -------------------------------------------------------------------------------


def _domain_rows(
    events: Sequence[Mapping[str, Any]], order: Sequence[str], bars: Sequence[AgentBar]
) -> list[DomainRow]:
    reasons = {
        text_of(choice.get("name")): text_of(choice.get("reason"))
        for choice in last_of(events, "routing").get("domains") or []
    }
    ends = {text_of(event.get("domain")): event for event in of_kind(events, "domain_end")}
    rows = []
    for name in order:
        end = ends.get(name, {})
        mine = [bar for bar in bars if bar.domain == name]
        rows.append(
            DomainRow(
                name=name,
                reason=reasons.get(name, ""),
                status=text_of(end.get("status"), "running"),
                succeeded=int(
                    number_of(end.get("succeeded"), sum(b.status == "succeeded" for b in mine))
                ),
                failed=int(
                    number_of(
                        end.get("failed"), sum(b.status in ("failed", "conflict") for b in mine)
                    )
                ),
                skipped=int(
                    number_of(end.get("skipped"), sum(b.status == "skipped" for b in mine))
                ),
                files=len(end.get("files") or ()),
                tests_passed=end.get("tests_passed"),
            )
        )
    return rows


def _summary(
    job: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    clock: Clock,
    rows: Sequence[DomainRow],
    bars: Sequence[AgentBar],
) -> JobSummary:
    start = last_of(events, "job_start")
    routing = last_of(events, "routing")
    review = last_of(events, "merge_review")
    job_end = last_of(events, "job_end")
    job_id = text_of(
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
        task=text_of(start.get("task") or job.get("task")),
        repo=text_of(start.get("repo") or job.get("repo")),
        base_branch=text_of(start.get("base_branch") or job.get("base_branch")),
        status=text_of(job_end.get("status") or job.get("status"), "running"),
        merge_status=text_of(
            review.get("status")
            or job.get("merge_status")
            or (job.get("merge") or {}).get("status"),
            "pending",
        ),
        merge_message=text_of(
            review.get("message")
            or job.get("merge_message")
            or (job.get("merge") or {}).get("message")
        ),
        started_at=clock.origin,
        duration=clock.duration,
        analyzer=text_of(routing.get("analyzer") or job.get("analyzer")),
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
    events = sorted(events, key=lambda event: number_of(event.get("ts")))  # stable: ties keep order
    clock = Clock(events)
    bars = agent_bars(events, clock)
    order = domain_order(events, bars)
    rows = _domain_rows(events, order, bars)
    lanes, placed = place_on_lanes(order, bars, {row.name: row.status for row in rows})
    return ReportModel(
        summary=_summary(job, events, clock, rows, placed),
        lanes=tuple(lanes),
        bars=tuple(placed),
        phases=tuple(phase_spans(events, clock)),
        markers=tuple(markers_of(events, clock)),
        budget=tuple(_budget(events, placed, clock)),
        budget_limit=_budget_limit(job),
        failures=tuple(_failures(events, placed, clock)),
        phase_outcomes=_phase_outcomes(events, order),
        job_outcomes=_job_outcomes(events),
    )
