"""What a job reports is what happened: work an agent leaves uncommitted is never dropped,
merge commits and conflicts name their items, and figures are true."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gitutil import commit_file, run_git, treefork_branches, worktree_paths
from graphutil import agents_by_item, docs_domain, run_docs

from treefork import Domain, Map, Shell
from treefork.core.items import WorkItem, item_label
from treefork.errors import WorkflowError
from treefork.workflow import load_workflow

# -- uncommitted work ---------------------------------------------------------------------


async def test_an_agent_that_leaves_files_uncommitted_fails_and_keeps_its_worktree(
    repo: Path,
) -> None:
    before = run_git(repo, "rev-parse", "main").strip()
    domain = docs_domain([Shell("echo ${item} > ${item}.txt")], ["a", "b"], auto_commit=False)
    out = await run_docs(repo, domain)

    agents = agents_by_item(out)
    for item in ("a", "b"):
        agent = agents[item]
        assert agent["status"] == "failed"
        assert agent["uncommitted"] == [f"{item}.txt"]
        assert f"{item}.txt" in agent["error"] and "auto_commit" in agent["error"]
        kept = Path(agent["worktree"])
        assert (kept / f"{item}.txt").read_text() == f"{item}\n"  # nothing dropped
        assert kept in worktree_paths(repo)
    assert out["domain_results"]["docs"]["status"] == "failed"
    assert out["domain_results"]["docs"]["succeeded"] == 0
    assert out["merge"]["status"] != "merged"
    assert run_git(repo, "rev-parse", "main").strip() == before
    failures = {failure["item"]: failure["error"] for failure in out["failures"]}
    assert set(failures) == {"0", "1"}


async def test_by_default_what_the_agent_left_is_committed_and_merged(repo: Path) -> None:
    domain = docs_domain([Shell("echo ${item} > ${item}.txt")], ["a", "b"])
    out = await run_docs(repo, domain)

    assert out["status"] == "succeeded", out["failures"]
    assert out["merge"]["status"] == "merged"
    assert {"a.txt", "b.txt"} <= set(run_git(repo, "ls-files").split())
    subjects = run_git(repo, "log", "--format=%s", "main").splitlines()
    assert "treefork: a (changes the agent left uncommitted)" in subjects
    assert treefork_branches(repo) == []
    assert worktree_paths(repo) == [repo]


async def test_auto_commit_leaves_ignored_files_out(repo: Path) -> None:
    commit_file(repo, ".gitignore", "*.log\n")
    agent = [Shell("echo ${item} > ${item}.txt; echo noise > ${item}.log")]
    out = await run_docs(repo, docs_domain(agent, ["a"]))
    assert out["status"] == "succeeded", out["failures"]
    files = set(run_git(repo, "ls-files").split())
    assert "a.txt" in files and "a.log" not in files


async def test_an_agent_that_commits_and_leaves_more_fails_with_the_leftovers_named(
    repo: Path,
) -> None:
    agent = [
        Shell(
            "echo ${item} > ${item}.txt; git add ${item}.txt; git commit -qm ${item}; echo x > stray.txt"
        )
    ]
    out = await run_docs(repo, docs_domain(agent, ["a"], auto_commit=False))
    (result,) = agents_by_item(out).values()
    assert result["status"] == "failed"
    assert result["uncommitted"] == ["stray.txt"]
    assert len(result["commits"]) == 1
    assert "a.txt" not in run_git(repo, "ls-files", "main").split()


def test_a_workflow_map_can_turn_auto_commit_off(tmp_path: Path) -> None:
    path = tmp_path / "w.yml"
    path.write_text(
        "name: w\nmode: mapreduce\nmap:\n  input: items.json\n  auto_commit: false\n"
        "  agent_template:\n    - shell: echo ${item}\n"
    )
    (domain,) = load_workflow(path).domains
    assert domain.map is not None and domain.map.auto_commit is False
    path.write_text(path.read_text().replace("auto_commit: false", "auto_commit: maybe"))
    with pytest.raises(WorkflowError, match="auto_commit"):
        load_workflow(path)


# -- history that names its items ---------------------------------------------------------


async def test_merge_commits_name_their_items(repo: Path) -> None:
    items = [{"path": "docs/api.md"}, {"path": "docs/faq.md"}]
    agent = [
        Shell(
            "mkdir -p docs && echo x >> ${item.path} && git add -A && git commit -qm 'edit ${item.path}'",
            commit_required=True,
        )
    ]
    out = await run_docs(repo, docs_domain(agent, items))
    assert out["status"] == "succeeded", out["failures"]
    subjects = run_git(repo, "log", "--format=%s", "main").splitlines()
    assert "treefork: merge docs/api.md into docs" in subjects
    assert "treefork: merge docs/faq.md into docs" in subjects
    assert not any("merge agent" in subject for subject in subjects)


async def test_a_conflict_names_the_item_and_its_paths(repo: Path) -> None:
    agent = [
        Shell(
            "echo ${item} > shared.txt && git add -A && git commit -qm '${item}'",
            commit_required=True,
        )
    ]
    out = await run_docs(repo, docs_domain(agent, ["first", "second"]))
    failed = [agent for agent in agents_by_item(out).values() if agent["status"] == "failed"]
    assert len(failed) == 1
    error = failed[0]["error"]
    assert error.startswith(f"{failed[0]['item']}: merging into docs conflicts in: shared.txt")
    assert failed[0]["conflict_paths"] == ["shared.txt"]


@pytest.mark.parametrize(
    ("value", "label"),
    [
        ("docs/api.md", "docs/api.md"),
        ({"path": "src/a.py", "id": 3}, "src/a.py"),
        ({"id": 7, "score": 2}, "7"),
        ({"score": 2}, '{"score":2}'),
        (12, "12"),
        ("line one\nline two", "line one line two"),
        ("", "item 4"),
        ("x" * 80, "x" * 59 + "…"),
    ],
)
def test_item_labels_are_short_and_on_one_line(value: Any, label: str) -> None:
    assert item_label(WorkItem(value, "4", 4)) == label


# -- hygiene ------------------------------------------------------------------------------


async def test_setup_outputs_go_to_the_job_artifacts_and_the_worktree_goes(
    repo: Path, treefork_home: Path
) -> None:
    domain = Domain(
        "docs",
        keywords=["docs"],
        setup=[Shell("""echo '["a", "b"]' > items.json; mkdir -p out; echo r > out/report.txt""")],
        map=Map(
            input="items.json",
            agent=[
                Shell("echo ${item} > ${item}.md && git add ${item}.md && git commit -qm ${item}")
            ],
        ),
    )
    events: list[dict[str, Any]] = []
    out = await run_docs(repo, domain, event_sinks=[events.append])

    assert out["merge"]["status"] == "merged", out["merge"]
    assert worktree_paths(repo) == [repo]
    assert treefork_branches(repo) == []
    artifacts = treefork_home / "jobs" / out["job_id"] / "artifacts" / "docs"
    assert (artifacts / "items.json").read_text() == '["a", "b"]\n'
    assert (artifacts / "out" / "report.txt").read_text() == "r\n"
    (event,) = [event for event in events if event["event"] == "artifacts"]
    assert event["domain"] == "docs" and event["folder"] == str(artifacts)
    assert sorted(event["paths"]) == ["items.json", "out/report.txt"]
    assert "items.json" not in run_git(repo, "ls-files").split()  # outputs are not merged


# -- history shape --------------------------------------------------------------------------


async def test_squash_history_brings_one_commit_per_domain_listing_its_items(repo: Path) -> None:
    before = run_git(repo, "rev-parse", "main").strip()
    step = Shell("echo ${item} > ${item}.txt && git add . && git commit -qm 'write ${item}'")
    out = await run_docs(repo, docs_domain([step], ["a.md", "b.md", "c.md"]), history="squash")

    assert out["status"] == "succeeded", out["failures"]
    assert out["merge"]["status"] == "merged"
    subjects = run_git(repo, "log", "--format=%s", f"{before}..main").splitlines()
    squash = [subject for subject in subjects if subject.startswith("treefork: docs")]
    assert squash == ["treefork: docs (3 items)"], subjects
    assert not [s for s in subjects if s.startswith(("write ", "treefork: merge a"))], subjects
    body = run_git(repo, "log", "-1", "--format=%b", "--grep=treefork: docs (3 items)", "main")
    assert body.split() == ["-", "a.md", "-", "b.md", "-", "c.md"]
    for item in ("a.md", "b.md", "c.md"):
        assert (repo / f"{item}.txt").read_text() == f"{item}\n"
    # The agents' own commits never reached the branch, yet nothing is left behind.
    assert "write a.md" not in run_git(repo, "log", "--format=%s", "main")
    assert treefork_branches(repo) == []
    assert worktree_paths(repo) == [repo]


async def test_by_default_each_agent_merge_is_kept_and_named_by_its_item(repo: Path) -> None:
    before = run_git(repo, "rev-parse", "main").strip()
    step = Shell("echo ${item} > ${item}.txt && git add . && git commit -qm 'write ${item}'")
    out = await run_docs(repo, docs_domain([step], ["a.md", "b.md"]))

    assert out["status"] == "succeeded", out["failures"]
    subjects = run_git(repo, "log", "--format=%s", f"{before}..main").splitlines()
    assert {"write a.md", "write b.md"} <= set(subjects)
    assert {"treefork: merge a.md into docs", "treefork: merge b.md into docs"} <= set(subjects)


async def test_squashing_the_same_work_twice_adds_nothing(repo: Path) -> None:
    from treefork.git.merge import squash_into_branch

    run_git(repo, "branch", "target")
    run_git(repo, "checkout", "-q", "-b", "work")
    commit_file(repo, "w.txt", "w\n", "work")
    run_git(repo, "checkout", "-q", "main")
    first = await squash_into_branch(repo, "target", "work", "treefork: docs (1 item)")
    second = await squash_into_branch(repo, "target", "work", "treefork: docs (1 item)")

    assert first.merged and not second.merged
    assert second.commit == first.commit == run_git(repo, "rev-parse", "target").strip()
    assert run_git(repo, "rev-list", "--parents", "-1", "target").split()[1:] == [
        run_git(repo, "rev-parse", "main").strip()
    ]


def test_merge_history_is_read_from_the_workflow(tmp_path: Path) -> None:
    path = tmp_path / "wf.yml"
    path.write_text(
        "name: squash\nmode: mapreduce\nmap:\n  input: items.json\n  agent_template:\n"
        "    - shell: echo ${item}\nmerge:\n  history: squash\n",
        encoding="utf-8",
    )
    workflow = load_workflow(path, env={})
    assert (workflow.history, workflow.merge) == ("squash", ())
    path.write_text(path.read_text().replace("squash\n", "linear\n"), encoding="utf-8")
    with pytest.raises(WorkflowError, match="history"):
        load_workflow(path, env={})


async def test_gc_deletes_the_branches_of_squashed_work_and_keeps_unmerged_ones(
    repo: Path,
) -> None:
    from cliutil import treefork

    step = Shell("echo ${item} > ${item}.txt && git add . && git commit -qm 'write ${item}'")
    out = await run_docs(
        repo, docs_domain([step], ["a.md", "b.md"]), history="squash", keep_worktrees=True
    )
    assert out["merge"]["status"] == "merged"
    kept = treefork_branches(repo)
    assert kept  # kept on purpose: their commits are not ancestors of main
    run_git(repo, "branch", "treefork/orphan/work", "main")
    run_git(repo, "checkout", "-q", "treefork/orphan/work")
    commit_file(repo, "unmerged.txt", "x\n", "unmerged")
    run_git(repo, "checkout", "-q", "main")

    gc = treefork("worktree", "gc", cwd=repo)

    assert gc.returncode == 0, gc.stderr
    assert treefork_branches(repo) == ["treefork/orphan/work"], gc.stdout
    assert "merged into one of your branches" in gc.stdout
    assert worktree_paths(repo) == [repo]


def test_the_map_variable_has_exactly_the_fields_validate_accepts() -> None:
    from treefork.core.items import MAP_FIELDS
    from treefork.phases.reduce import map_summary

    def result(index: int, status: str) -> Any:
        return {
            "item_id": str(index), "item_index": index, "item": f"i{index}", "status": status,
            "error": None, "output_tail": "", "files": [], "commits": [],
        }  # fmt: skip

    summary = map_summary(
        {"0": result(0, "succeeded"), "1": result(1, "failed"), "2": result(2, "succeeded")}
    )
    assert set(summary) == MAP_FIELDS
    assert (summary["successful"], summary["failed"], summary["total"]) == (2, 1, 3)
    assert summary["success_rate"] == 66.7
    assert [entry["success"] for entry in summary["results"]] == [True, False, True]
    assert map_summary({})["success_rate"] == 0.0
