"""The supervisor graph end to end, on real repositories with real shell agents."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

import pytest
from gitutil import commit_file, make_repo, run_git, snapshot, treefork_branches
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from procutil import is_running

from treefork import (
    AgentContext,
    AgentOutput,
    AgentStep,
    Budget,
    Domain,
    Map,
    Shell,
    Usage,
    build_graph,
)
from treefork.errors import DefinitionError, InputError, RepositoryError


def _commit_item_file(folder: str) -> list[Shell]:
    """Agent steps that write one file per item under ``folder`` and commit it."""
    return [
        Shell(f"mkdir -p {folder} && sleep 0.3 && echo '${{item}}' > {folder}/${{item}}.txt"),
        Shell(f"git add {folder} && git commit -q -m 'add ${{item}}'", commit_required=True),
    ]


def _domains() -> list[Domain]:
    return [
        Domain(
            "docs",
            keywords=["docs"],
            paths=["docs/**"],
            map=Map(input=["a", "b"], agent=_commit_item_file("docs/gen"), max_parallel=2),
        ),
        Domain(
            "api",
            keywords=["api"],
            paths=["src/**"],
            map=Map(input=["c", "d"], agent=_commit_item_file("src/gen"), max_parallel=2),
        ),
        Domain(
            "infra",
            keywords=["terraform"],
            paths=["infra/**"],
            map=Map(input=["e"], agent=_commit_item_file("infra")),
        ),
    ]


def _config(thread: str = "t1") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def _overlap(spans_a: list[tuple[float, float]], spans_b: list[tuple[float, float]]) -> bool:
    return any(a0 < b1 and b0 < a1 for a0, a1 in spans_a for b0, b1 in spans_b)


def _spans(result: dict[str, Any]) -> list[tuple[float, float]]:
    return [(agent["started_at"], agent["finished_at"]) for agent in result["agents"]]


async def test_supervisor_picks_two_of_three_domains_that_run_concurrently(repo: Path) -> None:
    graph = build_graph(_domains(), max_parallel=8, auto_approve=True)

    out = await graph.ainvoke({"task": "Update the docs and the API", "repo": str(repo)})

    assert [choice["name"] for choice in out["domains"]] == ["docs", "api"]
    assert "keyword 'docs'" in out["domains"][0]["reason"]
    assert set(out["domain_results"]) == {"docs", "api"}
    assert _overlap(_spans(out["domain_results"]["docs"]), _spans(out["domain_results"]["api"]))
    assert out["aggregated_files"] == [
        "docs/gen/a.txt",
        "docs/gen/b.txt",
        "src/gen/c.txt",
        "src/gen/d.txt",
    ]
    assert out["status"] == "succeeded"
    assert out["merge"]["status"] == "merged"
    assert (repo / "docs/gen/a.txt").read_text() == "a\n"
    assert run_git(repo, "status", "--porcelain") == ""
    assert out["budget"]["used"]["agent_runs"] == 4


async def test_path_mentions_choose_domains(repo: Path) -> None:
    graph = build_graph(_domains(), auto_approve=True)
    out = await graph.ainvoke({"task": "tidy infra/main.tf please", "repo": str(repo)})
    assert [choice["name"] for choice in out["domains"]] == ["infra"]


async def test_no_match_with_fallback_none_says_so_and_touches_nothing(repo: Path) -> None:
    state = snapshot(repo)
    graph = build_graph(_domains(), auto_approve=True)
    out = await graph.ainvoke({"task": "make coffee", "repo": str(repo)})
    assert out["domains"] == []
    assert "defined domains: docs, api, infra" in out["routing_message"]
    assert out["status"] == "skipped"
    assert out["merge"]["status"] == "skipped"
    assert snapshot(repo) == state
    assert treefork_branches(repo) == []


async def test_no_match_with_fallback_all_runs_every_domain(repo: Path) -> None:
    graph = build_graph(_domains(), auto_approve=True, fallback="all")
    out = await graph.ainvoke({"task": "make coffee", "repo": str(repo)})
    assert [choice["name"] for choice in out["domains"]] == ["docs", "api", "infra"]
    assert out["status"] == "succeeded"


async def test_original_repository_untouched_through_every_phase_and_a_rejected_merge(
    repo: Path,
) -> None:
    before = snapshot(repo)
    seen: list[str] = []

    def check(event: dict[str, Any]) -> None:
        if event["event"] in ("phase_end", "agent_end", "domain_end"):
            assert snapshot(repo) == before, f"repository changed at {event}"
            seen.append(event["event"])

    domains = [
        Domain(
            "docs",
            keywords=["docs"],
            setup=[
                Shell(
                    'echo \'["x", "y"]\' > items.json && echo setup > docs/setup.md && git add docs && git commit -q -m setup'
                )
            ],
            map=Map(input="items.json", agent=_commit_item_file("docs")),
            reduce=[
                Shell("echo reduced > docs/reduce.md && git add docs && git commit -q -m reduce")
            ],
        )
    ]
    graph = build_graph(domains, checkpointer=InMemorySaver(), event_sinks=[check])
    out = await graph.ainvoke({"task": "docs", "repo": str(repo)}, _config())
    assert "__interrupt__" in out
    assert {"phase_end", "agent_end", "domain_end"} <= set(seen)
    assert snapshot(repo) == before

    out = await graph.ainvoke(Command(resume="reject"), _config())

    assert out["merge"]["status"] == "rejected"
    assert "treefork merge" in out["merge"]["message"]
    assert snapshot(repo) == before
    session = run_git(repo, "ls-tree", "-r", "--name-only", out["session_branch"]).split()
    assert {"docs/setup.md", "docs/reduce.md", "docs/x.txt", "docs/y.txt"} <= set(session)


async def test_failing_agents_leave_the_original_repository_untouched(repo: Path) -> None:
    before = snapshot(repo)
    domains = [
        Domain(
            "docs",
            keywords=["docs"],
            map=Map(input=["a", "b"], agent=[Shell("echo broken >&2; exit 3")]),
        )
    ]
    graph = build_graph(domains, auto_approve=True)
    out = await graph.ainvoke({"task": "docs", "repo": str(repo)})
    assert out["status"] == "partial"
    assert out["domain_results"]["docs"]["status"] == "failed"
    assert {failure["item"] for failure in out["failures"]} == {"0", "1"}
    assert "exit code 3" in out["failures"][0]["error"] or "3" in out["failures"][0]["error"]
    assert out["merge"]["status"] == "nothing_to_merge"
    assert snapshot(repo) == before


def _two_domains(*, failing_critical: bool) -> list[Domain]:
    return [
        Domain("docs", keywords=["docs"], map=Map(input=["a"], agent=_commit_item_file("docs"))),
        Domain(
            "api",
            keywords=["api"],
            critical=failing_critical,
            map=Map(input=["c"], agent=_commit_item_file("src")),
            tests="exit 1",
        ),
    ]


async def test_failing_non_critical_domain_gives_partial_and_the_other_merges(repo: Path) -> None:
    graph = build_graph(_two_domains(failing_critical=False), auto_approve=True)
    out = await graph.ainvoke({"task": "docs and api", "repo": str(repo)})
    assert out["status"] == "partial"
    assert out["domain_results"]["api"]["status"] == "failed"
    assert out["domain_results"]["api"]["failed_phase"] == "tests"
    assert out["failures"] == [
        {
            "domain": "api",
            "item": None,
            "phase": "tests",
            "error": out["failures"][0]["error"],
            "critical": False,
        }
    ]
    assert out["all_tests_passed"] is False
    assert out["merge"]["status"] == "merged"
    assert (repo / "docs/a.txt").exists()
    assert not (repo / "src/c.txt").exists()


async def test_failing_critical_domain_fails_the_job_and_nothing_merges(repo: Path) -> None:
    before = snapshot(repo)
    graph = build_graph(_two_domains(failing_critical=True), auto_approve=True)
    out = await graph.ainvoke({"task": "docs and api", "repo": str(repo)})
    assert out["status"] == "failed"
    assert out["failures"][0]["critical"] is True
    assert out["merge"]["status"] == "refused"
    assert snapshot(repo) == before


async def test_failed_job_merges_only_with_override(repo: Path) -> None:
    graph = build_graph(_two_domains(failing_critical=True), checkpointer=InMemorySaver())
    out = await graph.ainvoke({"task": "docs and api", "repo": str(repo)}, _config())
    assert out["__interrupt__"][0].value["status"] == "failed"
    out = await graph.ainvoke(Command(resume="approve"), _config())
    assert out["merge"]["status"] == "refused"
    assert not (repo / "docs/a.txt").exists()

    graph = build_graph(_two_domains(failing_critical=True), checkpointer=InMemorySaver())
    await graph.ainvoke({"task": "docs and api", "repo": str(repo)}, _config("t2"))
    out = await graph.ainvoke(Command(resume={"approve": True, "override": True}), _config("t2"))
    assert out["merge"]["status"] == "merged"
    assert (repo / "docs/a.txt").exists()


async def test_conflicting_agents_one_merges_the_other_fails_with_its_branch_kept(
    repo: Path,
) -> None:
    agent = [
        Shell(
            "echo '${item}' > docs/index.md && git commit -q -am 'edit by ${item}'",
            commit_required=True,
        ),
    ]
    domains = [
        Domain(
            "docs",
            keywords=["docs"],
            map=Map(input=["first", "second"], agent=agent, max_parallel=2),
        )
    ]
    graph = build_graph(domains, checkpointer=InMemorySaver())

    out = await graph.ainvoke({"task": "docs", "repo": str(repo)}, _config())

    agents = out["domain_results"]["docs"]["agents"]
    statuses = sorted(agent["status"] for agent in agents)
    assert statuses == ["failed", "succeeded"]
    loser = next(agent for agent in agents if agent["status"] == "failed")
    winner = next(agent for agent in agents if agent["status"] == "succeeded")
    assert loser["conflict_paths"] == ["docs/index.md"]
    assert "docs/index.md" in loser["error"]
    assert loser["branch"] in treefork_branches(repo)
    assert run_git(repo, "rev-parse", loser["branch"]).strip() == loser["commits"][-1]
    domain_branch = out["domain_results"]["docs"]["branch"]
    domain_head = run_git(repo, "rev-parse", domain_branch).strip()
    # The domain branch holds the winner's merge and nothing of the loser.
    assert run_git(repo, "rev-parse", f"{domain_head}^2").strip() == winner["commits"][-1]
    proc = subprocess.run(
        ["git", "merge-base", "--is-ancestor", loser["commits"][-1], domain_head],
        cwd=repo,
        check=False,
    )
    assert proc.returncode == 1
    assert (repo / "docs/index.md").read_text() == "line 1\nline 2\nline 3\n"


async def test_commit_required_without_a_commit_fails_the_agent(repo: Path) -> None:
    agent = [Shell("echo '${item}' > docs/${item}.txt", commit_required=True)]
    domains = [Domain("docs", keywords=["docs"], map=Map(input=["a"], agent=agent))]
    graph = build_graph(domains, auto_approve=True)
    out = await graph.ainvoke({"task": "docs", "repo": str(repo)})
    agent_result = out["domain_results"]["docs"]["agents"][0]
    assert agent_result["status"] == "failed"
    assert "commit" in agent_result["error"]
    assert out["merge"]["status"] == "nothing_to_merge"


async def test_budget_of_agent_runs_stops_at_n_and_skips_the_rest(repo: Path) -> None:
    domains = [
        Domain(
            "docs",
            keywords=["docs"],
            map=Map(input=list("abcde"), agent=_commit_item_file("docs"), max_parallel=1),
        )
    ]
    graph = build_graph(domains, auto_approve=True, budget=Budget(agent_runs=2))
    out = await graph.ainvoke({"task": "docs", "repo": str(repo)})
    result = out["domain_results"]["docs"]
    assert (result["succeeded"], result["failed"], result["skipped"]) == (2, 0, 3)
    skipped = [agent for agent in result["agents"] if agent["status"] == "skipped"]
    assert all("budget" in (agent["skip_reason"] or "") for agent in skipped)
    assert out["failures"] == []
    assert out["budget"]["used"]["agent_runs"] == 2
    assert out["budget"]["exhausted"] is True
    assert out["status"] == "partial"
    assert out["merge"]["status"] == "merged"


async def test_interrupt_then_approve_merges_into_the_original_branch(repo: Path) -> None:
    graph = build_graph(_domains(), checkpointer=InMemorySaver())
    out = await graph.ainvoke({"task": "docs", "repo": str(repo)}, _config())
    summary = out["__interrupt__"][0].value
    assert summary["target_branch"] == "main"
    assert summary["files"] == ["docs/gen/a.txt", "docs/gen/b.txt"]
    assert not (repo / "docs/gen").exists()
    # The result is there to look at before approving.
    session = Path(summary["session_worktree"])
    assert (session / "docs/gen/b.txt").read_text() == "b\n"
    assert run_git(session, "status", "--porcelain") == ""

    out = await graph.ainvoke(Command(resume="approve"), _config())

    assert out["merge"]["status"] == "merged"
    assert not session.exists()
    assert run_git(repo, "rev-parse", "main").strip() == out["merge"]["commit"]
    assert (repo / "docs/gen/b.txt").read_text() == "b\n"
    assert treefork_branches(repo) == []


async def test_approve_refuses_when_the_checkout_has_overlapping_changes(repo: Path) -> None:
    agent = [Shell("echo changed > README.md && git commit -q -am readme", commit_required=True)]
    graph = build_graph(
        [Domain("docs", keywords=["docs"], map=Map(input=["a"], agent=agent))],
        checkpointer=InMemorySaver(),
    )
    await graph.ainvoke({"task": "docs", "repo": str(repo)}, _config())
    (repo / "README.md").write_text("my local edit\n")
    before = snapshot(repo)
    out = await graph.ainvoke(Command(resume=True), _config())
    assert out["merge"]["status"] == "refused"
    assert "README.md" in out["merge"]["message"]
    assert snapshot(repo) == before


async def test_user_commits_during_the_run_are_kept_by_the_merge(repo: Path) -> None:
    graph = build_graph(_domains(), checkpointer=InMemorySaver())
    await graph.ainvoke({"task": "docs", "repo": str(repo)}, _config())
    own = commit_file(repo, "NOTES.md", "mine\n")
    out = await graph.ainvoke(Command(resume="approve"), _config())
    assert out["merge"]["status"] == "merged"
    assert run_git(repo, "rev-parse", "HEAD^1").strip() == own
    assert (repo / "NOTES.md").exists() and (repo / "docs/gen/a.txt").exists()


async def test_agent_step_callable_gets_item_and_worktree_and_usage_counts(
    repo: Path, treefork_home: Path
) -> None:
    seen: list[tuple[Any, Path]] = []

    async def agent(context: AgentContext) -> AgentOutput:
        seen.append((context.item, context.worktree))
        (context.worktree / f"{context.item}.md").write_text("by agent\n")
        run_git(context.worktree, "add", "-A")
        run_git(context.worktree, "commit", "-q", "-m", "agent")
        return AgentOutput(output="done", usage=Usage(tokens_in=10, tokens_out=5, cost=0.01))

    domains = [
        Domain(
            "docs",
            keywords=["docs"],
            map=Map(input=["p", "q"], agent=[AgentStep(agent, commit_required=True)]),
        )
    ]
    graph = build_graph(domains, auto_approve=True)
    out = await graph.ainvoke({"task": "docs", "repo": str(repo)})
    assert sorted(item for item, _ in seen) == ["p", "q"]
    assert all(worktree.is_relative_to(treefork_home) for _, worktree in seen)
    assert out["domain_results"]["docs"]["tokens"] == 30
    assert out["aggregated_files"] == ["p.md", "q.md"]


async def test_commands_log_their_worktree_and_never_see_git_dir(
    repo: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = make_repo(tmp_path / "other")
    other_before = snapshot(other)
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other / ".git" / "index"))
    agent = [
        Shell(
            "env | grep -c '^GIT_DIR=' > docs/leak.txt || true; git add docs && git commit -q -m leak",
            commit_required=True,
        )
    ]
    graph = build_graph(
        [Domain("docs", keywords=["docs"], map=Map(input=["a"], agent=agent))], auto_approve=True
    )
    with caplog.at_level(logging.INFO, logger="treefork"):
        out = await graph.ainvoke({"task": "docs", "repo": str(repo)})
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_WORK_TREE")
    monkeypatch.delenv("GIT_INDEX_FILE")
    assert out["merge"]["status"] == "merged"
    assert (repo / "docs/leak.txt").read_text().strip() == "0"
    assert snapshot(other) == other_before
    assert any("Executing in worktree:" in record.getMessage() for record in caplog.records)


async def test_hung_step_is_killed_at_its_timeout(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pids"
    agent = [Shell(f"sleep 300 & echo $! >> {marker}; echo $$ >> {marker}; wait", timeout=1)]
    graph = build_graph(
        [Domain("docs", keywords=["docs"], map=Map(input=["a"], agent=agent))], auto_approve=True
    )
    out = await graph.ainvoke({"task": "docs", "repo": str(repo)})
    agent_result = out["domain_results"]["docs"]["agents"][0]
    assert agent_result["status"] == "failed"
    assert "timed out" in agent_result["error"] or "timeout" in agent_result["error"]
    pids = [int(pid) for pid in marker.read_text().split()]
    assert len(pids) == 2
    assert not any(is_running(pid) for pid in pids)


async def test_streamed_custom_events_cover_phases_agents_and_merges(repo: Path) -> None:
    graph = build_graph(_domains(), auto_approve=True)
    kinds: set[str] = set()
    domain_namespaces: set[str] = set()
    async for namespace, event in graph.astream(
        {"task": "docs", "repo": str(repo)}, stream_mode="custom", subgraphs=True
    ):
        kinds.add(event["event"])
        if event.get("domain") and event["event"] in ("agent_end", "phase_start"):
            domain_namespaces.add(namespace[0].split(":")[0])
    # Events of a domain stream under a namespace that starts with the domain's name.
    assert domain_namespaces == {"docs"}
    assert {
        "job_start",
        "routing",
        "phase_start",
        "phase_end",
        "agent_start",
        "agent_end",
        "merge",
        "domain_end",
        "merge_review",
    } <= kinds


async def test_invalid_definition_lists_every_problem() -> None:
    bad = [
        Domain("docs", map=Map(input=[], agent=[], max_parallel=0), paths=["docs/[oops"]),
        Domain("docs", map=None),
        Domain("bad name!", map=Map(input=["a"], agent=[Shell("true")])),
    ]
    with pytest.raises(DefinitionError) as caught:
        build_graph(bad, max_parallel=0)
    message = str(caught.value)
    for fragment in (
        "no map agent",
        "max_parallel",
        "unbalanced",
        "duplicate domain name 'docs'",
        "needs a map phase",
        "bad name!",
        "domains[0].map.max_parallel",
    ):
        assert fragment in message
    assert len(caught.value.problems) >= 6


async def test_bad_input_raises_clear_errors(tmp_path: Path, repo: Path) -> None:
    graph = build_graph(_domains(), auto_approve=True)
    with pytest.raises(InputError, match="task"):
        await graph.ainvoke({"task": "", "repo": str(repo)})
    with pytest.raises(RepositoryError, match="not a git repository"):
        await graph.ainvoke({"task": "docs", "repo": str(tmp_path)})
    with pytest.raises(InputError, match="job_id"):
        await graph.ainvoke({"task": "docs", "repo": str(repo), "job_id": "bad/../id"})
    with pytest.raises(InputError, match="repo"):
        await graph.ainvoke({"task": "docs"})
    assert treefork_branches(repo) == []


async def test_the_graphs_repository_serves_inputs_that_name_none(repo: Path) -> None:
    graph = build_graph(_domains(), auto_approve=True, repo=repo)

    out = await graph.ainvoke({"task": "make coffee"})

    assert out["repo"] == str(repo.resolve())
    assert out["status"] == "skipped"


async def test_an_auto_approved_job_makes_no_session_worktree(repo: Path) -> None:
    created: list[dict[str, Any]] = []

    def sink(event: dict[str, Any]) -> None:
        if event["event"] == "worktree" and event.get("action") == "created":
            created.append(event)

    graph = build_graph(_domains(), auto_approve=True, event_sinks=[sink])
    out = await graph.ainvoke({"task": "docs", "repo": str(repo)})

    assert out["merge"]["status"] == "merged"
    assert out.get("session_worktree") is None
    assert all(not str(event.get("branch", "")).endswith("/session") for event in created)
    assert (repo / "docs/gen/b.txt").read_text() == "b\n"
    assert treefork_branches(repo) == []
