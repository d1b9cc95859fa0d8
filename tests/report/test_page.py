"""``treefork report`` on a real finished job, looked at in headless Chromium.

A real graph runs on a real repository (agents that succeed, one that conflicts, one that
fails, one skipped by the budget); its events are the job's event log. The report is
written by the command line and opened in Chromium with every host name unresolvable: the
page must draw its charts offline, with one bar per agent on the timeline.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pngutil import boxes_of_colour, first_row_of_colour

from treefork import Budget, Domain, Map, Shell, build_graph
from treefork.report.charts import LANE_COLOUR, STATUS_COLOURS, TRACK_PIXELS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

Browse = Callable[..., str]


def _domains() -> list[Domain]:
    docs = Shell(
        "sleep 0.2; echo ${item} > docs/${item}.md && git add docs && git commit -qm ${item}",
        commit_required=True,
    )
    # Two agents add the same new file from the same base: the second to merge conflicts.
    clash = Shell(
        "sleep 0.2; [ ${item} != bad ] || { echo 'cannot handle bad' >&2; exit 3; }; "
        "echo ${item} > shared.txt && git add shared.txt && git commit -qm ${item}",
        commit_required=True,
    )
    # The clash agents and the first docs agent take the four slots at once; docs then
    # runs one item at a time, so the budget of five runs always skips the last docs item.
    return [
        Domain(
            "docs", keywords=["docs"], map=Map(input=["a", "b", "c"], agent=[docs], max_parallel=1)
        ),
        Domain(
            "clash",
            keywords=["clash"],
            map=Map(input=["one", "two", "bad"], agent=[clash], max_parallel=3),
        ),
    ]


@pytest.fixture
def finished_job(repo: Path, treefork_home: Path) -> tuple[str, list[dict[str, Any]]]:
    """A finished job's id and events, written to its event log in the treefork home."""
    events: list[dict[str, Any]] = []
    graph = build_graph(
        _domains(),
        max_parallel=4,
        budget=Budget(agent_runs=5),
        auto_approve=True,
        event_sinks=[events.append],
    )
    out = asyncio.run(graph.ainvoke({"task": "docs and clash", "repo": str(repo)}))
    log = treefork_home / "jobs" / out["job_id"] / "events.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    if not log.exists():  # the job store may already keep this log
        log.write_text("".join(json.dumps(event, default=str) + "\n" for event in events))
    return out["job_id"], events


def _report(job_id: str, output: Path, *options: str) -> subprocess.CompletedProcess[str]:
    treefork = Path(sys.executable).with_name("treefork")
    return subprocess.run(
        [str(treefork), "report", job_id, "-o", str(output), *options],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ),
        timeout=120,
    )


def _agents(events: list[dict[str, Any]]) -> set[str]:
    return {f"{e['domain']}/{e['item']}" for e in events if e["event"] == "agent_end"}


def test_the_timeline_holds_one_bar_per_agent_offline(
    finished_job: tuple[str, list[dict[str, Any]]], tmp_path: Path, browse: Browse
) -> None:
    job_id, events = finished_job
    page = tmp_path / "out" / "report.html"

    result = _report(job_id, page)

    assert result.returncode == 0, result.stderr
    assert str(page) in result.stdout
    html = page.read_text()
    assert not re.search(r"<(script|link|img|iframe)[^>]*\b(src|href)\s*=", html), "loads nothing"
    assert "<script" not in html, "the charts are SVG: nothing to run"
    dom = browse(page, "--dump-dom")
    assert '<svg id="timeline"' in dom
    bars = re.findall(r'data-agent="([^"]+)" data-status="([^"]+)"', dom)
    assert sorted(agent for agent, _ in bars) == sorted(_agents(events))
    assert len(bars) == 6
    statuses = {status for _, status in bars}
    assert {"succeeded", "conflict", "failed", "skipped"} <= statuses


def test_a_screenshot_shows_one_bar_per_agent_in_its_outcome_colour(
    finished_job: tuple[str, list[dict[str, Any]]], tmp_path: Path, browse: Browse
) -> None:
    job_id, events = finished_job
    page = tmp_path / "report.html"
    assert _report(job_id, page).returncode == 0
    screenshot = tmp_path / "timeline.png"
    # Wide enough that the timeline is drawn at 1:1.
    browse(page, "--window-size=1400,1100", f"--screenshot={screenshot}")

    # The timeline starts where its first lane's background does; the badges above it (in
    # the same colours) are left out.
    top = first_row_of_colour(screenshot, LANE_COLOUR)
    assert top is not None, "no timeline in the screenshot"
    bar_height = round(0.78 * TRACK_PIXELS)
    counts = {
        status: sum(
            1
            for _, y, width, height in boxes_of_colour(screenshot, colour)
            if y >= top and abs(height - bar_height) <= 2 and width >= 3
        )
        for status, colour in STATUS_COLOURS.items()
    }
    drawn = re.findall(r'<rect data-agent="[^"]+" data-status="([^"]+)"', page.read_text())
    expected = {status: drawn.count(status) for status in STATUS_COLOURS}
    assert counts == expected, (counts, expected)
    assert sum(counts.values()) == len(_agents(events)) == 6
    assert {"succeeded", "conflict", "failed", "skipped"} <= {s for s, n in counts.items() if n}


def test_a_100_agent_report_is_under_300_kb(tmp_path: Path, repo: Path) -> None:
    events: list[dict[str, Any]] = []
    many = Domain(
        "many",
        keywords=["many"],
        map=Map(input=[f"item-{n:03d}" for n in range(100)], agent=[Shell("true")],
                isolation="none", max_parallel=8),
    )  # fmt: skip
    graph = build_graph([many], auto_approve=True, event_sinks=[events.append], job_store=False)
    out = asyncio.run(graph.ainvoke({"task": "many", "repo": str(repo)}))
    log = tmp_path / "events.jsonl"
    log.write_text("".join(json.dumps(event, default=str) + "\n" for event in events))
    page = tmp_path / "many.html"
    done = _report(out["job_id"], page, "--events", str(log))
    assert done.returncode == 0, done.stderr
    html = page.read_text()
    assert len(re.findall(r"<rect data-agent=", html)) == 100
    assert page.stat().st_size <= 300 * 1024, page.stat().st_size


def test_the_page_shows_summary_failures_and_the_graph(
    finished_job: tuple[str, list[dict[str, Any]]], tmp_path: Path, browse: Browse
) -> None:
    job_id, _ = finished_job
    page = tmp_path / "report.html"
    assert _report(job_id, page).returncode == 0

    dom = browse(page, "--dump-dom")
    screenshot = tmp_path / "report.png"
    browse(page, "--window-size=1280,2400", f"--screenshot={screenshot}")

    assert f"treefork job {job_id}" in dom
    assert "exit code 3" in dom  # the failing agent's error
    assert "shared.txt" in dom  # the conflicting path
    assert 'id="budget-chart"' in dom
    for node in ("supervisor", "dispatcher", "docs/map", "clash/integrate", "merge_review"):
        assert f'data-node="{node}"' in dom
    assert screenshot.stat().st_size > 50_000  # a drawn page, not a blank one


def test_an_unknown_job_is_reported_with_exit_code_2(tmp_path: Path) -> None:
    result = _report("no-such-job", tmp_path / "x.html")

    assert result.returncode == 2
    assert "no events of job no-such-job" in result.stderr
    assert not (tmp_path / "x.html").exists()
