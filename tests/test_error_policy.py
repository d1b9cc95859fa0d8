"""Error policy, knob by knob: what each setting changes in a real run.

Items run one at a time (``max_parallel=1``) so that the order, and with it which items
run and which are skipped, is the same every time. An item named ``bad...`` fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cliutil import environment, treefork

from treefork import Budget, Domain, ErrorPolicy, Map, Shell, build_graph

FAIL_BAD_ITEMS = Shell("case '${item}' in bad*) echo '${item} is bad' >&2; exit 7;; esac")


async def _run(
    repo: Path, items: list[str], policy: ErrorPolicy, agent: Shell = FAIL_BAD_ITEMS
) -> dict[str, Any]:
    domain = Domain(
        "work",
        critical=True,
        error_policy=policy,
        map=Map(input=items, agent=[agent], max_parallel=1),
    )
    graph = build_graph([domain], auto_approve=True)
    out = await graph.ainvoke({"task": "work through the items", "repo": str(repo)})
    return dict(out["domain_results"]["work"])


def _statuses(result: dict[str, Any]) -> list[tuple[Any, str]]:
    return [(agent["item"], agent["status"]) for agent in result["agents"]]


def _skip_reasons(result: dict[str, Any]) -> set[str]:
    return {agent["skip_reason"] for agent in result["agents"] if agent["status"] == "skipped"}


ITEMS = ["ok1", "bad1", "ok2", "bad2", "ok3"]


async def test_by_default_a_failed_item_goes_on_to_the_next(repo: Path) -> None:
    result = await _run(repo, ITEMS, ErrorPolicy())
    assert _statuses(result) == [
        ("ok1", "succeeded"),
        ("bad1", "failed"),
        ("ok2", "succeeded"),
        ("bad2", "failed"),
        ("ok3", "succeeded"),
    ]
    bad = result["agents"][1]
    assert bad["attempts"] == 1
    assert "exit code 7" in bad["error"] and "bad1 is bad" in bad["output_tail"]


async def test_on_item_failure_stop_starts_no_item_after_the_first_failure(repo: Path) -> None:
    result = await _run(repo, ITEMS, ErrorPolicy(on_item_failure="stop"))
    assert _statuses(result) == [
        ("ok1", "succeeded"),
        ("bad1", "failed"),
        ("ok2", "skipped"),
        ("bad2", "skipped"),
        ("ok3", "skipped"),
    ]
    assert _skip_reasons(result) == {"error policy: on_item_failure is stop"}


async def test_on_item_failure_retry_runs_a_failed_item_again_until_it_succeeds(
    repo: Path, tmp_path: Path
) -> None:
    # Each item fails its first attempt and succeeds on the second: the attempt count is
    # kept outside the repository, where no worktree reset can touch it.
    counters = tmp_path / "attempts"
    counters.mkdir()
    flaky = Shell(
        f"counter='{counters}/${{item}}'; "
        'n=$(cat "$counter" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$counter"; '
        '[ "$n" -ge 2 ] || { echo "attempt $n fails" >&2; exit 1; }'
    )
    result = await _run(repo, ["a", "b"], ErrorPolicy(on_item_failure="retry"), flaky)
    assert _statuses(result) == [("a", "succeeded"), ("b", "succeeded")]
    assert [agent["attempts"] for agent in result["agents"]] == [2, 2]
    assert (counters / "a").read_text().strip() == "2"
    assert result["agent_runs"] == 4


async def test_on_item_failure_retry_gives_up_after_max_retries(repo: Path) -> None:
    result = await _run(repo, ["bad", "ok"], ErrorPolicy(on_item_failure="retry", max_retries=2))
    assert _statuses(result) == [("bad", "failed"), ("ok", "succeeded")]
    assert [agent["attempts"] for agent in result["agents"]] == [3, 1]


async def test_continue_on_failure_false_stops_at_the_first_failure(repo: Path) -> None:
    result = await _run(repo, ITEMS, ErrorPolicy(continue_on_failure=False))
    assert _statuses(result) == [
        ("ok1", "succeeded"),
        ("bad1", "failed"),
        ("ok2", "skipped"),
        ("bad2", "skipped"),
        ("ok3", "skipped"),
    ]
    assert _skip_reasons(result) == {"error policy: continue_on_failure is false"}


@pytest.mark.parametrize(
    ("max_failures", "expected"),
    [
        (1, ["succeeded", "failed", "skipped", "skipped", "skipped"]),
        (2, ["succeeded", "failed", "succeeded", "failed", "skipped"]),
        (3, ["succeeded", "failed", "succeeded", "failed", "succeeded"]),
    ],
)
async def test_max_failures_stops_once_that_many_items_failed(
    repo: Path, max_failures: int, expected: list[str]
) -> None:
    result = await _run(repo, ITEMS, ErrorPolicy(max_failures=max_failures))
    assert [status for _, status in _statuses(result)] == expected
    if "skipped" in expected:
        reason = f"error policy: {max_failures} failures reached max_failures {max_failures}"
        assert _skip_reasons(result) == {reason}


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        # After ok1, bad1 the failure rate is 1/2.
        (0.5, ["succeeded", "failed", "skipped", "skipped", "skipped"]),
        # After ok2, bad2 it is 2/4: still below 0.6, so every item runs.
        (0.6, ["succeeded", "failed", "succeeded", "failed", "succeeded"]),
    ],
)
async def test_failure_threshold_stops_once_the_failure_rate_reaches_it(
    repo: Path, threshold: float, expected: list[str]
) -> None:
    result = await _run(repo, ITEMS, ErrorPolicy(failure_threshold=threshold))
    assert [status for _, status in _statuses(result)] == expected
    if "skipped" in expected:
        assert _skip_reasons(result) == {
            "error policy: failure rate 50% reached failure_threshold 50%"
        }


async def test_items_skipped_by_the_policy_leave_the_domain_partial_not_failed(
    repo: Path,
) -> None:
    result = await _run(repo, ITEMS, ErrorPolicy(max_failures=1))
    assert (result["status"], result["succeeded"], result["failed"], result["skipped"]) == (
        "partial",
        1,
        1,
        3,
    )


# --- from a workflow file, through the command line --------------------------------------

POLICY_WORKFLOW = """\
name: policy
mode: mapreduce
map:
  input: "printf 'ok1\\\\nbad1\\\\nok2\\\\n'"
  max_parallel: 1
  agent_template:
    - shell: "case '${{item}}' in bad*) exit 7;; esac"
error_policy:
  on_item_failure: {policy}
"""


@pytest.mark.parametrize(("policy", "dlq"), [("dlq", 1), ("skip", 0)])
def test_dlq_sends_failed_items_to_the_dead_letter_queue_and_skip_does_not(
    tmp_path: Path, repo: Path, policy: str, dlq: int
) -> None:
    workflow = tmp_path / "policy.yml"
    workflow.write_text(POLICY_WORKFLOW.format(policy=policy))
    finished = treefork("run", workflow, "--repo", repo, "--yes", "--json", env=environment())
    assert finished.returncode == 1, finished.stderr  # partial
    report = finished.report()
    assert report["domains"]["policy"]["succeeded"] == 2
    assert [failure["item"] for failure in report["failures"]] == ["1"]  # listed either way
    assert report["dlq"] == dlq


async def test_every_retry_is_an_agent_run_the_budget_counts(repo: Path) -> None:
    domain = Domain(
        "work",
        error_policy=ErrorPolicy(on_item_failure="retry", max_retries=5),
        map=Map(input=["bad"], agent=[FAIL_BAD_ITEMS], max_parallel=1),
    )
    graph = build_graph([domain], auto_approve=True, budget=Budget(agent_runs=3))
    out = await graph.ainvoke({"task": "work through the items", "repo": str(repo)})

    (agent,) = out["domain_results"]["work"]["agents"]
    assert (agent["status"], agent["attempts"]) == ("failed", 3)
    assert out["budget"]["used"]["agent_runs"] == 3
    assert out["budget"]["exhausted"] is True
