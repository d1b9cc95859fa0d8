"""The graph state: what flows between supervisor, dispatcher, aggregator and merge review.

Ships inside the package as ``treefork.state``. Every value is plain JSON-compatible data
(TypedDicts of str, numbers, lists and dicts), so checkpointers can store it and LangGraph
Studio can show it. Keys that the dispatcher's concurrent domains write go through reducers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired, TypedDict

__all__ = (
    "AgentResult",
    "BudgetState",
    "DomainChoice",
    "DomainResult",
    "DomainState",
    "Failure",
    "JobStatus",
    "MergeState",
    "ParallelState",
    "merge_by_key",
    "merge_failures",
)

JobStatus = Literal["running", "succeeded", "partial", "failed", "skipped"]
"""succeeded: no failure; partial: only non-critical failures (or budget-skipped items);
failed: a critical domain failed; skipped: no domain was chosen."""


class DomainChoice(TypedDict):
    """A domain the supervisor chose, and why."""

    name: str
    reason: str


class Usage(TypedDict):
    """Resources used."""

    tokens: int
    cost: float
    agent_runs: int
    wall_time: float


class BudgetLimit(TypedDict):
    """Budget limits; None means unlimited."""

    tokens: int | None
    cost: float | None
    agent_runs: int | None


class BudgetState(TypedDict):
    """Budget limits and what has been used against them."""

    limit: BudgetLimit
    used: Usage
    exhausted: bool


class AgentResult(TypedDict):
    """The outcome of one map agent (one work item)."""

    item_id: str
    item_index: int
    item: Any
    status: Literal["succeeded", "failed", "skipped"]
    error: str | None
    skip_reason: NotRequired[str | None]
    output_tail: str
    branch: str | None
    commits: list[str]
    files: list[str]
    conflict_paths: list[str]
    attempts: int
    tokens: int
    cost: float
    started_at: float | None
    finished_at: float | None
    variables: NotRequired[dict[str, Any]]


class Failure(TypedDict):
    """One failure: a whole domain (item None) or one of its work items."""

    domain: str
    item: str | None
    phase: str
    error: str
    critical: bool


class DomainResult(TypedDict):
    """Everything one domain's sub-graph produced."""

    name: str
    status: Literal["succeeded", "partial", "failed"]
    critical: bool
    branch: str
    worktree: str | None
    error: str | None
    failed_phase: str | None
    total: int
    succeeded: int
    failed: int
    skipped: int
    agents: list[AgentResult]
    files_modified: list[str]
    has_tests: bool
    tests_passed: bool | None
    tests_output: str
    merged_into_session: bool
    kept_worktrees: list[str]
    tokens: int
    cost: float
    agent_runs: int
    started_at: float
    finished_at: float


class MergeState(TypedDict):
    """The outcome of merge review."""

    status: Literal[
        "pending", "merged", "rejected", "refused", "conflict", "nothing_to_merge", "skipped"
    ]
    target_branch: str
    session_branch: str
    commit: str | None
    message: str


def merge_by_key(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer: merge two dicts keyed by name; the newer value wins per key."""
    return {**(left or {}), **(right or {})}


def merge_failures(left: list[Failure] | None, right: list[Failure] | None) -> list[Failure]:
    """Reducer: union of failures, one per (domain, item, phase); the newer one wins."""
    merged: dict[tuple[str, str | None, str], Failure] = {}
    for failure in [*(left or []), *(right or [])]:
        merged[(failure["domain"], failure["item"], failure["phase"])] = failure
    return list(merged.values())


class ParallelState(TypedDict, total=False):
    """State of the top-level treefork graph.

    Input keys: ``task`` and ``repo`` (required); ``base_branch`` (default: the branch
    checked out in ``repo``), ``job_id`` (default: generated) and ``auto_approve``.
    """

    task: str
    """The task in words; the supervisor picks domains from it."""
    repo: str
    """Path of the user's git repository."""
    base_branch: str
    """The user's branch the work starts from and merges back into."""
    base_commit: str
    """The commit of ``base_branch`` when the job started."""
    job_id: str
    """Identifier of the job; part of every branch and worktree name."""
    session_branch: str
    """``treefork/<job>/session``: where the domains' work is merged before review."""
    session_worktree: str
    """Path of the session worktree (review the merged result there)."""
    auto_approve: bool
    """Merge without asking (never for a failed job)."""
    domains: list[DomainChoice]
    """The domains the supervisor chose, with the reason for each."""
    routing_message: str | None
    """Set when no domain was chosen: why, and what was defined."""
    analyzer: str
    """Which analyzer chose the domains (``rules``, ``llm``, ``llm->rules``)."""
    domain_results: Annotated[dict[str, DomainResult], merge_by_key]
    """Per domain, what its sub-graph produced (written concurrently: keyed reducer)."""
    aggregated_files: list[str]
    """Sorted union of the files every domain modified."""
    all_tests_passed: bool
    """True when at least one chosen domain has a tests command and every chosen domain
    with a tests command passed it. Domains without tests neither pass nor fail it."""
    budget: BudgetState
    """Budget limits and use."""
    failures: Annotated[list[Failure], merge_failures]
    """Every failure, with whether it is critical."""
    status: JobStatus
    """Job status after aggregation."""
    merge: MergeState
    """What merge review did."""


class DomainState(TypedDict, total=False):
    """State of one domain's sub-graph (setup -> map -> reduce -> tests -> integrate)."""

    job_id: str
    domain: str
    repo: str
    session_branch: str
    branch: str
    worktree: str
    base_commit: str
    """Domain branch head after setup: every agent branches from it."""
    variables: dict[str, Any]
    items: list[Any]
    agents: Annotated[dict[str, AgentResult], merge_by_key]
    error: str | None
    failed_phase: str | None
    tests_passed: bool | None
    tests_output: str
    merged_into_session: bool
    started_at: float
    result: DomainResult
    retry_items: list[str]
    """Item ids retried from the DLQ (``treefork dlq retry``): those items run again, every
    other item keeps its recorded result, and reduce and tests run again."""
