"""The report's page model, built from events alone (no I/O)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from treefork.report.graph import GraphShape, flow_layout, topological_order
from treefork.report.model import assign_tracks, build_report_model

T0 = 1_800_000_000.0


def _event(kind: str, at: float, **fields: Any) -> dict[str, Any]:
    return {"event": kind, "job_id": "job-1", "ts": T0 + at, **fields}


def _agent(
    domain: str, item: str, start: float, end: float, status: str, **fields: Any
) -> list[dict[str, Any]]:
    return [
        _event("agent_start", start, domain=domain, item=item, index=0),
        _event(
            "agent_end",
            end,
            domain=domain,
            item=item,
            status=status,
            started_at=T0 + start,
            finished_at=T0 + end,
            **fields,
        ),
    ]


def _job() -> list[dict[str, Any]]:
    return [
        _event("job_start", 0.0, task="Fix the docs and api", repo="/r", base_branch="main"),
        _event(
            "routing",
            0.1,
            analyzer="rules",
            domains=[
                {"name": "docs", "reason": "keyword 'docs'"},
                {"name": "api", "reason": "keyword 'api'"},
            ],
        ),
        _event("domain_start", 0.2, domain="docs"),
        _event("domain_start", 0.2, domain="api"),
        _event("phase_start", 0.3, domain="docs", phase="map", items=3),
        *_agent("docs", "a", 1.0, 3.0, "succeeded", files=["docs/a.md"], tokens=100, cost=0.5),
        *_agent("docs", "b", 1.5, 2.5, "succeeded", files=["docs/b.md"], tokens=50, cost=0.25),
        _event("merge", 3.1, domain="docs", item="a", into="treefork/job-1/domains/docs"),
        *_agent("docs", "c", 3.0, 4.0, "failed", error="exit code 3"),
        _event("conflict", 4.5, domain="api", item="x", paths=["src/app.py"]),
        *_agent("api", "x", 2.0, 4.4, "failed", error="conflicts in src/app.py"),
        _event("agent_end", 4.6, domain="api", item="y", status="skipped", reason="budget spent"),
        _event(
            "budget",
            4.6,
            exhausted=True,
            reason="budget spent",
            tokens=150,
            cost=0.75,
            agent_runs=4,
        ),
        _event("phase_end", 5.0, domain="docs", phase="map", ok=True),
        _event(
            "domain_end",
            5.5,
            domain="docs",
            status="partial",
            succeeded=2,
            failed=1,
            skipped=0,
            files=["docs/a.md", "docs/b.md"],
        ),
        _event(
            "domain_end",
            5.6,
            domain="api",
            status="failed",
            error="every item failed",
            succeeded=0,
            failed=1,
            skipped=1,
        ),
        _event(
            "merge_review",
            6.0,
            status="merged",
            message="merged into main",
            target_branch="main",
            commit="abc",
        ),
        _event("job_end", 6.0, status="partial", merge="merged"),
    ]


def test_one_bar_per_agent_coloured_by_outcome() -> None:
    model = build_report_model(None, _job())

    statuses = {(bar.domain, bar.item): bar.status for bar in model.bars}
    assert statuses == {
        ("docs", "a"): "succeeded",
        ("docs", "b"): "succeeded",
        ("docs", "c"): "failed",
        ("api", "x"): "conflict",
        ("api", "y"): "skipped",
    }
    a = next(bar for bar in model.bars if bar.item == "a")
    assert (a.start, a.end, a.files, a.tokens) == (1.0, 3.0, ("docs/a.md",), 100)


def test_lanes_follow_the_routing_and_agents_running_at_once_get_their_own_tracks() -> None:
    model = build_report_model(None, _job())

    assert [(lane.domain, lane.offset, lane.tracks) for lane in model.lanes] == [
        ("docs", 0, 3),
        ("api", 3, 2),
    ]
    tracks = {bar.item: bar.track for bar in model.bars if bar.domain == "docs"}
    assert tracks["a"] != tracks["b"]  # a and b overlap
    assert tracks["c"] in (tracks["a"], tracks["b"])  # c starts when a ends
    assert [lane.status for lane in model.lanes] == ["partial", "failed"]


def test_summary_markers_budget_and_failures() -> None:
    model = build_report_model({"budget": {"limit": {"agent_runs": 4, "tokens": None}}}, _job())

    summary = model.summary
    assert (summary.job_id, summary.task, summary.status, summary.merge_status) == (
        "job-1",
        "Fix the docs and api",
        "partial",
        "merged",
    )
    assert summary.duration == 6.0
    assert summary.files == ("docs/a.md", "docs/b.md")
    assert [row.reason for row in summary.domains] == ["keyword 'docs'", "keyword 'api'"]
    assert [(m.kind, m.domain) for m in model.markers] == [
        ("merge", "docs"),
        ("conflict", "api"),
        ("budget", None),
        ("merge", None),
    ]
    assert model.budget[-1].agent_runs == 4 and model.budget[0].at == 0.0
    assert model.budget_limit == {"agent_runs": 4}
    kinds = [(row.domain, row.item, row.kind) for row in model.failures]
    assert kinds == [("docs", "c", "failed"), ("api", "x", "conflict"), ("api", None, "domain")]


def test_without_budget_events_use_is_added_up_from_the_agents() -> None:
    events = [e for e in _job() if e["event"] != "budget"]

    model = build_report_model(None, events)

    assert [(p.tokens, p.agent_runs) for p in model.budget] == [
        (0, 0),
        (50, 1),
        (150, 2),
        (150, 3),
        (150, 4),
    ]


def test_an_agent_that_never_ended_is_unfinished_up_to_the_last_event() -> None:
    events = [
        *_job()[:5],
        _event("agent_start", 1.0, domain="docs", item="z"),
        _event("phase_start", 2.0, domain="docs", phase="x"),
    ]

    model = build_report_model(None, events)

    [bar] = model.bars
    assert (bar.status, bar.start, bar.end) == ("unfinished", 1.0, 2.0)
    assert model.summary.status == "running"
    assert model.phase_outcomes["docs"]["map"] == "running"


def test_a_rerun_item_keeps_its_last_outcome_and_unknown_events_are_ignored() -> None:
    events = [
        *_agent("docs", "a", 0.0, 1.0, "failed", error="first try"),
        {"event": "something_new", "ts": T0 + 1.5, "job_id": "job-1"},
        *_agent("docs", "a", 2.0, 3.0, "succeeded"),
        {"event": "agent_end", "job_id": "job-1"},  # no time, no domain: still no crash
    ]

    model = build_report_model(None, events)

    # The last outcome of docs/a; an agent event without a domain has no lane to go in.
    assert [(bar.domain, bar.item, bar.status) for bar in model.bars] == [
        ("docs", "a", "succeeded")
    ]


def test_no_events_give_an_empty_model() -> None:
    model = build_report_model({"job_id": "j"}, [])

    assert model.summary.job_id == "j"
    assert model.bars == () and model.lanes == () and model.summary.duration == 0.0


def test_graph_outcomes_follow_the_events() -> None:
    model = build_report_model(None, _job())

    assert model.job_outcomes == {
        "supervisor": "ok",
        "dispatcher": "ok",
        "aggregator": "ok",
        "merge_review": "ok",
    }
    assert model.phase_outcomes["docs"] == {"prepare": "ok", "map": "ok", "finish": "ok"}
    assert model.phase_outcomes["api"]["finish"] == "failed"


def test_the_graph_opens_the_dispatcher_into_one_column_per_domain() -> None:
    shape = GraphShape(
        ("__start__", "supervisor", "dispatcher", "aggregator", "__end__"),
        ("prepare", "map", "finish"),
    )

    boxes, edges, (width, _) = flow_layout(shape, ["docs", "api"], {}, {})

    keys = [box.key for box in boxes]
    assert keys == [
        "__start__",
        "supervisor",
        "dispatcher",
        "docs/prepare",
        "docs/map",
        "docs/finish",
        "api/prepare",
        "api/map",
        "api/finish",
        "aggregator",
        "__end__",
    ]
    assert ("dispatcher", "api/prepare") in edges and ("docs/finish", "aggregator") in edges
    assert width > 2 * 132


def test_topological_order_puts_every_edge_forward() -> None:
    order = topological_order(["c", "a", "b"], [("a", "b"), ("b", "c")])
    assert order == ["a", "b", "c"]


spans = st.lists(
    st.tuples(st.floats(0, 100), st.floats(0, 50)).map(lambda pair: (pair[0], pair[0] + pair[1])),
    max_size=30,
)


@given(spans)
def test_tracks_never_hold_overlapping_agents(intervals: list[tuple[float, float]]) -> None:
    tracks = assign_tracks(intervals)

    for i, (start_i, end_i) in enumerate(intervals):
        for j, (start_j, end_j) in enumerate(intervals):
            if i < j and tracks[i] == tracks[j]:
                assert end_i <= start_j or end_j <= start_i


positive_spans = st.lists(
    st.tuples(st.floats(0, 100), st.floats(0.001, 50)).map(
        lambda pair: (pair[0], pair[0] + pair[1])
    ),
    max_size=30,
)


@given(positive_spans)
def test_tracks_used_equal_the_most_agents_running_at_once(
    intervals: list[tuple[float, float]],
) -> None:
    tracks = assign_tracks(intervals)

    def open_at(moment: float) -> int:
        return sum(start <= moment < end for start, end in intervals)

    busiest = max((open_at(start) for start, _ in intervals), default=0)
    assert len(set(tracks)) == busiest
