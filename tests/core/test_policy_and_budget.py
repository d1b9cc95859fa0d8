"""Error policy and budget decisions."""

from __future__ import annotations

from treefork.core.budget import BudgetUse, exhausted_reason
from treefork.core.policy import ItemCounts, attempts_allowed, stop_reason
from treefork.domain import ErrorPolicy


def test_default_policy_never_stops() -> None:
    assert stop_reason(ErrorPolicy(), ItemCounts(0, 50)) is None


def test_stop_and_continue_on_failure_stop_at_the_first_failure() -> None:
    assert stop_reason(ErrorPolicy(on_item_failure="stop"), ItemCounts(3, 1)) is not None
    assert stop_reason(ErrorPolicy(continue_on_failure=False), ItemCounts(3, 1)) is not None
    assert stop_reason(ErrorPolicy(on_item_failure="stop"), ItemCounts(3, 0)) is None


def test_max_failures_and_threshold() -> None:
    assert stop_reason(ErrorPolicy(max_failures=2), ItemCounts(5, 1)) is None
    assert "max_failures" in (stop_reason(ErrorPolicy(max_failures=2), ItemCounts(5, 2)) or "")
    assert stop_reason(ErrorPolicy(failure_threshold=0.5), ItemCounts(1, 2)) is not None
    assert stop_reason(ErrorPolicy(failure_threshold=0.5), ItemCounts(3, 1)) is None


def test_retry_allows_extra_attempts() -> None:
    assert attempts_allowed(ErrorPolicy()) == 1
    assert attempts_allowed(ErrorPolicy(on_item_failure="retry", max_retries=2)) == 3


def test_budget_limits() -> None:
    used = BudgetUse().add(tokens=100, cost=0.5, agent_runs=3)
    assert exhausted_reason(used, tokens=None, cost=None, agent_runs=None) is None
    assert "agent runs" in (exhausted_reason(used, tokens=None, cost=None, agent_runs=3) or "")
    assert "tokens" in (exhausted_reason(used, tokens=100, cost=None, agent_runs=None) or "")
    assert exhausted_reason(used, tokens=101, cost=0.6, agent_runs=4) is None
    assert "cost" in (exhausted_reason(used, tokens=None, cost=0.5, agent_runs=None) or "")
