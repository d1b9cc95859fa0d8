"""No node makes a blocking call on the event loop.

The LangGraph dev server fails any blocking call made on its event loop (folder creation,
file deletion, sockets, SQLite, ``sleep``, ...); it lets ``stat``, ``listdir`` and file reads
and writes through. This runs a real job in-process under blockbuster with the same rules,
whenever a treefork frame is on the stack, over every kind of work a job does: items from a
command and from a JSON file written by setup, shell steps with values too large for the
environment, a WriteFile step, a Claude step in a working directory (a stub on PATH), merges,
merge review, clean-up and the event sinks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command as Resume

from treefork import Claude, Domain, Map, Shell, WriteFile, build_graph, environment
from treefork.studio import make_graph

blockbuster = pytest.importorskip(
    "blockbuster", reason="blockbuster comes with langgraph-cli[inmem]"
)


_CLAUDE_STUB = """#!/bin/sh
printf '%s' '{"type":"result","is_error":false,"result":"ok","usage":{"input_tokens":3,"output_tokens":4}}'
"""
_BIG = "x" * (100 * 1024)  # more than one environment variable may hold: passed as a file


def _domains() -> list[Domain]:
    commit = Shell("git add -A && git commit -q -m 'work on ${item.id}'", commit_required=True)
    return [
        Domain(
            "docs",
            keywords=["docs"],
            setup=[Shell('printf \'[{"id": "faq"}, {"id": "api"}]\' > pages.json')],
            map=Map(
                input="pages.json",
                agent=[
                    Shell("printf '\\nreviewed\\n' >> docs/${item.id}.md"),
                    Claude("review ${item.id}", working_dir="docs"),
                    commit,
                ],
                max_parallel=2,
            ),
            reduce=[Shell("echo ${map.successful} of ${map.total}")],
        ),
        Domain(
            "src",
            keywords=["src"],
            map=Map(
                input=[{"id": "ops", "big": _BIG}, {"id": "stats", "big": _BIG}],
                agent=[
                    WriteFile("notes/${item.id}.txt", "note on ${item.id}\n"),
                    Shell("printf %s ${item.big} | wc -c > notes/${item.id}.size"),
                    commit,
                ],
                max_parallel=2,
            ),
        ),
        Domain(  # read-only agents: their git is given a refusing hook, made for them
            "readme",
            keywords=["readme"],
            map=Map(input=["a", "b"], agent=[Shell("head -1 README.md")], isolation="none"),
        ),
        Domain(
            "tests",
            keywords=["tests"],
            map=Map(
                input="ls tests/*.py",
                agent=[
                    Shell("printf '\\n# checked\\n' >> ${item}"),
                    Shell("git commit -q -am 'check ${item}'", commit_required=True),
                ],
            ),
        ),
    ]


@pytest.fixture
def claude_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stub ``claude`` first on PATH that answers like the real one."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "claude").write_text(_CLAUDE_STUB)
    (folder / "claude").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


# What `langgraph dev` lets through (langgraph_runtime_inmem.queue._enable_blockbuster).
_ALLOWED_BY_THE_DEV_SERVER = (
    "os.stat",
    "os.listdir",
    "os.remove",
    "io.BufferedReader.read",
    "io.BufferedWriter.write",
    "io.TextIOWrapper.read",
    "io.TextIOWrapper.write",
    "threading.Lock.acquire",
)


@pytest.fixture
def watched() -> Iterator[None]:
    """Blockbuster with the dev server's rules, for calls with a treefork frame on the stack."""
    detector = blockbuster.BlockBuster(scanned_modules=["treefork"])
    for name in list(detector.functions):
        if name in _ALLOWED_BY_THE_DEV_SERVER or name.startswith("os.path."):
            detector.functions.pop(name)
    detector.activate()
    try:
        yield
    finally:
        detector.deactivate()


async def _run(graph: Any, state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    out = await graph.ainvoke(state, config)
    assert out.get("__interrupt__"), out.get("failures")
    return dict(await graph.ainvoke(Resume(resume="approve"), config))


@pytest.mark.usefixtures("claude_on_path")
async def test_a_whole_job_makes_no_blocking_call_on_the_event_loop(
    sample_repo: Path,
    watched: None,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(environment, "_hooks", [])  # made during this job, not before it
    graph = build_graph(_domains(), max_parallel=4, checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "blocking"}}

    out = await _run(
        graph,
        {"task": "touch the docs, src, readme and tests", "repo": str(sample_repo)},
        config,
    )

    assert out["failures"] == []
    # Event sinks run on the event loop too; the emitter logs (and survives) a failing one.
    sink_failures = [
        r.getMessage() for r in caplog.records if "event sink failed" in r.getMessage()
    ]
    assert sink_failures == []
    assert out["status"] == "succeeded"
    assert out["merge"]["status"] == "merged"
    assert (sample_repo / "notes" / "ops.txt").read_text() == "note on ops\n"
    assert (sample_repo / "notes" / "ops.size").read_text().strip() == str(len(_BIG))


async def test_the_studio_factory_makes_no_blocking_call(watched: None) -> None:
    graph = await make_graph({"configurable": {"example": "demo"}})

    assert graph.checkpointer is None
