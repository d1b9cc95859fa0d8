"""Prodigy's own workflows under ``treefork run``: each ends the way its comments describe.

The corpus is the copy in ``tests/workflow/prodigy_corpus`` (MIT, see its LICENSE). Shell-only
workflows run as they are. Workflows with ``claude:`` steps run with stub programs first on
``PATH`` (``tests/cli/stubs``): a ``claude`` that records every prompt, replies in the Claude
CLI's JSON (10 + 5 tokens, 0.001 USD per call) and, per test, writes or commits the files
the real command would produce, so that map and reduce have something to work on; and
stand-ins for debtmap, just and cargo, or for documentation builders that report errors
(so that the workflows' ``on_failure`` handlers run).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cliutil import (
    TRACEBACK,
    Finished,
    claude_calls,
    environment,
    stub_bin,
    treefork,
)
from gitutil import make_repo, run_git, snapshot

from treefork import build_graph
from treefork.workflow import load_workflow

CORPUS = Path(__file__).resolve().parent.parent / "workflow" / "prodigy_corpus"


def run_workflow(relative: str, repo: Path, env: dict[str, str] | None = None) -> Finished:
    return treefork(
        "run", CORPUS / relative, "--repo", repo, "--yes", "--json", env=env, timeout=120
    )


def items_of(report: dict[str, Any]) -> tuple[int, int, int]:
    (domain,) = report["domains"].values()
    return domain["succeeded"], domain["failed"], domain["skipped"]


# --- shell-only workflows ----------------------------------------------------------------


def test_minimal_mapreduce_merges_its_three_output_files_and_its_reduce_passes(
    repo: Path,
) -> None:
    finished = run_workflow("workflows/tests/minimal-mapreduce.yml", repo)

    assert finished.returncode == 0, finished.stderr
    report = finished.report()
    assert report["status"] == "succeeded" and report["merged"] is True
    names = ["item-one", "item-three", "item-two"]
    assert report["aggregated_files"] == [f"output-{name}.txt" for name in names]
    assert items_of(report) == (3, 0, 0)
    assert (repo / "output-item-two.txt").read_text() == (
        "Processed by agent: item-two\nItem ID: 2\n"
    )
    assert "[minimal-mapreduce-test] reduce ..." in finished.stderr
    assert run_git(repo, "status", "--porcelain") == ""


def test_commit_validation_fails_only_the_item_that_made_no_commit(repo: Path) -> None:
    finished = run_workflow("tests/workflows/test-commit-validation.yml", repo)

    assert finished.returncode == 1, finished.stderr  # partial: ran, one item failed
    report = finished.report()
    assert report["status"] == "partial"
    assert items_of(report) == (2, 1, 0)
    (failure,) = report["failures"]
    assert failure["item"] == "2"
    assert "commit_required: the step did not create a commit" in failure["error"]
    assert report["dlq"] == 1
    assert report["merged"] is True
    assert (repo / "file1.txt").exists() and (repo / "file3.txt").exists()
    assert not (repo / "file2.txt").exists()


def test_mapreduce_context_resolves_string_items(repo: Path) -> None:
    finished = run_workflow("workflows/test-mapreduce-context.yml", repo)
    assert finished.returncode == 0, finished.stderr
    report = finished.report()
    assert report["status"] == "succeeded"
    assert items_of(report) == (2, 0, 0)
    assert report["merge"]["status"] == "nothing_to_merge"


async def test_mapreduce_context_agents_name_their_item_and_run_in_their_own_worktree(
    repo: Path, treefork_home: Path
) -> None:
    workflow = load_workflow(CORPUS / "workflows/test-mapreduce-context.yml", env={})
    graph = build_graph(workflow.domains, auto_approve=True)

    out = await graph.ainvoke({"task": "check the context", "repo": str(repo)})

    (result,) = out["domain_results"].values()
    outputs = {agent["item"]: agent["output_tail"] for agent in result["agents"]}
    assert set(outputs) == {"item1", "item2"}
    for item, output in outputs.items():
        first, directory = output.splitlines()
        assert first == f"Processing {item} in directory:"
        assert Path(directory).is_relative_to(treefork_home)


def test_capture_parallel_analysis_fails_cleanly_for_its_missing_input(repo: Path) -> None:
    before = snapshot(repo)
    finished = run_workflow("examples/capture-parallel-analysis.yml", repo)

    assert finished.returncode == 1
    assert TRACEBACK not in finished.stderr
    report = finished.report()
    assert report["status"] == "failed"
    (failure,) = report["failures"]
    assert failure["phase"] == "map"
    assert re.search(r"work items from files\.json: .*no such file", failure["error"])
    assert "phase map" in finished.stderr and "files.json" in finished.stderr
    assert snapshot(repo) == before


def test_command_input_with_json_output(repo: Path) -> None:
    finished = run_workflow("workflows/test-mapreduce.yml", repo)
    assert finished.returncode == 0, finished.stderr
    assert items_of(finished.report()) == (3, 0, 0)


def test_command_input_with_one_item_per_line(tmp_path: Path) -> None:
    rust = {"src/main.rs": "fn main() {}\n", "src/lib.rs": "pub fn f() {}\n", "x.rs": "\n"}
    repo = make_repo(tmp_path / "rusty", {"README.md": "# r\n", **rust})
    finished = run_workflow("examples/mapreduce-command-input.yml", repo)
    assert finished.returncode == 0, finished.stderr
    assert items_of(finished.report()) == (3, 0, 0)
    assert "[analyze-rust-files] agent" in finished.stderr


def test_json_input_written_by_setup(tmp_path: Path, repo: Path) -> None:
    # The workflow's setup counts items with jq. Without jq installed, a stand-in that
    # understands only `.items | length` takes its place.
    path_first = None if shutil.which("jq") else stub_bin(tmp_path / "bin", "jq")
    finished = run_workflow("examples/mapreduce-json-input.yml", repo, environment(path_first))
    assert finished.returncode == 0, finished.stderr
    report = finished.report()
    assert items_of(report) == (3, 0, 0)
    assert "[process-work-items] reduce ..." in finished.stderr


@pytest.fixture
def fixed_tmp_file_lock() -> Iterator[None]:
    """test-mapreduce-resume.yml writes /tmp/resume-test-items.json itself: one run at a
    time on this machine, whichever test session it belongs to."""
    with open("/tmp/treefork-resume-test.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def test_resume_workflow_runs_through_when_not_interrupted(
    repo: Path, fixed_tmp_file_lock: None
) -> None:
    finished = run_workflow("workflows/tests/test-mapreduce-resume.yml", repo)
    assert finished.returncode == 0, finished.stderr
    report = finished.report()
    assert items_of(report) == (5, 0, 0)
    assert len(report["aggregated_files"]) == 5
    assert (repo / "output-item-five.txt").read_text().startswith("Item: item-five\nID: 5\n")
    assert not Path("/tmp/resume-test-items.json").exists()  # its reduce cleaned up


# --- workflows with claude steps -----------------------------------------------------------

CLAUDE_FILES = sorted(
    str(path.relative_to(CORPUS))
    for path in CORPUS.rglob("*.yml")
    if re.search(r"^\s*-?\s*claude:", path.read_text(), re.MULTILINE)
)

# What a repository these workflows are written for holds: docs, Rust sources, a .prodigy
# folder, the items file and the data file some of them read.
REPO_FILES = {
    "README.md": "# sample\n",
    "docs/index.md": "# Intro\n",
    "docs/guide.md": "# Guide\n",
    "src/main.rs": "fn main() {}\n",
    "src/lib.rs": "pub fn lib() {}\n",
    ".prodigy/config.json": "{}\n",
    "items.json": '{"items": [{"id": "a1"}, {"id": "a2"}]}\n',
    "workflows/data/workflow-syntax-sections.json": '{"sections": [{"name": "steps"}, {"name": "env"}]}\n',
}


@dataclass(frozen=True)
class ClaudeCase:
    """One claude workflow: what the stubs do, and what the run must show."""

    path: str
    exit_code: int
    prompts: tuple[str, ...]
    """Each must be (the start of) some prompt the claude stub received."""
    rules: tuple[dict[str, Any], ...] = ()
    tools: dict[str, str] = field(default_factory=dict)
    origin: bool = False
    """Give the repository an ``origin`` remote (its merge steps fetch from it)."""


def commits(*commands: str) -> tuple[dict[str, Any], ...]:
    return tuple({"match": command, "commit": True} for command in commands)


BOOK_ITEMS = (
    '[{"id": "intro", "file": "book/src/intro.md"}, {"id": "env", "file": "book/src/env.md"}]'
)

CLAUDE_CASES = {
    case.path: case
    for case in [
        ClaudeCase(
            "examples/capture-output-custom-vars.yml",
            0,
            ("/analyze-item --id a1", "/analyze-item --id a2", "/summarize-results --items 2"),
            tools={"debtmap": "debtmap"},
        ),
        ClaudeCase(
            "workflows/book-docs-drift.yml",
            0,
            (
                "/prodigy-analyze-features-for-book --project Prodigy --config .prodigy/book-config.json",
                "/prodigy-analyze-subsection-drift --project Prodigy --json "
                '\'{"id":"intro","file":"book/src/intro.md"}\' --features .prodigy/book-analysis/features.json',
                '/prodigy-fix-subsection-drift --project Prodigy --json \'{"id":"env","file":"book/src/env.md"}\'',
                "/prodigy-fix-book-build-errors --project Prodigy",  # on_failure: no book to build
                "/prodigy-validate-book-holistically --project Prodigy --book-dir book",
            ),
            rules=(
                {
                    "match": "/prodigy-detect-documentation-gaps",
                    "write": {".prodigy/book-analysis/flattened-items.json": BOOK_ITEMS},
                },
                *commits(
                    "/prodigy-split-oversized-chapters",
                    "/prodigy-analyze-subsection-drift",
                    "/prodigy-fix-subsection-drift",
                    "/prodigy-fix-book-build-errors",
                    "/prodigy-validate-book-holistically",
                ),
            ),
            tools={"mdbook": "build-fails"},
        ),
        ClaudeCase(
            "workflows/debtmap-reduce.yml",
            0,
            (
                '/prodigy-debtmap-plan --item \'{"File":{"path":"src/big.rs","score":42}}\' '
                "--output .prodigy/plan-0.md",
                "/prodigy-debtmap-plan --item "
                '\'{"Function":{"name":"parse","unified_score":{"final_score":17}}}\' '
                "--output .prodigy/plan-1.md",
                "/prodigy-debtmap-implement --plan .prodigy/plan-1.md",
                "/prodigy-compare-debt-results \\\n  --before .prodigy/debtmap-before.json",
            ),
            rules=commits("/prodigy-debtmap-implement", "/prodigy-compare-debt-results"),
            tools={"debtmap": "debtmap", "just": "just"},
        ),
        ClaudeCase(
            "workflows/documentation-drift-mapreduce.yml",
            0,
            (
                "/prodigy-docs-drift-analyze --area 'README' --pattern 'README.md,**/README.md'",
                "/prodigy-docs-drift-update critical --area 'api_docs'",
                "/prodigy-docs-drift-update major --area 'tests'",
                "/prodigy-docs-drift-update minor",
                "/prodigy-lint",
            ),
            rules=commits("/prodigy-docs-drift-update", "/prodigy-lint"),
            tools={"cargo": "cargo"},
        ),
        ClaudeCase(
            "workflows/fix-files-mapreduce.yml",
            0,
            (
                "/analyze-and-fix-file src/cook/execution/mapreduce.rs --complexity 25",
                "/analyze-and-fix-file tests/integration_test.rs --complexity 10",
            ),
            tools={"cargo": "cargo"},
        ),
        ClaudeCase(
            "workflows/mapreduce-env-example.yml",
            0,
            (
                "/process-item 'item1' --project example-project --config config.yml",
                "/fix-issue 'item2' --max-retries 3",  # on_failure: there is no ./process.sh
                '/summarize [{"item_id":"0","item":{"name":"item1","path":"file1.txt"}',
                "/validate-merge --branch treefork/",  # a merge step
            ),
            rules=(
                {"match": "/process-item", "commit": True},
                {"match": "/summarize", "write": {"summary.json": "{}"}},
            ),
        ),
        ClaudeCase(
            "workflows/mapreduce-example.yml",
            1,  # its reduce merges `prodigy-agent-*` branches, which only Prodigy makes
            (
                "/fix-issue god-function --file src/main.rs --line 40",
                "/fix-issue unwrap-in-lib --file src/lib.rs --line 10",
                '/summarize-fixes [{"item_id":"2","item":{"description":"god-function"',
            ),
            tools={"debtmap": "debtmap", "cargo": "cargo"},
        ),
        ClaudeCase(
            "workflows/mkdocs-drift.yml",
            0,
            (
                "/prodigy-analyze-mkdocs-drift --project Prodigy --json "
                '\'{"id":"guide","title":"guide","file":"docs/guide.md","type":"auto-discovered"',
                "/prodigy-enhance-mkdocs-page --project Prodigy --json "
                '\'{"id":"index","title":"index","file":"docs/index.md"',
                "/prodigy-fix-mkdocs-build-errors --project Prodigy",
                "/prodigy-fix-mermaid-diagrams 'mermaid-sonar docs --strict: 1 error (stub)",
            ),
            rules=commits(
                "/prodigy-detect-mkdocs-gaps",
                "/prodigy-analyze-mkdocs-drift",
                "/prodigy-fix-mkdocs-drift",
                "/prodigy-enhance-mkdocs-page",
                "/prodigy-fix-mkdocs-build-errors",
                "/prodigy-validate-mkdocs-structure",
                "/prodigy-fix-mermaid-diagrams",
            ),
            tools={"mkdocs": "build-fails", "mermaid-sonar": "build-fails"},
        ),
        ClaudeCase(
            "workflows/workflow-syntax-drift.yml",
            0,
            (
                '/prodigy-analyze-doc-section-drift --json \'{"name":"steps"}\'',
                "/prodigy-fix-workflow-syntax-drift",
                "/prodigy-merge-master",  # merge steps, after `git fetch origin`
                "/prodigy-merge-worktree treefork/",
            ),
            rules=commits(
                "/prodigy-analyze-doc-section-drift", "/prodigy-fix-workflow-syntax-drift"
            ),
            origin=True,
        ),
    ]
}


def test_every_claude_workflow_has_a_case() -> None:
    assert sorted(CLAUDE_CASES) == CLAUDE_FILES
    assert len(CLAUDE_FILES) == 9


def test_every_corpus_workflow_validates() -> None:
    files = sorted(CORPUS.rglob("*.yml"))
    finished = treefork("validate", *files)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.count(": valid prodigy workflow") == len(files) == 17
    assert TRACEBACK not in finished.stderr


@dataclass(frozen=True)
class ClaudeRun:
    repo: Path
    home: Path
    log: Path
    env: dict[str, str]
    finished: Finished | None = None


def _prepare_claude_case(case: ClaudeCase, folder: Path) -> ClaudeRun:
    repo = make_repo(folder / "repo", REPO_FILES)
    if case.origin:
        origin = folder / "origin.git"
        run_git(folder, "clone", "-q", "--bare", str(repo), str(origin))
        run_git(repo, "remote", "add", "origin", str(origin))
    rules = folder / "rules.json"
    rules.write_text(json.dumps(list(case.rules)))
    log = folder / "claude.log"
    tools = {"jq": "jq"} if shutil.which("jq") is None else {}
    bin_folder = stub_bin(folder / "bin", "claude", **tools, **case.tools)
    env = environment(
        bin_folder,
        CLAUDE_STUB_LOG=str(log),
        CLAUDE_STUB_RULES=str(rules),
        TREEFORK_HOME=str(folder / "home"),
    )
    return ClaudeRun(repo, folder / "home", log, env)


def _run_claude_case(case: ClaudeCase, scratch: Path) -> ClaudeRun:
    prepared = _prepare_claude_case(case, scratch / Path(case.path).stem)
    finished = run_workflow(case.path, prepared.repo, prepared.env)
    return ClaudeRun(prepared.repo, prepared.home, prepared.log, prepared.env, finished)


@pytest.fixture(scope="module")
def claude_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ClaudeRun]:
    """Every claude workflow under ``treefork run``, a few at a time."""
    scratch = tmp_path_factory.mktemp("claude-corpus")
    cases = list(CLAUDE_CASES.values())
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        runs = pool.map(lambda case: _run_claude_case(case, scratch), cases)
        return {case.path: run for case, run in zip(cases, runs, strict=True)}


@pytest.mark.parametrize("path", sorted(CLAUDE_CASES))
def test_claude_workflow_runs_end_to_end_with_a_stub_claude(
    path: str, claude_runs: dict[str, ClaudeRun]
) -> None:
    case, run = CLAUDE_CASES[path], claude_runs[path]
    if path == "workflows/mkdocs-drift.yml" and shutil.which("jq") is None:
        pytest.skip("its setup runs a jq program that only the real jq understands")
    finished = run.finished
    assert finished is not None

    assert finished.returncode == case.exit_code, finished.stderr
    assert TRACEBACK not in finished.stderr
    report = finished.report()
    calls = claude_calls(run.log)
    prompts = [call["prompt"] for call in calls]
    for expected in case.prompts:
        assert any(prompt.startswith(expected) for prompt in prompts), (expected, prompts)
    for prompt in prompts:  # every ${item...}, ${map...} and $ENV reference was resolved
        assert "${" not in prompt and not re.search(r"\$[A-Z_]{3,}", prompt), prompt
    assert all(Path(call["cwd"]).is_relative_to(run.home) for call in calls)
    used = report["budget"]["used"]
    assert used["tokens"] == 15 * len(calls)
    assert used["cost"] == pytest.approx(0.001 * len(calls))
    if case.exit_code == 0:
        assert report["status"] == "succeeded", report["failures"]
        assert report["merge"]["status"] in ("merged", "nothing_to_merge")


def test_mapreduce_example_stops_at_its_prodigy_only_merge_command(
    claude_runs: dict[str, ClaudeRun],
) -> None:
    run = claude_runs["workflows/mapreduce-example.yml"]
    report = run.finished.report()
    (failure,) = report["failures"]
    assert failure["phase"] == "reduce"
    assert "step git merge --no-ff prodigy-agent-*: exit code 1" in failure["error"]
    assert items_of(report) == (2, 0, 0)  # the low-severity item is filtered out
    assert not any("/generate-report" in call["prompt"] for call in claude_calls(run.log))


def test_fix_files_processes_only_rust_files_with_issues_most_complex_first(
    claude_runs: dict[str, ClaudeRun],
) -> None:
    prompts = [
        call["prompt"]
        for call in claude_calls(claude_runs["workflows/fix-files-mapreduce.yml"].log)
    ]
    files = sorted(prompt.split()[1] for prompt in prompts)
    assert files == [
        "src/analyze/context.rs",
        "src/cook/execution/mapreduce.rs",
        "src/cook/workflow/executor.rs",
        "src/main.rs",
        "tests/integration_test.rs",
    ]


def test_workflow_syntax_drift_runs_its_merge_steps_and_merges(
    claude_runs: dict[str, ClaudeRun],
) -> None:
    run = claude_runs["workflows/workflow-syntax-drift.yml"]
    report = run.finished.report()
    assert report["merged"] is True
    (last,) = [
        call for call in claude_calls(run.log) if "/prodigy-merge-worktree" in call["prompt"]
    ]
    assert last["prompt"] == f"/prodigy-merge-worktree {report['session_branch']} main"


def test_workflow_syntax_drift_without_a_remote_refuses_the_merge_at_git_fetch(
    tmp_path: Path,
) -> None:
    case = CLAUDE_CASES["workflows/workflow-syntax-drift.yml"]
    prepared = _prepare_claude_case(ClaudeCase(case.path, 1, (), case.rules), tmp_path)
    before = snapshot(prepared.repo)

    finished = run_workflow(case.path, prepared.repo, prepared.env)

    assert finished.returncode == 1
    report = finished.report()
    assert report["status"] == "succeeded" and report["merge"]["status"] == "refused"
    message = report["merge"]["message"]
    assert "phase merge, step git fetch origin: exit code 128" in message
    assert "'origin' does not appear to be a git repository" in message
    assert TRACEBACK not in finished.stderr
    assert snapshot(prepared.repo) == before
