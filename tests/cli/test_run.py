"""``treefork run``, ``validate`` and ``graph`` as a user runs them: the installed script in
a subprocess, on real repositories, with the treefork home in a temporary folder."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cliutil import (
    TRACEBACK,
    TREEFORK,
    claude_calls,
    environment,
    stub_bin,
    treefork,
    treefork_in_terminal,
)
from gitutil import run_git, snapshot, treefork_branches
from procutil import is_running

MALFORMED = Path(__file__).resolve().parent.parent / "workflow" / "malformed"

# Two domains without keywords (so both run for any task): docs succeeds and passes its
# tests; api has one item that fails, and is not critical, so the job is partial.
TWO_DOMAINS = """\
name: two-domains
task: "Write the docs and the api notes"
domains:
  docs:
    map:
      input: "printf 'intro\\\\nguide\\\\n'"
      agent_template:
        - shell: "mkdir -p docs && echo ${item} > docs/${item}.md && git add docs && git commit -q -m ${item}"
          commit_required: true
    tests: "test -f docs/intro.md && test -f docs/guide.md"
  api:
    map:
      input: "printf 'ok\\\\nbroken\\\\n'"
      agent_template:
        - shell: |
            if [ "${item}" = broken ]; then echo "cannot write ${item}" >&2; exit 3; fi
            mkdir -p api && echo ${item} > api/${item}.md && git add api && git commit -q -m ${item}
          commit_required: true
    tests: "false"
"""

SIMPLE = """\
name: simple
mode: mapreduce
map:
  input: "printf 'a\\\\nb\\\\n'"
  agent_template:
    - shell: "echo ${item} > out-${item}.txt && git add out-${item}.txt && git commit -q -m ${item}"
      commit_required: true
  max_parallel: 2
reduce:
  - shell: "test -f out-a.txt && test -f out-b.txt"
"""


def _write(folder: Path, text: str, name: str = "flow.yml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_json_prints_one_object_with_every_field_and_logs_go_to_stderr(
    tmp_path: Path, repo: Path
) -> None:
    workflow = _write(tmp_path, TWO_DOMAINS)

    finished = treefork("run", workflow, "--repo", repo, "--yes", "--json")

    assert finished.returncode == 1, finished.stderr  # partial: ran, but not all of it
    assert finished.stdout.count("\n") == 1 and finished.stdout.endswith("}\n")
    report = finished.report()
    assert report["status"] == "partial"
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", report["job_id"])
    assert report["session_branch"] == f"treefork/{report['job_id']}/session"
    assert report["merged"] is True
    docs, api = report["domains"]["docs"], report["domains"]["api"]
    assert {key: docs[key] for key in ("status", "succeeded", "failed", "skipped")} == {
        "status": "succeeded",
        "succeeded": 2,
        "failed": 0,
        "skipped": 0,
    }
    assert docs["files_modified"] == ["docs/guide.md", "docs/intro.md"]
    assert docs["tests_passed"] is True
    assert {key: api[key] for key in ("status", "succeeded", "failed", "skipped")} == {
        "status": "failed",
        "succeeded": 1,
        "failed": 1,
        "skipped": 0,
    }
    assert api["files_modified"] == ["api/ok.md"]
    assert api["tests_passed"] is False
    assert report["aggregated_files"] == ["docs/guide.md", "docs/intro.md"]
    assert report["all_tests_passed"] is False
    assert report["budget"]["used"]["agent_runs"] == 4
    assert report["budget"]["used"]["tokens"] == 0
    assert report["budget"]["limit"] == {"tokens": None, "cost": None, "agent_runs": None}
    failures = {
        (failure["domain"], failure["item"], failure["phase"]) for failure in report["failures"]
    }
    assert failures == {("api", "1", "map"), ("api", None, "tests")}
    assert report["dlq"] == 1
    # Logs and progress went to stderr; the merge really happened.
    assert "[api] agent 1: failed" in finished.stderr
    assert "exit code 3" in finished.stderr
    assert "merge: merged" in finished.stderr
    assert (repo / "docs/intro.md").exists() and not (repo / "api").exists()


def test_a_job_that_succeeds_exits_0_and_merges(tmp_path: Path, repo: Path) -> None:
    finished = treefork("run", _write(tmp_path, SIMPLE), "--repo", repo, "--yes", "--json")
    assert finished.returncode == 0, finished.stderr
    report = finished.report()
    assert (report["status"], report["merged"]) == ("succeeded", True)
    assert report["aggregated_files"] == ["out-a.txt", "out-b.txt"]
    assert (repo / "out-b.txt").read_text() == "b\n"
    assert treefork_branches(repo) == []


def test_a_failed_job_exits_1_and_leaves_the_repository_untouched(
    tmp_path: Path, repo: Path
) -> None:
    workflow = _write(tmp_path, SIMPLE.replace("test -f out-a.txt", "exit 9; test -f out-a.txt"))
    before = snapshot(repo)
    finished = treefork("run", workflow, "--repo", repo, "--yes", "--json")
    assert finished.returncode == 1
    report = finished.report()
    assert report["status"] == "failed"
    assert report["failures"][0]["phase"] == "reduce"
    assert "phase reduce, step exit 9; test -f out-a.txt && test -f out-b.txt: exit code 9" in (
        finished.stderr
    )
    assert report["merge"]["status"] == "nothing_to_merge"  # the failed domain was not merged
    assert snapshot(repo) == before


def test_no_merge_keeps_the_work_on_the_session_branch(tmp_path: Path, repo: Path) -> None:
    before = snapshot(repo)
    finished = treefork("run", _write(tmp_path, SIMPLE), "--repo", repo, "--no-merge", "--json")
    assert finished.returncode == 0, finished.stderr
    report = finished.report()
    assert report["merged"] is False
    assert report["merge"]["status"] == "pending"
    assert snapshot(repo) == before
    files = run_git(repo, "ls-tree", "--name-only", report["session_branch"]).split()
    assert {"out-a.txt", "out-b.txt"} <= set(files)


def test_job_id_and_task_options_are_used(tmp_path: Path, repo: Path) -> None:
    finished = treefork(
        "run", _write(tmp_path, SIMPLE), "--repo", repo, "--yes", "--json",
        "--job-id", "nightly-7", "--task", "regenerate outputs", "--max-parallel", "1",
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr
    report = finished.report()
    assert report["job_id"] == "nightly-7"
    assert run_git(repo, "log", "-1", "--format=%B").strip().endswith("Task: regenerate outputs")


def test_plain_lines_and_a_summary_table_when_not_on_a_terminal(tmp_path: Path, repo: Path) -> None:
    finished = treefork("run", _write(tmp_path, SIMPLE), "--repo", repo, "--yes")
    assert finished.returncode == 0, finished.stderr
    assert "\x1b[" not in finished.stderr
    lines = finished.stderr.splitlines()
    assert "[simple] setup ..." in lines
    assert "[simple] agent 0: succeeded — out-a.txt" in lines
    assert "[simple] succeeded: 2 succeeded, 0 failed, 0 skipped" in lines
    assert "treefork job" in finished.stdout and "merged into main" in finished.stdout


def test_live_display_on_a_terminal_shows_a_bar_per_domain(tmp_path: Path, repo: Path) -> None:
    workflow = _write(tmp_path, SIMPLE.replace("echo ${item} >", "sleep 0.6; echo ${item} >"))
    code, output = treefork_in_terminal(
        "run", workflow, "--repo", repo, "--yes", env=environment(COLUMNS="120")
    )
    assert code == 0, output
    assert "\x1b[" in output  # the display redraws itself with terminal control codes
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output)
    assert re.search(r"simple +━+ 0/2 map +running 2 +done 0 +failed 0", screen), screen
    assert re.search(r"simple +━+ 2/2 succeeded +running 0 +done 2 +failed 0", screen), screen
    assert "[simple] agent" not in output  # no plain lines on a terminal
    assert (repo / "out-a.txt").exists()


def test_on_a_terminal_without_yes_the_merge_is_asked_for(tmp_path: Path, repo: Path) -> None:
    code, output = treefork_in_terminal(
        "run", _write(tmp_path, SIMPLE), "--repo", repo,
        env=environment(COLUMNS="120"), answer=(b"Merge into main?", b"y\n"),
    )  # fmt: skip
    assert code == 0, output
    assert "Merge into main?" in output
    assert (repo / "out-a.txt").exists()
    assert treefork_branches(repo) == []


def _ignore_sigint() -> None:
    # As for a command started in the background by a shell: SIGINT is ignored.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sigint_or_sigterm_stops_the_job_with_exit_130_and_kills_its_agents(
    tmp_path: Path, repo: Path, signum: signal.Signals
) -> None:
    pids = tmp_path / "pids"
    workflow = _write(
        tmp_path,
        f"""\
name: sleepy
mode: mapreduce
map:
  input: "printf 'a\\\\nb\\\\n'"
  agent_template:
    - shell: "sleep 60 & echo $! >> {pids}; wait"
  max_parallel: 2
""",
    )
    process = subprocess.Popen(
        [str(TREEFORK), "run", str(workflow), "--repo", str(repo), "--yes", "--json"],
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigint if signum == signal.SIGTERM else None,  # noqa: PLW1509
    )
    try:
        deadline = time.monotonic() + 30
        while (
            not pids.exists() or len(pids.read_text().split()) < 2
        ) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pids.exists(), "the agents never started"
        time.sleep(1.0)  # the agents run on, recording nothing
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    assert TRACEBACK not in stderr
    assert stdout == ""
    sleepers = [int(pid) for pid in pids.read_text().split()]
    assert not any(is_running(pid) for pid in sleepers)
    (job,) = [json.loads(line) for line in treefork("jobs", "--json").stdout.splitlines()]
    assert job["status"] == "interrupted"
    assert job["duration"] >= 1.0  # to the interruption, not to the last record


def test_an_unexpected_error_is_one_short_message_with_the_traceback_kept(
    tmp_path: Path, repo: Path, treefork_home: Path
) -> None:
    workflow = _write(tmp_path, SIMPLE)
    unusable = "sqlite:///" + str(tmp_path / "no-such-folder" / "checkpoints.db")

    finished = treefork("run", workflow, "--repo", repo, "--json", "--checkpointer", unusable)

    assert finished.returncode == 1
    assert TRACEBACK not in finished.stderr
    assert "error: unexpected" in finished.stderr and "--debug" in finished.stderr
    (log,) = (treefork_home / "logs").glob("crash-*.log")
    assert TRACEBACK in log.read_text()
    shown = treefork("run", workflow, "--repo", repo, "--checkpointer", unusable, "--debug")
    assert shown.returncode == 1 and TRACEBACK in shown.stderr


# --- merge steps -----------------------------------------------------------------------

WITH_MERGE_STEPS = """\
name: merging
mode: mapreduce
env:
  NOTE: "merged by the merge phase"
map:
  input: "printf 'a\\\\n'"
  agent_template:
    - shell: "echo ${item} > out-${item}.txt && git add out-${item}.txt && git commit -q -m ${item}"
      commit_required: true
merge:
  - shell: |
      printf '%s\\n' "$NOTE" "${merge.source_branch}" "${merge.target_branch}" "${merge.session_id}" "${merge.worktree}" > MERGE-NOTE.txt
      git add MERGE-NOTE.txt && git commit -q -m "merge note"
  - claude: "/prodigy-merge-worktree ${merge.source_branch} ${merge.target_branch}"
"""


def test_merge_steps_run_in_the_session_worktree_before_the_merge(
    tmp_path: Path, repo: Path, treefork_home: Path
) -> None:
    log = tmp_path / "claude.log"
    env = environment(stub_bin(tmp_path / "bin", "claude"), CLAUDE_STUB_LOG=str(log))

    finished = treefork(
        "run", _write(tmp_path, WITH_MERGE_STEPS), "--repo", repo, "--yes", "--json",
        "--job-id", "merge-1", env=env,
    )  # fmt: skip

    assert finished.returncode == 0, finished.stderr
    report = finished.report()
    assert report["merged"] is True
    note = (repo / "MERGE-NOTE.txt").read_text().splitlines()
    assert note[:4] == [
        "merged by the merge phase",
        "treefork/merge-1/session",
        "main",
        "merge-1",
    ]
    assert Path(note[4]).is_relative_to(treefork_home) and note[4].endswith("session")
    (call,) = claude_calls(log)
    assert call["prompt"] == "/prodigy-merge-worktree treefork/merge-1/session main"
    assert call["cwd"] == note[4]
    assert report["budget"]["used"]["tokens"] == 15
    assert "[merging] merge ..." in finished.stderr


def test_a_failing_merge_step_refuses_the_merge_and_exits_1(tmp_path: Path, repo: Path) -> None:
    workflow = _write(
        tmp_path,
        WITH_MERGE_STEPS.split("merge:\n", maxsplit=1)[0]
        + 'merge:\n  - shell: "echo no remote >&2; exit 4"\n',
    )
    before = snapshot(repo)
    finished = treefork("run", workflow, "--repo", repo, "--yes", "--json")
    assert finished.returncode == 1, finished.stderr
    report = finished.report()
    assert report["status"] == "succeeded"
    assert report["merge"]["status"] == "refused"
    message = report["merge"]["message"]
    assert "phase merge, step echo no remote >&2; exit 4: exit code 4" in message
    assert "no remote" in message and report["session_branch"] in message
    assert snapshot(repo) == before


# --- validate and graph ----------------------------------------------------------------


def test_validate_accepts_a_good_file(tmp_path: Path) -> None:
    finished = treefork("validate", _write(tmp_path, SIMPLE))
    assert finished.returncode == 0
    assert finished.stdout.strip().endswith("valid prodigy workflow, domains: simple")


def test_validate_lists_every_problem_with_its_position_and_exits_2() -> None:
    path = MALFORMED / "several_problems.yml"
    finished = treefork("validate", path)
    assert finished.returncode == 2
    assert f"invalid workflow {path} (9 problems):" in finished.stderr
    positions = re.findall(re.escape(str(path)) + r":(\d+):(\d+): ", finished.stderr)
    assert len(positions) == 9
    assert TRACEBACK not in finished.stderr


def test_validate_prints_each_warning_on_one_line(tmp_path: Path) -> None:
    workflow = _write(tmp_path, SIMPLE + "error_policy:\n  error_collection: aggregate\n")
    finished = treefork("validate", workflow)
    assert finished.returncode == 0
    (warning,) = [line for line in finished.stderr.splitlines() if line.startswith("warning:")]
    assert re.match(rf"warning: {re.escape(str(workflow))}:\d+:\d+: .*error_collection", warning)


def test_graph_without_a_file_prints_the_shape_as_text_or_mermaid() -> None:
    finished = treefork("graph", "--mermaid")
    assert finished.returncode == 0
    text = finished.stdout
    assert text.lstrip().startswith(("graph TD", "---", "%%{init"))
    for node in ("supervisor", "dispatcher", "aggregator", "merge_review"):
        assert re.search(rf"\b{node}\b", text), text
    assert "__start__ --> supervisor" in text and "merge_review --> __end__" in text
    edges = treefork("graph").stdout.splitlines()
    assert "supervisor --> dispatcher" in edges and "merge_review --> __end__" in edges


EXAMPLES = Path(__file__).resolve().parent.parent / "workflow" / "examples"
GRAPHED = """\
name: graphed
mode: mapreduce
setup:
  - shell: "make items"
map:
  input: items.json
  json_path: "$.items[*]"
  max_parallel: 3
  agent_template:
    - claude: "/fix ${item.path}"
    - shell: "cargo test"
      timeout: 60
      on_failure:
        claude: "/debug ${shell.output}"
reduce:
  - shell: "echo ${map.successful} done"
merge:
  - shell: "git log --oneline -3"
"""


def test_graph_of_a_workflow_draws_its_domains_phases_and_steps(tmp_path: Path) -> None:
    finished = treefork("graph", _write(tmp_path, GRAPHED))

    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    assert lines[0].startswith("workflow graphed (prodigy format")
    expected = [
        "  domain graphed  [critical] (sub-graph)",
        "    setup (domain worktree)",
        "      1. shell: make items",
        "    map: input items.json (json_path $.items[*]), 3 agents at once, each in its "
        "own worktree",
        "      1. claude: /fix ${item.path}",
        "      2. shell: cargo test  [timeout 60s]",
        "         on_failure:",
        "           1. claude: /debug ${shell.output}",
        "    reduce (domain worktree, after the agents merged)",
        "      1. shell: echo ${map.successful} done",
        "  merge steps (session worktree, after approval)",
        "    1. shell: git log --oneline -3",
    ]
    positions = [lines.index(line) for line in expected]
    assert positions == sorted(positions)


def test_graph_mermaid_of_a_workflow_has_one_subgraph_per_domain(tmp_path: Path) -> None:
    finished = treefork("graph", _write(tmp_path, GRAPHED), "--mermaid")

    assert finished.returncode == 0, finished.stderr
    chart = finished.stdout
    assert chart.startswith("flowchart TD\n")
    assert chart.count("subgraph ") == 1 and chart.count("\n  end") == 1
    assert "/fix #36;#123;item.path#125;" not in chart  # "$" is plain text
    assert "/fix $#123;item.path#125;" in chart
    assert "-. fails .->" in chart and "aggregator --> merge_review" in chart
    assert '"' not in "".join(re.findall(r'\["(.*?)"\]', chart))
    several = treefork(
        "graph", EXAMPLES / "multi-domain.yml", "--mermaid",
        env=environment(TREEFORK_PARALLEL="2"),
    )  # fmt: skip
    assert several.returncode == 0, several.stderr
    assert several.stdout.count("subgraph ") == several.stdout.count("dispatcher --> ") >= 2


def test_graph_of_an_invalid_workflow_is_a_clean_error(tmp_path: Path) -> None:
    finished = treefork("graph", _write(tmp_path, "name: x\nmode: mapreduce\n"))
    assert finished.returncode == 2 and TRACEBACK not in finished.stderr
    assert "map" in finished.stderr


def test_the_script_is_the_installed_one() -> None:
    assert TREEFORK.exists() and os.access(TREEFORK, os.X_OK)
    finished = treefork("--help")
    assert finished.returncode == 0
    for command in ("run", "validate", "graph"):
        assert command in finished.stdout


def test_stdout_is_only_json_even_when_every_item_fails(tmp_path: Path, repo: Path) -> None:
    workflow = _write(tmp_path, SIMPLE.replace("echo ${item} >", "exit 5; echo ${item} >"))
    finished = treefork("run", workflow, "--repo", repo, "--yes", "--json")
    assert finished.returncode == 1
    report = json.loads(finished.stdout)
    assert report["status"] == "failed"
    assert [failure["item"] for failure in report["failures"] if failure["phase"] == "map"] == [
        "0",
        "1",
    ]
    assert report["dlq"] == 2


def test_a_workflow_without_a_name_and_a_defaulted_count_runs_under_its_files_name(
    tmp_path: Path, repo: Path
) -> None:
    text = SIMPLE.replace("name: simple\n", "").replace(
        "max_parallel: 2", "max_parallel: ${MAX_WORKERS:-2}"
    )
    workflow = _write(tmp_path, text, "nightly-docs.yml")

    finished = treefork("run", workflow, "--repo", repo, "--yes", "--json")

    assert finished.returncode == 0, finished.stderr
    report = finished.report()
    assert report["merge"]["status"] == "merged"
    assert set(report["domains"]) == {"nightly-docs"}
    (job,) = [json.loads(line) for line in treefork("jobs", "--json").stdout.splitlines()]
    assert job["workflow"] == "nightly-docs"
    assert (repo / "out-a.txt").exists() and (repo / "out-b.txt").exists()
