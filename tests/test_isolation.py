"""Isolation through the whole graph: pooled worktrees, worktree set-up, read-only agents,
and merges on git without ``merge-tree --write-tree``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from gitutil import commit_file, make_repo, run_git, snapshot, treefork_branches, worktree_paths
from graphutil import agents_by_item, docs_domain, run_docs

from treefork import AgentContext, AgentStep, Shell

# -- pooled worktrees ---------------------------------------------------------------------


async def test_reused_worktrees_carry_nothing_from_earlier_agents_but_kept_folders(
    repo: Path,
) -> None:
    commit_file(repo, ".gitignore", "node_modules/\nbuild/\n")
    seen: list[dict[str, Any]] = []

    async def agent(context: AgentContext) -> None:
        root = context.worktree
        seen.append(
            {
                "worktree": root,
                "leftovers": sorted(
                    str(path.relative_to(root))
                    for path in root.rglob("*")
                    if ".git" not in path.parts
                    and path.name not in ("README.md", ".gitignore", "docs", "src")
                    and path.parent.name not in ("docs", "src")
                ),
            }
        )
        (root / "build").mkdir(exist_ok=True)
        (root / "build" / f"{context.item}.o").write_text("ignored\n")
        (root / "node_modules").mkdir(exist_ok=True)
        (root / "node_modules" / f"{context.item}.js").write_text("warm\n")
        (root / "empty-folder").mkdir(exist_ok=True)

    step = AgentStep(agent)
    commit = Shell("echo '${item}' > 'docs/${item}.md' && git add docs && git commit -qm '${item}'")
    out = await run_docs(repo, docs_domain([step, commit], ["a", "b", "c"], max_parallel=1))

    assert out["status"] == "succeeded"
    assert len({entry["worktree"] for entry in seen}) == 1  # one worktree, reused
    assert seen[0]["leftovers"] == []
    assert seen[1]["leftovers"] == ["node_modules", "node_modules/a.js"]
    assert seen[2]["leftovers"] == ["node_modules", "node_modules/a.js", "node_modules/b.js"]
    assert [run_git(repo, "show", f"HEAD:docs/{name}.md") for name in "abc"] == [
        "a\n",
        "b\n",
        "c\n",
    ]
    assert treefork_branches(repo) == []
    assert worktree_paths(repo) == [repo]


async def test_an_agent_that_leaves_uncommitted_work_keeps_its_worktree(repo: Path) -> None:
    agent = [
        Shell(
            "echo '${item}' > 'docs/${item}.md' && git add docs && git commit -qm '${item}' "
            "&& echo draft > 'unsaved-${item}.txt'"
        )
    ]
    out = await run_docs(repo, docs_domain(agent, ["a", "b"], max_parallel=1, auto_commit=False))

    assert {agent["status"] for agent in agents_by_item(out).values()} == {"failed"}
    kept = [path for path in worktree_paths(repo) if path != repo]
    assert (
        sorted((path / f"unsaved-{name}.txt").exists() for path in kept for name in "ab").count(
            True
        )
        == 2
    )
    assert len(kept) == 2  # never reused: each one still holds a draft
    assert sorted(agent["worktree"] for agent in agents_by_item(out).values()) == sorted(map(str, kept))


# -- worktree set-up ------------------------------------------------------------------------


async def test_on_worktree_create_runs_once_per_new_worktree(repo: Path, tmp_path: Path) -> None:
    commit_file(repo, ".gitignore", "node_modules/\n")
    log = tmp_path / "created.log"
    domain = docs_domain(
        [
            Shell(
                "test -f node_modules/.ready && echo '${item}' > 'docs/${item}.md' "
                "&& git add docs && git commit -qm '${item}'"
            )
        ],
        ["a", "b", "c", "d", "e", "f"],
        max_parallel=2,
        on_worktree_create='mkdir -p node_modules && touch node_modules/.ready && echo "$PWD" >> "$LOG"',
        env={"LOG": str(log)},
    )
    out = await run_docs(repo, domain)

    assert out["status"] == "succeeded"
    created = log.read_text().splitlines()
    assert 1 <= len(created) <= 2
    assert len(set(created)) == len(created)


async def test_a_failing_on_worktree_create_fails_the_agent_with_its_output(repo: Path) -> None:
    state = snapshot(repo)
    domain = docs_domain(
        [Shell("echo '${item}' > 'docs/${item}.md' && git add docs && git commit -qm '${item}'")],
        ["a", "b"],
        on_worktree_create="echo installing; echo 'npm ERR! missing package.json' >&2; exit 3",
    )
    out = await run_docs(repo, domain)

    agents = agents_by_item(out)
    assert {agent["status"] for agent in agents.values()} == {"failed"}
    for agent in agents.values():
        assert "on_worktree_create failed" in agent["error"]
        assert "exit code 3" in agent["error"]
        assert "npm ERR! missing package.json" in agent["error"]
    assert snapshot(repo) == state
    assert not any("agents" in str(path) for path in worktree_paths(repo))


async def test_worktree_include_copies_the_env_file_into_agent_worktrees(repo: Path) -> None:
    commit_file(repo, ".gitignore", ".env\n")
    (repo / ".env").write_text("API_URL=http://localhost:8080\n")
    domain = docs_domain(
        [Shell("cp .env 'docs/${item}.env.txt' && git add docs && git commit -qm '${item}'")],
        ["a", "b", "c"],
        max_parallel=1,
        worktree_include=[".env"],
    )
    out = await run_docs(repo, domain)

    assert out["status"] == "succeeded"
    for name in "abc":
        assert (
            run_git(repo, "show", f"HEAD:docs/{name}.env.txt") == "API_URL=http://localhost:8080\n"
        )
    assert run_git(repo, "ls-files", ".env") == ""


# -- read-only agents -------------------------------------------------------------------------


async def test_read_only_agents_run_in_the_domain_worktree_without_branches(repo: Path) -> None:
    worktrees: list[Path] = []
    branches: list[list[str]] = []

    async def agent(context: AgentContext) -> str:
        worktrees.append(context.worktree)
        branches.append(treefork_branches(repo))
        assert not context.allow_commits
        return (context.worktree / "docs" / "index.md").read_text().splitlines()[0]

    out = await run_docs(repo, docs_domain([AgentStep(agent)], ["a", "b", "c"], isolation="none"))

    assert out["status"] == "succeeded"
    assert len(set(worktrees)) == 1
    assert worktrees[0].name == "docs" and worktrees[0].parent.name == "domains"
    assert all(not any("/agents/" in branch for branch in listed) for listed in branches)
    assert {agent["output_tail"] for agent in agents_by_item(out).values()} == {"line 1"}


async def test_a_read_only_agent_that_commits_fails_clearly_and_its_commit_is_dropped(
    repo: Path,
) -> None:
    domain = docs_domain(
        [Shell("echo sneaky > docs/sneaky.md && git add docs && git commit -qm sneaky")],
        ["a"],
        isolation="none",
    )
    out = await run_docs(repo, domain)

    agent = agents_by_item(out)["a"]
    assert agent["status"] == "failed"
    assert "read-only agents (isolation none) may not commit" in agent["error"]
    assert "docs/sneaky.md" not in run_git(repo, "ls-tree", "-r", "--name-only", "HEAD")
    assert out["domain_results"]["docs"]["files_modified"] == []
    assert not (repo / "docs" / "sneaky.md").exists()
    for branch in treefork_branches(repo):
        assert "sneaky" not in run_git(repo, "ls-tree", "-r", "--name-only", branch)


async def test_a_read_only_agent_that_commits_fails_alone_and_its_neighbours_go_on(
    repo: Path, treefork_home: Path
) -> None:
    # "a" tries to commit while "b" is in the middle of its step in the same worktree.
    script = (
        "case '${item}' in "
        "a) sleep 0.3; echo sneaky > docs/sneaky.md && git add docs/sneaky.md "
        "&& git commit -qm sneaky;; "
        "*) sleep 1.5; head -1 docs/index.md;; esac"
    )
    domain = docs_domain([Shell(script)], ["a", "b"], isolation="none")
    before = snapshot(repo)

    out = await run_docs(repo, domain, home=treefork_home)

    agents = agents_by_item(out)
    assert agents["a"]["status"] == "failed"
    assert "read-only agents (isolation none) may not commit" in agents["a"]["error"]
    assert agents["b"]["status"] == "succeeded", agents["b"]["error"]
    assert agents["b"]["output_tail"].strip() == "line 1"
    for branch in treefork_branches(repo):
        assert "sneaky" not in run_git(repo, "ls-tree", "-r", "--name-only", branch)
    assert snapshot(repo).files == before.files
    # What "a" staged was left uncommitted in the domain worktree: when the domain is done
    # it goes to the job's artifacts with the worktree's other uncommitted outputs.
    assert worktree_paths(repo) == [repo]
    artifacts = treefork_home / "jobs" / out["job_id"] / "artifacts" / "docs"
    assert (artifacts / "docs" / "sneaky.md").read_text() == "sneaky\n"


# -- git without merge-tree --write-tree ----------------------------------------------------


async def _merge_run(repo: Path) -> dict[str, Any]:
    commit = "git add -A && git commit -qm '${item}'"
    agents = [
        Shell(
            f"case '${{item}}' in a) echo A > docs/index.md;; b) echo B > docs/index.md;; "
            f"*) echo '${{item}}' > 'docs/${{item}}.md';; esac && {commit}"
        ),
    ]
    return await run_docs(repo, docs_domain(agents, ["a", "b", "c", "d"], max_parallel=1))


async def test_porcelain_fallback_gives_the_same_results_as_object_store_merges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"README.md": "# sample\n", "docs/index.md": "line 1\n"}
    modern = make_repo(tmp_path / "modern", files)
    old = make_repo(tmp_path / "old", files)

    object_store = await _merge_run(modern)

    async def no_merge_tree(cwd: Path) -> bool:
        return False

    monkeypatch.setattr("treefork.git.merge.object_store_merges", no_merge_tree)
    state = snapshot(old)
    porcelain_out = await _merge_run(old)

    assert snapshot(old).head != state.head  # merged at the end, as approved
    for out, repo in ((object_store, modern), (porcelain_out, old)):
        agents = agents_by_item(out)
        assert [agents[name]["status"] for name in "abcd"] == [
            "succeeded",
            "failed",
            "succeeded",
            "succeeded",
        ]
        assert agents["b"]["conflict_paths"] == ["docs/index.md"]
        assert agents["b"]["branch"] in treefork_branches(repo)  # its work is kept
    assert run_git(modern, "rev-parse", "HEAD^{tree}") == run_git(old, "rev-parse", "HEAD^{tree}")
    assert worktree_paths(old) == [old]


async def test_the_next_agents_worktree_is_made_ready_while_agents_run(repo: Path) -> None:
    """With max_parallel 4 (one spare worktree), the fifth agent's worktree is switched to
    its branch while the first four still run, and no more than five worktrees are made."""
    started = 0
    four_running = anyio.Event()
    saw_fifth_ready: list[bool] = []
    worktrees: set[Path] = set()

    def fifth_branch_exists() -> bool:
        listing = run_git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/treefork/")
        return any("/agents/docs/0004-" in name for name in listing.split())

    async def agent(context: AgentContext) -> None:
        nonlocal started
        started += 1
        worktrees.add(context.worktree)
        if started == 4:
            four_running.set()
        if context.item_index < 4:
            await four_running.wait()
            for _ in range(400):  # the branch shows in the repository: poll it
                if await anyio.to_thread.run_sync(fifth_branch_exists):
                    saw_fifth_ready.append(True)
                    break
                await anyio.sleep(0.05)

    domain = docs_domain([AgentStep(agent)], [f"item{index}" for index in range(8)], max_parallel=4)
    out = await run_docs(repo, domain)

    assert out["status"] == "succeeded", out["failures"]
    assert saw_fifth_ready == [True] * 4
    assert len(worktrees) <= 5
    assert treefork_branches(repo) == [] and worktree_paths(repo) == [repo]


@pytest.mark.parametrize("kind", ["map only", "with reduce", "kept worktrees"])
async def test_a_domain_gets_a_worktree_only_when_something_uses_it(repo: Path, kind: str) -> None:
    created: list[dict[str, Any]] = []

    def sink(event: dict[str, Any]) -> None:
        if event["event"] == "worktree" and event.get("action") == "created":
            created.append(event)

    agent = [Shell("echo '${item}' > 'docs/${item}.md' && git add docs && git commit -qm '${item}'")]
    reduce = [Shell("test -f docs/a.md && test -f docs/b.md")] if kind == "with reduce" else []
    domain = docs_domain(agent, ["a", "b"], reduce=reduce)
    keep = kind == "kept worktrees"

    out = await run_docs(repo, domain, keep_worktrees=keep, event_sinks=[sink])

    assert out["status"] == "succeeded", out["failures"]
    assert (repo / "docs" / "b.md").read_text() == "b\n"
    has_domain_worktree = any(event.get("domain") == "docs" for event in created)
    assert has_domain_worktree == (kind != "map only")
    assert (out["domain_results"]["docs"]["worktree"] is None) == (kind == "map only")
    if not keep:
        assert treefork_branches(repo) == [] and worktree_paths(repo) == [repo]
