"""The dead letter queue from the command line: failed items are kept with every attempt,
retried after their cause is fixed, merged into the same session, and merged with
``treefork merge``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from gitutil import make_repo, run_git, treefork_branches
from jobutil import log_lines, mapreduce_workflow, treefork

pytestmark = pytest.mark.slow

ITEMS = ["a", "b", "c", "d"]
FAILING = ["b", "d"]


def _flow(tmp_path: Path, name: str, markers: Path, *, retries: bool = False) -> Path:
    """Agents commit their file, then fail while a marker for their item exists (the
    "cause"), so a failed item's branch holds its work."""
    log = tmp_path / f"{name}.log"
    agent = (
        f"echo ${{item}} >> {log}; echo ${{item}} > out-${{item}}.txt; git add out-${{item}}.txt; "
        f"git commit -qm \"out ${{item}}\"; if [ -e {markers}/${{item}} ]; then echo \"cause: ${{item}} is broken\"; exit 7; fi"
    )
    policy = "error_policy:\n  on_item_failure: retry\n  max_retries: 1\n" if retries else ""
    return mapreduce_workflow(tmp_path / f"{name}.yml", log, ITEMS, agent=agent, sleep=0, extra=policy)


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    folder = tmp_path / "markers"
    folder.mkdir()
    for item in FAILING:
        (folder / item).touch()
    return folder


@pytest.fixture
def project(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo", {"README.md": "# r\n", ".gitignore": "items.json\n"})
    shutil.copytree(repo, tmp_path / "pristine")
    return repo


def _uninterrupted_tree(tmp_path: Path, home: Path) -> str:
    repo = tmp_path / "pristine"
    empty = tmp_path / "no-markers"
    empty.mkdir()
    done = treefork(home, "run", _flow(tmp_path, "clean", empty), "--repo", repo, "--yes", "--job-id", "clean")
    assert done.returncode == 0, done.stderr
    return run_git(repo, "rev-parse", "main^{tree}").strip()


def test_failed_items_retried_after_the_fix_end_with_all_items_merged(
    tmp_path: Path, project: Path, markers: Path
) -> None:
    home = tmp_path / "home"
    ran = treefork(home, "run", _flow(tmp_path, "flow", markers, retries=True), "--repo", project, "--json", "--job-id", "j")
    assert ran.returncode == 1, ran.stderr
    report = json.loads(ran.stdout)
    assert (report["status"], report["dlq"]) == ("partial", 2)

    listed = [json.loads(line) for line in treefork(home, "dlq", "list", "j", "--json").stdout.splitlines()]
    assert sorted(entry["item"] for entry in listed) == FAILING
    assert all(entry["attempts"] == 2 for entry in listed)
    for entry in listed:
        assert entry["branch"] in treefork_branches(project)  # the failed attempt's work is kept
    shown = json.loads(treefork(home, "dlq", "show", "j", listed[0]["item_id"], "--json").stdout)
    assert shown["item"] == listed[0]["item"]
    history = shown["attempt_history"]
    assert [attempt["attempt"] for attempt in history] == [1, 2]
    assert all("exit code 7" in attempt["error"] or "7" in attempt["error"] for attempt in history)
    assert all(f"cause: {listed[0]['item']} is broken" in attempt["output_tail"] for attempt in history)

    for marker in markers.iterdir():
        marker.unlink()  # the cause is fixed
    retried = treefork(home, "dlq", "retry", "j", "--max-parallel", "2", "--json")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    outcome = json.loads(retried.stdout)
    assert sorted(outcome["succeeded"]) == sorted(f"out-flow/{entry['item_id']}" for entry in listed)
    assert outcome["remaining"] == 0
    assert treefork(home, "dlq", "list", "j", "--json").stdout == ""
    assert len(treefork(home, "dlq", "list", "j", "--all", "--json").stdout.splitlines()) == 2
    assert log_lines(tmp_path / "flow.log").count("reduce") == 2  # reduce ran again
    retry_events = [json.loads(line) for line in treefork(home, "events", "j", "--json").stdout.splitlines()]
    retried_events = [e for e in retry_events if e["event"] == "dlq" and e.get("action") == "retried"]
    assert retried_events and sorted(retried_events[-1]["resolved"]) == sorted(e["item_id"] for e in listed)

    merged = treefork(home, "merge", "j")
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert "merged" in merged.stdout
    for item in ITEMS:
        assert (project / f"out-{item}.txt").read_text() == f"{item}\n"
    assert (project / "summary-out.txt").read_text().split() == [f"out-{item}.txt" for item in ITEMS]
    assert run_git(project, "rev-parse", "main^{tree}").strip() == _uninterrupted_tree(tmp_path, home)
    jobs = {row["job_id"]: row for row in map(json.loads, treefork(home, "jobs", "--json").stdout.splitlines())}
    assert (jobs["j"]["status"], jobs["j"]["merge"], jobs["j"]["dlq"]) == ("succeeded", "merged", 0)


def test_retry_of_one_item_and_a_cause_not_fixed(tmp_path: Path, project: Path, markers: Path) -> None:
    home = tmp_path / "home"
    ran = treefork(home, "run", _flow(tmp_path, "flow", markers), "--repo", project, "--no-merge", "--job-id", "j")
    assert ran.returncode == 1
    ids = {json.loads(line)["item"]: json.loads(line)["item_id"] for line in treefork(home, "dlq", "list", "j", "--json").stdout.splitlines()}
    (markers / "b").unlink()
    only_b = treefork(home, "dlq", "retry", "j", "--item", ids["b"])
    assert only_b.returncode == 0, only_b.stdout + only_b.stderr
    still = treefork(home, "dlq", "retry", "j", "--json")  # d is still broken
    assert still.returncode == 1
    assert json.loads(still.stdout)["failed"] == [f"out-flow/{ids['d']}"]
    [entry] = [json.loads(line) for line in treefork(home, "dlq", "list", "j", "--json").stdout.splitlines()]
    assert (entry["item"], entry["attempts"]) == ("d", 2)
    assert treefork(home, "dlq", "retry", "j", "--item", "nope").returncode == 2
    assert treefork(home, "dlq", "list", "unknown-job").returncode == 2
    # A partial job merges (only a failed one needs --override).
    merged = treefork(home, "merge", "j")
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert (project / "out-b.txt").exists() and not (project / "out-d.txt").exists()


def test_merge_of_a_failed_job_needs_override(tmp_path: Path, project: Path) -> None:
    home = tmp_path / "home"
    # docs succeeds and reaches the session branch; api is critical and its tests fail.
    flow = tmp_path / "two.yml"
    flow.write_text(
        """name: two
task: docs and api
domains:
  docs:
    keywords: [docs]
    map:
      input: "echo a"
      agent_template:
        - shell: echo ${item} > doc-${item}.txt && git add doc-${item}.txt && git commit -qm doc
          commit_required: true
  api:
    keywords: [api]
    critical: true
    map:
      input: "echo b"
      agent_template:
        - shell: echo ${item} > api-${item}.txt && git add api-${item}.txt && git commit -qm api
          commit_required: true
    tests: "false"
"""
    )
    ran = treefork(home, "run", flow, "--repo", project, "--no-merge", "--json", "--job-id", "f")
    assert json.loads(ran.stdout)["status"] == "failed", ran.stdout + ran.stderr
    before = run_git(project, "rev-parse", "main")
    refused = treefork(home, "merge", "f")
    assert refused.returncode == 1
    assert "refused" in refused.stdout and "override" in refused.stdout
    assert run_git(project, "rev-parse", "main") == before
    forced = treefork(home, "merge", "f", "--override", "--json")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert json.loads(forced.stdout)["status"] == "merged"
    assert (project / "doc-a.txt").exists() and not (project / "api-b.txt").exists()
