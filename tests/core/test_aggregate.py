"""Fan-in: status rules, files, tests verdict, failures."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from treefork.core.aggregate import all_tests_passed, domain_status, summarize_job


def _result(name: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": name,
        "status": "succeeded",
        "critical": False,
        "error": None,
        "failed_phase": None,
        "agents": [],
        "files_modified": [],
        "has_tests": False,
        "tests_passed": None,
        "merged_into_session": True,
        "tokens": 0,
        "cost": 0.0,
        "agent_runs": 0,
    }
    base.update(fields)
    return base


def _agent(item: str, status: str, error: str | None = None) -> dict[str, Any]:
    return {"item_id": item, "status": status, "error": error}


def test_domain_status_rules() -> None:
    assert (
        domain_status(failed_phase=None, total=3, succeeded=3, failed=0, skipped=0) == "succeeded"
    )
    assert domain_status(failed_phase=None, total=3, succeeded=2, failed=1, skipped=0) == "partial"
    assert domain_status(failed_phase=None, total=3, succeeded=2, failed=0, skipped=1) == "partial"
    assert domain_status(failed_phase=None, total=2, succeeded=0, failed=2, skipped=0) == "failed"
    assert (
        domain_status(failed_phase="setup", total=0, succeeded=0, failed=0, skipped=0) == "failed"
    )
    assert (
        domain_status(failed_phase=None, total=0, succeeded=0, failed=0, skipped=0) == "succeeded"
    )


def test_all_tests_passed_is_none_when_no_domain_has_tests() -> None:
    assert all_tests_passed([_result("a")]) is None
    assert all_tests_passed([]) is None
    assert all_tests_passed([_result("a"), _result("b", has_tests=True, tests_passed=True)]) is True
    assert (
        all_tests_passed(
            [
                _result("a", has_tests=True, tests_passed=True),
                _result("b", has_tests=True, tests_passed=None),
            ]
        )
        is False
    )


def test_status_failed_on_any_critical_failure_partial_on_others() -> None:
    ok = _result("a", files_modified=["x"])
    soft = _result("b", status="partial", agents=[_agent("1", "failed", "boom")])
    hard = _result("c", status="failed", critical=True, failed_phase="reduce", error="bad")
    assert summarize_job([ok], chosen=1).status == "succeeded"
    assert summarize_job([ok, soft], chosen=2).status == "partial"
    summary = summarize_job([ok, soft, hard], chosen=3)
    assert summary.status == "failed"
    assert summary.failures == [
        {"domain": "b", "item": "1", "phase": "map", "error": "boom", "critical": False},
        {"domain": "c", "item": None, "phase": "reduce", "error": "bad", "critical": True},
    ]
    assert summarize_job([], chosen=0).status == "skipped"


def test_files_are_the_sorted_union_of_merged_domains() -> None:
    results = [
        _result("a", files_modified=["z", "a"]),
        _result("b", files_modified=["a", "m"]),
        _result(
            "c",
            files_modified=["q"],
            merged_into_session=False,
            status="failed",
            failed_phase="tests",
        ),
    ]
    assert summarize_job(results, chosen=3).aggregated_files == ["a", "m", "z"]


@given(
    st.lists(st.lists(st.sampled_from(list("abcdef")), max_size=4), max_size=5),
    st.lists(st.booleans(), max_size=5),
)
def test_aggregated_files_are_sorted_unique_and_cover_every_merged_domain(
    files: list[list[str]], critical: list[bool]
) -> None:
    results = [
        _result(str(i), files_modified=f, critical=(critical[i] if i < len(critical) else False))
        for i, f in enumerate(files)
    ]
    summary = summarize_job(results, chosen=len(results))
    assert summary.aggregated_files == sorted(set(summary.aggregated_files))
    assert set(summary.aggregated_files) == {path for f in files for path in f}
    assert summary.status in ("succeeded", "skipped")


def test_item_failures_in_a_critical_domain_that_finished_leave_the_job_partial() -> None:
    critical_partial = _result(
        "a", status="partial", critical=True, agents=[_agent("1", "failed", "x")]
    )
    summary = summarize_job([critical_partial], chosen=1)
    assert summary.status == "partial"
    assert summary.failures[0]["critical"] is False
    critical_failed = _result(
        "a", status="failed", critical=True, agents=[_agent("1", "failed", "x")]
    )
    summary = summarize_job([critical_failed], chosen=1)
    assert summary.status == "failed"
    assert summary.failures[0]["critical"] is True
