"""``langgraph dev`` serves the graph named in langgraph.json; driven through langgraph-sdk.

The real in-memory server runs in its own process group on a free loopback port, with
tracing, analytics and API keys removed from its environment (it needs no network). The
test creates a thread, runs until the merge-review interrupt, resumes with approve and
checks the merge in the repository. The server fails any blocking call made on its event
loop, so a passing run also shows that the nodes keep blocking work off the loop.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from gitutil import run_git

pytest.importorskip(
    "langgraph_api", reason='needs the LangGraph dev server: "langgraph-cli[inmem]"'
)
from langgraph_sdk import get_client

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 90.0
_SECRET_MARKERS = ("API_KEY", "LANGSMITH", "LANGCHAIN", "LICENSE_KEY", "OPENAI", "ANTHROPIC")


@dataclass(frozen=True)
class DevServer:
    """A running ``langgraph dev``."""

    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def log_text(self) -> str:
        """What the server printed so far."""
        return self.log.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _offline_environment(home: Path) -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not any(marker in name.upper() for marker in _SECRET_MARKERS)
    }
    environment.update(
        LANGSMITH_TRACING="false",
        LANGCHAIN_TRACING_V2="false",
        LANGGRAPH_CLI_NO_ANALYTICS="1",
        TREEFORK_HOME=str(home),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return environment


def _wait_until_ok(server: DevServer) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"langgraph dev exited with {server.process.returncode}:\n{server.log_text()}"
            )
        try:
            if httpx.get(f"{server.url}/ok", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"langgraph dev did not answer /ok in {STARTUP_SECONDS:g}s:\n{server.log_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


@contextmanager
def _serving(folder: Path, home: Path) -> Iterator[DevServer]:
    """``langgraph dev`` on a free port, run in ``folder`` with its ``langgraph.json``.

    Its ``.langgraph_api/`` state lands in the folder; the server is stopped, with
    everything it started, on exit.
    """
    langgraph = Path(sys.executable).with_name("langgraph")
    if not langgraph.exists():
        found = shutil.which("langgraph")
        if found is None:
            pytest.skip('the langgraph command is missing: install "langgraph-cli[inmem]"')
        langgraph = Path(found)
    port = _free_port()
    log = folder / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                str(langgraph),
                "dev",
                "--no-browser",
                "--no-reload",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--config",
                "langgraph.json",
            ],
            cwd=folder,
            env=_offline_environment(home),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = DevServer(f"http://127.0.0.1:{port}", log, process)
    try:
        _wait_until_ok(server)
        yield server
    finally:
        _stop(process)


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[DevServer]:
    """``langgraph dev`` serving the repository's ``langgraph.json``, in a scratch folder."""
    folder = tmp_path / "server"
    folder.mkdir()
    shutil.copy(REPOSITORY_ROOT / "langgraph.json", folder / "langgraph.json")
    with _serving(folder, tmp_path / "treefork-home") as server:
        yield server


_PHASES = ("prepare", "setup", "map")
"""The first steps of every domain's sub-graph."""


def _domain_namespaces(parts: list[Any]) -> set[str]:
    """The namespaces of the domains' sub-graphs in a stream (``docs:<task id>``)."""
    return {
        part.event.split("|")[1]
        for part in parts
        if "|" in part.event and ":" in part.event.split("|")[1]
    }


def test_langgraph_json_names_the_studio_factory() -> None:
    config = json.loads((REPOSITORY_ROOT / "langgraph.json").read_text())
    assert config["graphs"] == {"treefork": "treefork.studio:make_graph"}
    assert ".langgraph_api/" in (REPOSITORY_ROOT / ".gitignore").read_text().splitlines()


async def _stream(client: Any, thread_id: str, graph: str = "treefork", **run: Any) -> list[Any]:
    parts = []
    async for part in client.runs.stream(
        thread_id, graph, stream_mode=["custom", "updates"], stream_subgraphs=True, **run
    ):
        parts.append(part)
    errors = [part.data for part in parts if part.event == "error"]
    assert not errors, errors
    return parts


async def _approve(
    client: Any, thread_id: str, state: dict[str, Any], repo: Path, config: dict[str, Any]
) -> None:
    """Check the run stopped at the merge review with nothing merged yet; resume with approve."""
    assert state["next"] == ["merge_review"]
    review = state["tasks"][0]["interrupts"][0]["value"]
    assert review["status"] == "succeeded"
    assert review["target_branch"] == "main"
    assert len(review["files"]) == 6
    assert run_git(repo, "log", "--oneline").count("\n") == 1  # untouched before approval
    await _stream(client, thread_id, command={"resume": "approve"}, config=config)


async def test_run_interrupts_for_review_and_approve_merges(
    dev_server: DevServer, sample_repo: Path, workflow_file: Path
) -> None:
    async with get_client(url=dev_server.url) as client:
        thread = await client.threads.create()
        config = {"configurable": {"workflow": str(workflow_file)}}
        parts = await _stream(
            client,
            thread["thread_id"],
            input={"task": "Review the docs and the api", "repo": str(sample_repo)},
            config=config,
        )
        state = await client.threads.get_state(thread["thread_id"])
        histories = {
            namespace: await client.threads.get_history(
                thread["thread_id"], limit=50, checkpoint={"checkpoint_ns": namespace}
            )
            for namespace in _domain_namespaces(parts)
        }
        await _approve(client, thread["thread_id"], state, sample_repo, config)
        final = (await client.threads.get_state(thread["thread_id"]))["values"]

    # While the run waits at review, each domain's checkpoints are under a namespace that
    # names it, and its history walks its phases.
    assert {namespace.split(":")[0] for namespace in histories} == {"docs", "api"}
    for namespace, history in histories.items():
        name = namespace.split(":")[0]
        assert history, namespace
        assert {h["checkpoint"]["checkpoint_ns"] for h in history} == {namespace}
        odd = [
            (h["values"].get("domain"), sorted(h["values"])[:3], h["next"], name)
            for h in history
            if h["next"] != ["__start__"] and h["values"].get("domain") != name
        ]
        assert not odd, str(odd)
        steps = [step for h in reversed(history) for step in h["next"] if step != "__start__"]
        assert steps[: len(_PHASES)] == list(_PHASES), steps
        assert steps.count("agent") == 3
        assert len(history[0]["values"]["agents"]) == 3

    events = [part.data for part in parts if part.event.startswith("custom")]
    kinds = [event["event"] for event in events]
    assert kinds[:2] == ["job_start", "routing"]
    assert kinds.count("agent_end") == 6
    # A domain's events stream under a namespace that starts with the domain's name.
    agent_namespaces = {
        part.event.split("|", 1)[1].split(":")[0]
        for part in parts
        if part.event.startswith("custom|") and part.data["event"] == "agent_end"
    }
    assert agent_namespaces == {
        part.data["domain"]
        for part in parts
        if part.event.startswith("custom|") and part.data["event"] == "agent_end"
    }
    review = state["tasks"][0]["interrupts"][0]["value"]
    assert final["merge"]["status"] == "merged"
    assert final["status"] == "succeeded"
    assert final["aggregated_files"] == sorted(review["files"])
    assert run_git(sample_repo, "rev-parse", "HEAD").strip() == final["merge"]["commit"]
    assert "_Reviewed in Studio._" in (sample_repo / "docs" / "faq.md").read_text()
    assert run_git(sample_repo, "status", "--porcelain") == ""
    assert "BlockingError" not in dev_server.log_text()


async def test_studio_draws_the_graph(dev_server: DevServer) -> None:
    async with get_client(url=dev_server.url) as client:
        assistants = await client.assistants.search(graph_id="treefork")
        assert assistants, dev_server.log_text()
        drawn = await client.assistants.get_graph(assistants[0]["assistant_id"])

    names = {node["id"] for node in drawn["nodes"]}
    assert {"supervisor", "dispatcher", "aggregator", "merge_review"} <= names
    async with get_client(url=dev_server.url) as client:
        xray = await client.assistants.get_graph(assistants[0]["assistant_id"], xray=True)
    inner = {node["id"] for node in xray["nodes"]}
    # The demo's domains, each with its phases and its agent task.
    for domain in ("docs", "api", "tests"):
        assert {f"{domain}:setup", f"{domain}:map", f"{domain}:agent", f"{domain}:reduce"} <= inner


ASKING_GRAPH = """\
import anyio
from langgraph.types import interrupt

from treefork import AgentStep, Domain, Map, Shell, build_graph


async def ask_for_b(context):
    if context.item == "b" and interrupt({"question": "accept the change for b?"}) != "yes":
        raise RuntimeError("not accepted")
    await anyio.Path(context.worktree / f"{context.item}.txt").write_text(str(context.item))
    return "wrote"


DOMAINS = [
    Domain(
        "docs",
        keywords=["docs"],
        map=Map(
            input=["a", "b", "c"],
            agent=[AgentStep(ask_for_b), Shell("git add -A && git commit -qm ${item}")],
        ),
    ),
    Domain("api", keywords=["api"], map=Map(input=["x"], agent=[Shell("true")], isolation="none")),
]
graph = build_graph(DOMAINS, auto_approve=True, checkpointer=None)
"""
"""A graph whose docs agent for item b asks a question; an api domain beside it."""


async def test_an_interrupt_inside_a_domain_shows_that_domain_state(
    tmp_path: Path, sample_repo: Path
) -> None:
    folder = tmp_path / "asking"
    folder.mkdir()
    (folder / "asking.py").write_text(ASKING_GRAPH)
    (folder / "langgraph.json").write_text(
        json.dumps({"dependencies": ["."], "graphs": {"asking": "./asking.py:graph"}})
    )
    with _serving(folder, tmp_path / "treefork-home") as server:
        async with get_client(url=server.url) as client:
            thread = await client.threads.create()
            task = {"task": "docs and api", "repo": str(sample_repo)}
            await _stream(client, thread["thread_id"], input=task, graph="asking")
            state = await client.threads.get_state(thread["thread_id"], subgraphs=True)
            (docs,) = [task for task in state["tasks"] if task["name"] == "docs"]
            question = [i["value"] for t in state["tasks"] for i in t["interrupts"]]
            await _stream(client, thread["thread_id"], command={"resume": "yes"}, graph="asking")
            final = (await client.threads.get_state(thread["thread_id"]))["values"]
        log = server.log_text()

    assert question == [{"question": "accept the change for b?"}]
    # The waiting domain's own state: the agents that finished, and the one that waits.
    inner = docs["state"]
    assert inner["values"]["domain"] == "docs"
    assert sorted(inner["values"]["agents"]) == ["0", "2"]
    assert inner["next"] == ["agent"]
    assert final["merge"]["status"] == "merged"
    assert final["domain_results"]["docs"]["succeeded"] == 3
    assert {"a.txt", "b.txt", "c.txt"} <= set(run_git(sample_repo, "ls-files").split())
    assert "BlockingError" not in log
