"""For many generated job outcomes, the summary, the JSON and ``jobs`` say the same thing, and
what they say is what git holds.

Each outcome is drawn with a fixed seed: how many items, what each agent does (commits,
leaves its file for auto-commit, changes nothing, fails), whether the domain has tests and
whether they pass, and whether the run merges (``--yes``) or stops before (``--no-merge``).
The run prints the summary; ``resume`` of the finished job prints its JSON from the same
checkpoint; ``jobs --json`` reads the job store.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cliutil import TRACEBACK, environment, treefork
from gitutil import make_repo, run_git

BEHAVIOURS = ("commit", "write", "noop", "fail")
AGENT = (
    "case ${item} in "
    "*-fail) exit 1 ;; "
    "*-noop) true ;; "
    "*-write) echo ${item} > ${item}.txt ;; "
    "*-commit) echo ${item} > ${item}.txt && git add ${item}.txt && git commit -qm ${item} ;; "
    "esac"
)


@dataclass(frozen=True)
class Outcome:
    behaviours: tuple[str, ...]
    tests: str | None  # None, "exit 0" or "exit 1"
    merge: str  # "--yes" or "--no-merge"

    @property
    def items(self) -> list[str]:
        return [f"i{index}-{behaviour}" for index, behaviour in enumerate(self.behaviours)]

    def workflow(self) -> str:
        lines = "\\n".join(self.items)
        tests = f"\n    tests: {self.tests!r}" if self.tests else ""
        return (
            "name: outcomes\n"
            "domains:\n"
            "  work:\n"
            f"    critical: false{tests}\n"
            "    map:\n"
            f"      input: \"printf '{lines}\\n'\"\n"
            "      max_parallel: 3\n"
            "      agent_template:\n"
            f"        - shell: {json.dumps(AGENT)}\n"
        )


def _outcomes(count: int) -> list[Outcome]:
    rng = random.Random(20261207)
    drawn = []
    for _ in range(count):
        behaviours = tuple(rng.choice(BEHAVIOURS) for _ in range(rng.randint(1, 5)))
        drawn.append(
            Outcome(
                behaviours,
                rng.choice((None, "exit 0", "exit 1")),
                rng.choice(("--yes", "--no-merge")),
            )
        )
    # The corners, whatever the seed draws: all failed, nothing changed.
    drawn.append(Outcome(("fail", "fail"), None, "--yes"))
    drawn.append(Outcome(("noop",), "exit 0", "--yes"))
    return drawn


ROW = re.compile(
    r"│ work\s+│ (?P<status>\w+)\s+│ (?P<ok>\d+)\s+│ (?P<failed>\d+)\s+│ (?P<skipped>\d+)\s+│ "
    r"(?P<files>\d+)\s+│ (?P<tests>\S+(?: run)?)\s+│ (?P<merged>\S+)\s+│"
)
TOTALS = re.compile(
    r"^status: (?P<status>\w+)\s+files: (?P<files>\d+)\s+all tests passed: (?P<tests>.+?)\s+"
    r"agent runs: (?P<runs>\d+)",
    re.MULTILINE,
)
MERGE = re.compile(r"^merge: (?P<status>[\w_]+)", re.MULTILINE)


def _summary(text: str) -> dict[str, Any]:
    row, totals, merge = ROW.search(text), TOTALS.search(text), MERGE.search(text)
    assert row and totals and merge, text
    return {"row": row.groupdict(), "totals": totals.groupdict(), "merge": merge["status"]}


def _tests_word(value: bool | None) -> str:
    return {None: "no tests", True: "yes", False: "no"}[value]


@pytest.mark.parametrize(
    "outcome", _outcomes(10), ids=lambda o: f"{o.merge}-{o.tests}-{'.'.join(o.behaviours)}"
)
def test_summary_json_and_jobs_agree_with_each_other_and_with_git(
    tmp_path: Path, outcome: Outcome
) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "hello\n"})
    base = run_git(repo, "rev-parse", "main").strip()
    workflow = tmp_path / "outcomes.yml"
    workflow.write_text(outcome.workflow(), encoding="utf-8")
    env = environment(TREEFORK_HOME=str(tmp_path / "home"))

    ran = treefork("run", workflow, "--repo", repo, outcome.merge, env=env)
    assert TRACEBACK not in ran.stderr and ran.returncode in (0, 1), ran.stderr
    summary = _summary(ran.stdout)
    job_id = re.search(r"treefork job (\S+)", ran.stdout)
    assert job_id, ran.stdout
    again = treefork("resume", job_id[1], "--json", env=env, cwd=repo)
    assert again.returncode == ran.returncode, again.stderr
    report = again.report()
    (row,) = [json.loads(line) for line in treefork("jobs", "--json", env=env).stdout.splitlines()]
    domain = report["domains"]["work"]

    # What the agents did, told by the outcome itself.
    failed = outcome.behaviours.count("fail")
    succeeded = len(outcome.behaviours) - failed
    changed = sorted(
        f"{item}.txt" for item in outcome.items if item.endswith(("-commit", "-write"))
    )
    assert (domain["succeeded"], domain["failed"], domain["skipped"]) == (succeeded, failed, 0)
    assert (row["succeeded"], row["failed"], row["skipped"]) == (succeeded, failed, 0)
    assert summary["row"]["ok"] == str(succeeded) and summary["row"]["failed"] == str(failed)
    assert report["dlq"] == row["dlq"] == failed

    # Status, files and tests: the same in all three.
    assert report["status"] == row["status"] == summary["totals"]["status"]
    assert domain["status"] == summary["row"]["status"]
    merged_into_session = {True: "yes", False: "no"}[domain["merged_into_session"]]
    assert summary["row"]["merged"] == merged_into_session
    assert report["aggregated_files"] == (
        domain["files_modified"] if domain["merged_into_session"] else []
    )
    assert domain["files_modified"] == (changed if succeeded else [])
    assert summary["totals"]["files"] == str(len(report["aggregated_files"]))
    assert summary["row"]["files"] == str(len(domain["files_modified"]))
    if outcome.tests is None:
        assert report["all_tests_passed"] is None and domain["tests_passed"] is None
    elif domain["tests_passed"] is not None:  # they ran
        assert domain["tests_passed"] == (outcome.tests == "exit 0")
        assert report["all_tests_passed"] == domain["tests_passed"]
    words = {None: "not run", True: "passed", False: "failed"}
    assert summary["row"]["tests"] == (words[domain["tests_passed"]] if outcome.tests else "-")
    assert summary["totals"]["tests"] == _tests_word(report["all_tests_passed"])
    assert int(summary["totals"]["runs"]) == report["budget"]["used"]["agent_runs"]

    # Merge: the same in all three, and what git holds.
    merge_status = report["merge"]["status"]
    assert merge_status == row["merge"] == summary["merge"]
    main = run_git(repo, "rev-parse", "main").strip()
    if report["merged"]:
        assert merge_status == "merged" and outcome.merge == "--yes"
        assert sorted(run_git(repo, "diff", "--name-only", base, main).split()) == changed
    else:
        assert main == base  # nothing reached the user's branch
    if report["session_branch"] and domain["status"] != "failed":
        session = run_git(
            repo, "rev-parse", "--verify", "-q", report["session_branch"], check=False
        ).strip()
        if session:
            files = sorted(run_git(repo, "diff", "--name-only", base, session).split())
            assert files == report["aggregated_files"] == changed
    if outcome.merge == "--no-merge":
        assert merge_status == ("pending" if report["aggregated_files"] else "nothing_to_merge")
