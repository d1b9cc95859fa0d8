"""Bad input through ``treefork run``: malformed files stop before anything runs (exit 2);
problems that only show while running fail the job cleanly (exit 1).

Every case runs the installed ``treefork`` script on a fresh repository and checks what a
user would see: the exit code, a message that says where the problem is, no traceback, and a
repository (and treefork home) without anything left behind.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from cliutil import TRACEBACK, Finished, environment, treefork
from gitutil import make_repo, snapshot, treefork_branches, worktree_paths

MALFORMED = Path(__file__).resolve().parent.parent / "workflow" / "malformed"
FILES = sorted(MALFORMED.glob("*.yml"))


@dataclass(frozen=True)
class MalformedRun:
    repo: Path
    home: Path
    finished: Finished


def _run_malformed(path: Path, scratch: Path) -> MalformedRun:
    repo = make_repo(scratch / path.stem / "repo")
    home = scratch / path.stem / "home"
    finished = treefork(
        "run",
        path,
        "--repo",
        repo,
        "--json",
        "--yes",
        env=environment(TREEFORK_HOME=str(home)),
    )
    return MalformedRun(repo, home, finished)


@pytest.fixture(scope="module")
def malformed_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, MalformedRun]:
    """Every malformed file through ``treefork run``, several processes at a time."""
    scratch = tmp_path_factory.mktemp("malformed")
    workers = max(2, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        runs = pool.map(lambda path: _run_malformed(path, scratch), FILES)
        return {path.name: run for path, run in zip(FILES, runs, strict=True)}


def test_there_are_at_least_thirty_malformed_files() -> None:
    assert len(FILES) >= 30


@pytest.mark.parametrize("name", [path.name for path in FILES])
def test_malformed_file_exits_2_naming_file_and_position_with_nothing_created(
    name: str, malformed_runs: dict[str, MalformedRun]
) -> None:
    run = malformed_runs[name]
    finished = run.finished
    assert finished.returncode == 2, finished.stderr
    assert finished.stdout == ""
    assert TRACEBACK not in finished.stderr
    path = MALFORMED / name
    assert re.search(re.escape(str(path)) + r":\d+:\d+: ", finished.stderr), finished.stderr
    assert treefork_branches(run.repo) == []
    assert worktree_paths(run.repo) == [run.repo]
    assert not (run.home / "worktrees").exists() or not any((run.home / "worktrees").iterdir())


def test_a_workflow_file_that_does_not_exist_exits_2(tmp_path: Path, repo: Path) -> None:
    finished = treefork("run", tmp_path / "missing.yml", "--repo", repo)
    assert finished.returncode == 2
    assert f"{tmp_path / 'missing.yml'}: no such file" in finished.stderr
    assert TRACEBACK not in finished.stderr


@pytest.mark.parametrize(
    ("repo_argument", "message"),
    [("does-not-exist", "No such file or directory"), ("plain-folder", "not a git repository")],
)
def test_a_repository_that_cannot_be_used_exits_2_and_creates_nothing(
    tmp_path: Path, treefork_home: Path, repo_argument: str, message: str
) -> None:
    (tmp_path / "plain-folder").mkdir()
    workflow = _write(tmp_path, "flow.yml", _SIMPLE)
    finished = treefork("run", workflow, "--repo", tmp_path / repo_argument, "--json")
    assert finished.returncode == 2, finished.stderr
    assert message in finished.stderr
    assert TRACEBACK not in finished.stderr
    assert finished.stdout == ""
    assert not (treefork_home / "worktrees").exists()


def test_an_invalid_job_id_exits_2_and_creates_no_branch(tmp_path: Path, repo: Path) -> None:
    workflow = _write(tmp_path, "flow.yml", _SIMPLE)
    finished = treefork("run", workflow, "--repo", repo, "--job-id", "bad/../id", "--yes")
    assert finished.returncode == 2
    assert "job_id" in finished.stderr
    assert TRACEBACK not in finished.stderr
    assert treefork_branches(repo) == []


def test_yes_and_no_merge_together_exit_2(tmp_path: Path, repo: Path) -> None:
    workflow = _write(tmp_path, "flow.yml", _SIMPLE)
    finished = treefork("run", workflow, "--repo", repo, "--yes", "--no-merge")
    assert finished.returncode == 2
    assert "exclude each other" in finished.stderr
    assert treefork_branches(repo) == []


# --- problems that only show while running -------------------------------------------------

_SIMPLE = """\
name: simple
mode: mapreduce
map:
  input: "echo a"
  agent_template:
    - shell: "echo ${item}"
"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


RUNTIME_PROBLEMS = {
    "input_file_that_setup_did_not_create": (
        """\
name: flow
mode: mapreduce
setup:
  - shell: "echo setting up, but writing no items"
map:
  input: items.json
  agent_template:
    - shell: "echo ${item}"
""",
        ["phase map", "items.json", "no such file"],
    ),
    "input_command_that_fails": (
        """\
name: flow
mode: mapreduce
map:
  input: "ls no-such-folder"
  agent_template:
    - shell: "echo ${item}"
""",
        ["phase map", "command `ls no-such-folder`", "exit code 2", "no-such-folder"],
    ),
    "input_that_is_not_json": (
        """\
name: flow
mode: mapreduce
setup:
  - shell: "echo '{not json' > items.json"
map:
  input: items.json
  json_path: "$.items[*]"
  agent_template:
    - shell: "echo ${item.id}"
""",
        ["phase map", "items.json", "JSON"],
    ),
    "item_missing_a_field_a_step_uses": (
        """\
name: flow
mode: mapreduce
map:
  input: "echo '[{\\"id\\": \\"first\\"}, {\\"id\\": \\"second\\"}]'"
  json_path: "$[*]"
  agent_template:
    - shell: "echo ${item.id}"
    - shell: "echo ${item.nope}"
""",
        # Caught once the items are loaded, before any agent starts.
        ["phase map", "uses ${item.nope}, which no item has (their fields: id)"],
    ),
}


@pytest.mark.parametrize("case", sorted(RUNTIME_PROBLEMS))
def test_problems_that_show_while_running_fail_the_job_cleanly(
    case: str, tmp_path: Path, repo: Path
) -> None:
    text, fragments = RUNTIME_PROBLEMS[case]
    workflow = _write(tmp_path, f"{case}.yml", text)
    before = snapshot(repo)

    finished = treefork("run", workflow, "--repo", repo, "--yes", "--json")

    assert finished.returncode == 1, finished.stderr
    assert TRACEBACK not in finished.stderr
    report = finished.report()
    assert report["status"] == "failed"
    assert report["merged"] is False
    messages = " | ".join(failure["error"] for failure in report["failures"])
    for fragment in fragments:
        assert fragment in messages, messages
        assert fragment in finished.stderr, finished.stderr
    assert snapshot(repo) == before
