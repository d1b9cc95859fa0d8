"""The graph state: what flows between supervisor, dispatcher, aggregator and merge review.

Ships inside the package as ``treefork.state``. Every value is plain JSON-compatible data
(TypedDicts of str, numbers, lists and dicts), so checkpointers can store it and LangGraph
Studio can show it. Keys that the dispatcher's concurrent domains write go through reducers.
"""

from __future__ import annotations

import warnings
from typing import Annotated, Any, Literal, NotRequired

# typing_extensions' TypedDict: on Python 3.11 pydantic (and so LangGraph Studio) cannot
# build JSON schemas from typing.TypedDict.
from typing_extensions import TypedDict

__all__ = (
    "AgentResult",
    "AgentTask",
    "BudgetState",
    "BudgetUsage",
    "DomainChoice",
    "DomainInput",
    "DomainOutput",
    "DomainResult",
    "DomainState",
    "Failure",
    "JobIdentity",
    "JobStatus",
    "MergeState",
    "ParallelInput",
    "ParallelOutput",
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


class BudgetUsage(TypedDict):
    """Resources a job used against its budget (one agent's are a :class:`treefork.Usage`)."""

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
    used: BudgetUsage
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
    uncommitted: NotRequired[list[str]]
    """Paths the agent left uncommitted (the item failed; see ``Map.auto_commit``)."""
    worktree: NotRequired[str | None]
    """The worktree kept for inspection when the agent left uncommitted work."""
    node: NotRequired[str]
    """The cluster node the agent ran on (remote executors only)."""


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


class ParallelInput(TypedDict, total=False):
    """What a run of the treefork graph is given (the input schema Studio's form shows).

    Run settings (``max_parallel``, ``auto_approve``, the home, budget limits) are not
    input: they come through the run's context (:class:`treefork.TreeforkContext`).
    """

    task: str
    """The task in words; the supervisor picks domains from it."""
    repo: str
    """Path of the user's git repository (default: the graph's ``repo``)."""
    base_branch: str
    """The user's branch the work starts from and merges back into (default: the branch
    checked out in ``repo``)."""
    job_id: str
    """Identifier of the job (default: generated); part of every branch and worktree name."""


class ParallelOutput(TypedDict, total=False):
    """What a finished run returns (the output schema): the job and its aggregate."""

    task: str
    """The task in words."""
    repo: str
    """The user's repository."""
    base_branch: str
    """The user's branch the work merges back into."""
    base_commit: str
    """The commit of ``base_branch`` when the job started."""
    job_id: str
    """Identifier of the job."""
    status: JobStatus
    """Job status after aggregation."""
    domains: list[DomainChoice]
    """The domains the supervisor chose, with the reason for each."""
    routing_message: str | None
    """Set when no domain was chosen: why, and what was defined."""
    session_branch: str
    """Where the domains' work was merged before review."""
    session_worktree: str
    """Path of the session worktree, when one was made."""
    domain_results: dict[str, DomainResult]
    """Per domain, what its sub-graph produced."""
    aggregated_files: list[str]
    """Sorted union of the files every merged domain modified."""
    all_tests_passed: bool | None
    """Whether every domain with a tests command passed it; None when no tests ran."""
    budget: BudgetState
    """Budget limits and use."""
    failures: list[Failure]
    """Every failure, with whether it is critical."""
    merge: MergeState
    """What merge review did."""


class ParallelState(TypedDict, total=False):
    """State of the top-level treefork graph.

    Input keys (:class:`ParallelInput`): ``task`` and ``repo`` (required unless the graph
    has a default repository); ``base_branch`` (default: the branch checked out in
    ``repo``) and ``job_id`` (default: generated).
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
    domains: list[DomainChoice]
    """The domains the supervisor chose, with the reason for each."""
    routing_message: str | None
    """Set when no domain was chosen: why, and what was defined."""
    analyzer: str
    """Which analyzer chose the domains (``rules``, ``llm``, ``llm->rules``)."""
    analyzer_usage: dict[str, Any]
    """What choosing the domains spent (``tokens``, ``cost``): part of the budget used."""
    domain_results: Annotated[dict[str, DomainResult], merge_by_key]
    """Per domain, what its sub-graph produced (written concurrently: keyed reducer)."""
    aggregated_files: list[str]
    """Sorted union of the files every domain modified."""
    all_tests_passed: bool | None
    """True when every chosen domain with a tests command passed it; False when one
    failed it; None when no chosen domain has tests (nothing ran to pass)."""
    budget: BudgetState
    """Budget limits and use."""
    failures: Annotated[list[Failure], merge_failures]
    """Every failure, with whether it is critical."""
    status: JobStatus
    """Job status after aggregation."""
    merge: MergeState
    """What merge review did."""


class JobIdentity(TypedDict):
    """A domain and the identity of its job: what any domain or agent task needs to open
    the job, so that one resumed in another process (after a crash) can, without the
    dispatcher running again."""

    domain: str
    job_id: str
    repo: str
    base_branch: str
    base_commit: str
    """The commit of ``base_branch`` when the job started."""
    session_branch: str


class DomainInput(JobIdentity, total=False):
    """What the dispatcher sends a domain's sub-graph: the domain and the job's identity."""

    retry_items: list[str]
    """Item ids retried from the DLQ (``treefork dlq retry``): those items run again, every
    other item keeps its recorded result, and reduce and tests run again."""


class DomainOutput(TypedDict):
    """What a domain's sub-graph hands the parent graph."""

    domain_results: Annotated[dict[str, DomainResult], merge_by_key]


class DomainState(DomainInput, total=False):
    """State of one domain's sub-graph.

    prepare -> setup -> map (one ``agent`` task per work item, sent in waves) -> reduce ->
    tests -> integrate -> finish.
    """

    branch: str
    worktree: str
    setup_commit: str
    """Domain branch head after setup: every agent branches from it."""
    variables: dict[str, Any]
    items: list[dict[str, Any]]
    """The selected work items (``value``, ``item_id``, ``index``)."""
    agents: Annotated[dict[str, AgentResult], merge_by_key]
    """Every finished agent's result by item id (written by the agent tasks)."""
    wave: int
    """How many waves of agent tasks were sent."""
    map_done: bool
    map_checked_out: str
    """The commit the domain worktree's files matched when a DLQ retry's map began."""
    phase_usage: dict[str, Any]
    """Tokens and cost setup and reduce steps spent (``tokens``, ``cost``)."""
    error: str | None
    failed_phase: str | None
    tests_passed: bool | None
    tests_output: str
    merged_into_session: bool
    started_at: float
    domain_results: Annotated[dict[str, DomainResult], merge_by_key]
    """This domain's result, for the parent graph (set by ``finish``)."""


class AgentTask(JobIdentity):
    """What one ``agent`` task of a domain's map phase is sent: one work item."""

    setup_commit: str
    branch: str
    worktree: str
    item: dict[str, Any]
    """The work item (``value``, ``item_id``, ``index``)."""
    total: int
    """Items in the domain's map phase."""
    counts: list[int]
    """Items succeeded and failed when its wave was sent (for the error policy)."""
    last_wave: bool
    variables: dict[str, Any]
    retry_items: list[str]


def __getattr__(name: str) -> Any:
    if name == "Usage":
        warnings.warn(
            "treefork.state.Usage is deprecated; use treefork.state.BudgetUsage "
            "(treefork.Usage is a step's or agent's usage)",
            DeprecationWarning,
            stacklevel=2,
        )
        return BudgetUsage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
