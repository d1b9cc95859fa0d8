"""Domains and map agents as LangGraph sub-graphs and tasks, on real repositories with the
real SQLite checkpointer: what Studio and notebooks see, interrupts inside a domain, run
settings through the context, callbacks, replays and forks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from gitutil import run_git, treefork_branches
from langchain_core.callbacks import AsyncCallbackHandler
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.types import Command, interrupt

from treefork import AgentContext, AgentStep, Domain, Map, Shell, TreeforkContext, build_graph
from treefork.errors import DefinitionError, InputError


def _agent(folder: str) -> list[Shell]:
    return [
        Shell(
            f"mkdir -p {folder} && echo '${{item}}' > {folder}/${{item}}.txt && "
            f"git add {folder} && git commit -qm 'add ${{item}}'",
            commit_required=True,
        )
    ]


def _domains() -> list[Domain]:
    return [
        Domain("docs", keywords=["docs"], map=Map(input=["a", "b", "c"], agent=_agent("docs/gen"))),
        Domain(
            "api",
            keywords=["api"],
            setup=[Shell("echo '[\"x\", \"y\"]' > items.json")],
            map=Map(input="items.json", agent=_agent("src/gen")),
            reduce=[Shell("echo '${map.successful} of ${map.total}'")],
        ),
    ]


def _config(thread: str = "t1") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


async def test_xray_graph_shows_every_domain_and_its_phases() -> None:
    graph = build_graph(_domains())
    top = set(graph.get_graph().nodes)
    assert top == {
        "__start__", "supervisor", "dispatcher", "docs", "api", "aggregator", "merge_review", "__end__",
    }
    nodes = set(graph.get_graph(xray=True).nodes)
    for domain in ("docs", "api"):
        for phase in ("prepare", "setup", "map", "agent", "reduce", "tests", "integrate", "finish"):
            assert f"{domain}:{phase}" in nodes


async def test_a_domain_named_like_a_graph_node_is_refused() -> None:
    with pytest.raises(DefinitionError, match="reserved"):
        build_graph([Domain("aggregator", map=Map(input=["a"], agent=_agent("x")))])


async def test_each_domain_has_checkpoints_under_a_namespace_that_names_it(
    repo: Path, tmp_path: Path
) -> None:
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "cp.sqlite")) as saver:
        graph = build_graph(_domains(), checkpointer=saver)
        out = await graph.ainvoke({"task": "docs and api", "repo": str(repo)}, _config())
        assert out["__interrupt__"]  # waits at merge review
        namespaces = {
            checkpoint.config["configurable"]["checkpoint_ns"].split(":")[0]
            async for checkpoint in saver.alist(_config())
        }
        assert {"docs", "api"} <= namespaces
        # Inside a domain's own history: its phases, in order, and its agents' results.
        docs = [
            checkpoint
            async for checkpoint in saver.alist(_config())
            if checkpoint.config["configurable"]["checkpoint_ns"].startswith("docs:")
        ]
        last = max(docs, key=lambda c: c.metadata["step"])
        assert set(last.checkpoint["channel_values"]["agents"]) == {"0", "1", "2"}
        assert run_git(repo, "branch", "--show-current").strip() == "main"
        final = await graph.ainvoke(Command(resume="approve"), _config())
        assert final["merge"]["status"] == "merged"


async def test_interrupt_inside_one_agent_resumes_only_that_agent(
    repo: Path, tmp_path: Path
) -> None:
    runs: list[str] = []

    async def ask_for_b(context: AgentContext) -> str:
        runs.append(str(context.item))
        if context.item == "b":
            answer = interrupt({"question": f"accept the change for {context.item}?"})
            if answer != "yes":
                raise RuntimeError("not accepted")
        path = context.worktree / f"{context.item}.txt"
        path.write_text(str(context.item))
        return f"wrote {path.name}"

    domain = Domain(
        "docs",
        keywords=["docs"],
        map=Map(
            input=["a", "b", "c"],
            agent=[AgentStep(ask_for_b), Shell("git add -A && git commit -qm '${item}'")],
        ),
    )
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "cp.sqlite")) as saver:
        graph = build_graph([domain], checkpointer=saver, auto_approve=True)
        out = await graph.ainvoke({"task": "docs", "repo": str(repo)}, _config())
        assert out["__interrupt__"][0].value == {"question": "accept the change for b?"}
        # Studio's view: the waiting domain's own state, with its siblings' results in it.
        snapshot = await graph.aget_state(_config(), subgraphs=True)
        (task,) = [task for task in snapshot.tasks if task.name == "docs"]
        assert task.state is not None
        domain_state = task.state.values  # type: ignore[union-attr]
        assert set(domain_state["agents"]) == {"0", "2"}  # items a and c
        assert sorted(runs) == ["a", "b", "c"]

        final = await graph.ainvoke(Command(resume="yes"), _config())
        assert sorted(runs) == ["a", "b", "b", "c"]  # only b ran again
        assert final["merge"]["status"] == "merged"
        assert final["domain_results"]["docs"]["succeeded"] == 3
    files = run_git(repo, "ls-files").split()
    assert {"a.txt", "b.txt", "c.txt"} <= set(files)


async def test_an_answer_that_is_not_a_decision_asks_again(repo: Path, tmp_path: Path) -> None:
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "cp.sqlite")) as saver:
        graph = build_graph(_domains()[:1], checkpointer=saver)
        await graph.ainvoke({"task": "docs", "repo": str(repo)}, _config())
        again = await graph.ainvoke(Command(resume="maybe"), _config())
        question = again["__interrupt__"][0].value
        assert "'maybe' is not a merge decision" in question["error"]
        assert "approve" in question["accepted_answers"]
        assert "merge" not in again
        final = await graph.ainvoke(Command(resume="approve"), _config())
        assert final["merge"]["status"] == "merged"


async def test_sync_invoke_fails_at_once_saying_to_use_ainvoke(repo: Path) -> None:
    graph = build_graph(_domains())
    with pytest.raises(InputError) as raised:
        graph.invoke({"task": "docs", "repo": str(repo)})
    message = str(raised.value)
    assert "\n" not in message and "ainvoke" in message
    assert not treefork_branches(repo)


async def test_run_settings_come_from_the_context_not_the_input(
    repo: Path, tmp_path: Path
) -> None:
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "cp.sqlite")) as saver:
        graph = build_graph(_domains()[:1], checkpointer=saver)
        # auto_approve is not input: putting it there does not skip review.
        out = await graph.ainvoke(
            {"task": "docs", "repo": str(repo), "auto_approve": True},  # type: ignore[typeddict-unknown-key]
            _config("input"),
        )
        assert out["__interrupt__"]
        out = await graph.ainvoke(
            {"task": "docs", "repo": str(repo)},
            _config("context"),
            context=TreeforkContext(auto_approve=True, max_parallel=1, budget_agent_runs=2),
        )
        assert out["merge"]["status"] == "merged"
        result = out["domain_results"]["docs"]
        assert (result["succeeded"], result["skipped"]) == (2, 1)  # the budget from the context
        assert out["budget"]["limit"]["agent_runs"] == 2
        assert out["budget"]["used"]["agent_runs"] == 2
        assert out["budget"]["exhausted"] is True
        with pytest.raises(InputError, match="max_parallel"):
            await graph.ainvoke(
                {"task": "docs", "repo": str(repo)}, _config("bad"), context={"max_parallel": 0}
            )


def test_schemas_split_input_output_and_context() -> None:
    graph = build_graph(_domains())
    inputs = graph.get_input_jsonschema()
    assert set(inputs["properties"]) == {"task", "repo", "base_branch", "job_id"}
    outputs = graph.get_output_jsonschema()
    assert {"status", "aggregated_files", "all_tests_passed", "budget", "merge"} <= set(
        outputs["properties"]
    )
    assert "auto_approve" not in outputs["properties"]
    context = graph.get_context_jsonschema()
    assert context is not None
    assert {"max_parallel", "auto_approve", "home"} <= set(context["properties"])


class _Recorder(AsyncCallbackHandler):
    def __init__(self) -> None:
        self.runs: list[tuple[str, str]] = []

    async def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: dict[str, Any] | Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        metadata = metadata or {}
        node = str(metadata.get("langgraph_node", ""))
        namespace = str(metadata.get("checkpoint_ns", ""))
        self.runs.append((node, namespace.split(":", maxsplit=1)[0]))
        assert "from-caller" in (tags or [])
        assert metadata.get("request") == "r-1"


async def test_callbacks_tags_and_metadata_reach_every_domain_and_agent(repo: Path) -> None:
    recorder = _Recorder()
    graph = build_graph(_domains(), auto_approve=True)
    config: dict[str, Any] = {
        "callbacks": [recorder],
        "tags": ["from-caller"],
        "metadata": {"request": "r-1"},
        "recursion_limit": 40,
    }
    out = await graph.ainvoke({"task": "docs and api", "repo": str(repo)}, config)
    assert out["merge"]["status"] == "merged"
    nodes = {node for node, _ in recorder.runs}
    assert {"supervisor", "dispatcher", "docs", "api", "agent", "aggregator"} <= nodes
    agent_domains = sorted(ns for node, ns in recorder.runs if node == "agent")
    assert agent_domains == ["api", "api", "docs", "docs", "docs"]


async def test_replaying_merge_review_on_a_merged_thread_keeps_the_merge(
    repo: Path, tmp_path: Path, treefork_home: Path
) -> None:
    from treefork.store import JobStore

    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "cp.sqlite")) as saver:
        graph = build_graph(_domains()[:1], checkpointer=saver)
        await graph.ainvoke({"task": "docs", "repo": str(repo), "job_id": "j1"}, _config())
        merged = await graph.ainvoke(Command(resume="approve"), _config())
        head = run_git(repo, "rev-parse", "HEAD").strip()
        history = [state async for state in graph.aget_state_history(_config())]
        before_review = next(s for s in history if s.next == ("merge_review",))
        replayed = await graph.ainvoke(None, before_review.config)
        if "__interrupt__" in replayed:  # the replay asks again, as the first run did
            replayed = await graph.ainvoke(Command(resume="approve"), _config())
        assert replayed["merge"]["status"] == "merged"
        assert replayed["merge"]["commit"] == merged["merge"]["commit"]
    assert run_git(repo, "rev-parse", "HEAD").strip() == head
    job = JobStore(treefork_home / "treefork.db").job("j1")
    assert job is not None and job["merge_status"] == "merged"


async def test_a_fork_before_the_supervisor_is_a_new_job(repo: Path, tmp_path: Path) -> None:
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "cp.sqlite")) as saver:
        graph = build_graph(_domains(), checkpointer=saver, auto_approve=True)
        first = await graph.ainvoke({"task": "docs", "repo": str(repo)}, _config())
        history = [state async for state in graph.aget_state_history(_config())]
        start = next(s for s in history if s.next == ("supervisor",))
        forked = await graph.aupdate_state(start.config, {"task": "the api"})
        second = await graph.ainvoke(None, forked)
    assert second["job_id"] != first["job_id"]
    assert [d["name"] for d in second["domains"]] == ["api"]
    assert second["merge"]["status"] == "merged"
    files = set(run_git(repo, "ls-files").split())
    assert {"docs/gen/a.txt", "src/gen/x.txt"} <= files


async def test_treefork_as_a_node_of_an_app_graph(repo: Path, tmp_path: Path) -> None:
    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    class AppState(TypedDict, total=False):
        task: str
        repo: str
        status: str
        merge: dict[str, Any]
        notes: list[str]

    async def plan(state: AppState) -> dict[str, Any]:
        return {"notes": ["planned"]}

    treefork_graph = build_graph(_domains())
    app = StateGraph(AppState)
    app.add_node("plan", plan)
    app.add_node("treefork", treefork_graph)
    app.add_edge(START, "plan")
    app.add_edge("plan", "treefork")
    app.add_edge("treefork", END)
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "app.sqlite")) as saver:
        compiled = app.compile(checkpointer=saver)
        out = await compiled.ainvoke({"task": "docs", "repo": str(repo)}, _config("app"))
        # The review question surfaces to the app; the app's checkpointer holds treefork's.
        question = out["__interrupt__"][0].value
        assert question["files"] == ["docs/gen/a.txt", "docs/gen/b.txt", "docs/gen/c.txt"]
        namespaces = {
            c.config["configurable"]["checkpoint_ns"] async for c in saver.alist(_config("app"))
        }
        assert any(ns.startswith("treefork:") and "|docs:" in ns for ns in namespaces)
        nodes = set(compiled.get_graph(xray=True).nodes)
        assert "treefork:docs:agent" in nodes
        final = await compiled.ainvoke(Command(resume="approve"), _config("app"))
    assert final["merge"]["status"] == "merged"
    assert final["notes"] == ["planned"]
    assert "docs/gen/a.txt" in run_git(repo, "ls-files")


async def test_ten_thousand_read_only_items_run_in_bounded_waves(repo: Path) -> None:
    seen: list[int] = []

    async def note(context: AgentContext) -> str:
        seen.append(context.item_index)
        return ""

    domain = Domain(
        "docs",
        keywords=["docs"],
        map=Map(input=list(range(10_000)), agent=[AgentStep(note)], isolation="none", max_parallel=16),
    )
    graph = build_graph([domain], auto_approve=True, job_store=False)
    out = await graph.ainvoke({"task": "docs", "repo": str(repo)})
    result = out["domain_results"]["docs"]
    assert (result["total"], result["succeeded"]) == (10_000, 10_000)
    assert sorted(seen) == list(range(10_000))
    json.dumps(out["budget"])  # plain data
