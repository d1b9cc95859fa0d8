"""The values the run report's page is made of (frozen records, no behaviour)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = (
    "AgentBar",
    "AgentStatus",
    "BudgetPoint",
    "DomainRow",
    "FailureRow",
    "JobSummary",
    "Lane",
    "Marker",
    "PhaseSpan",
    "ReportModel",
)

AgentStatus = Literal["succeeded", "failed", "conflict", "skipped", "unfinished"]
"""How an agent's bar is coloured; ``conflict`` is a failure to merge its work."""


@dataclass(frozen=True, slots=True)
class AgentBar:
    """One agent (one work item) on the timeline."""

    domain: str
    item: str
    status: AgentStatus
    start: float
    """Seconds since the job started."""
    end: float
    """Seconds since the job started (``start`` for a skipped item)."""
    error: str | None
    files: tuple[str, ...]
    tokens: int
    cost: float
    track: int = 0
    """Row inside the domain's lane, so that agents running at once do not overlap."""


@dataclass(frozen=True, slots=True)
class PhaseSpan:
    """One phase of a domain (setup, map, reduce, tests, merge)."""

    domain: str
    phase: str
    start: float
    end: float
    ok: bool | None
    """None while the phase had not ended."""


@dataclass(frozen=True, slots=True)
class Marker:
    """A point event on the timeline."""

    kind: Literal["merge", "conflict", "budget"]
    domain: str | None
    """The lane it belongs to; None for job-wide events (the final merge)."""
    at: float
    label: str


@dataclass(frozen=True, slots=True)
class Lane:
    """One domain's lane: a phase track, then as many agent tracks as ran at once."""

    domain: str
    status: str
    offset: int
    """Index of the lane's first track on the whole timeline."""
    tracks: int
    """Tracks in the lane, the phase track included."""


@dataclass(frozen=True, slots=True)
class BudgetPoint:
    """Resources used by the job up to a moment."""

    at: float
    tokens: int
    cost: float
    agent_runs: int


@dataclass(frozen=True, slots=True)
class FailureRow:
    """A failure with its error: an agent, a conflict, a phase or a whole domain."""

    at: float
    domain: str
    item: str | None
    kind: str
    error: str


@dataclass(frozen=True, slots=True)
class DomainRow:
    """A chosen domain in the summary."""

    name: str
    reason: str
    status: str
    succeeded: int
    failed: int
    skipped: int
    files: int
    tests_passed: bool | None


@dataclass(frozen=True, slots=True)
class JobSummary:
    """The job at a glance."""

    job_id: str
    task: str
    repo: str
    base_branch: str
    status: str
    merge_status: str
    merge_message: str
    started_at: float | None
    """Unix time of the first event (None without events)."""
    duration: float
    analyzer: str
    agents: Mapping[str, int]
    """Agents by status."""
    files: tuple[str, ...]
    domains: tuple[DomainRow, ...]


@dataclass(frozen=True, slots=True)
class ReportModel:
    """Everything the report page shows."""

    summary: JobSummary
    lanes: tuple[Lane, ...]
    bars: tuple[AgentBar, ...]
    phases: tuple[PhaseSpan, ...]
    markers: tuple[Marker, ...]
    budget: tuple[BudgetPoint, ...]
    budget_limit: Mapping[str, float | None] = field(default_factory=dict)
    failures: tuple[FailureRow, ...] = ()
    phase_outcomes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Per domain, per sub-graph node, ``ok``, ``failed`` or ``running`` (for the graph)."""
    job_outcomes: Mapping[str, str] = field(default_factory=dict)
    """Per top-level node, ``ok``, ``failed`` or ``running`` (for the graph)."""
