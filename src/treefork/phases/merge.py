"""The merge phase: Prodigy's ``merge`` steps, run once the merge is approved.

They run in the session worktree (branch ``treefork/<job>/session``) after the reviewer
approved and before the session branch merges into the user's branch, so whatever they
commit there is merged with the rest. ``${merge.worktree}`` (the session worktree's path),
``${merge.source_branch}`` (the session branch), ``${merge.target_branch}`` (the user's
branch) and ``${merge.session_id}`` (the job id) are in scope. If a step fails, nothing is
merged and the merge is refused with that step's error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from treefork.events import Emitter
from treefork.runners.steps import StepContext, run_steps
from treefork.settings import GraphSettings
from treefork.steps import Usage

if TYPE_CHECKING:
    from treefork.state import ParallelState

__all__ = ("MergeSteps", "merge_scope")


def merge_scope(state: ParallelState) -> dict[str, Any]:
    """The ``merge`` variable the merge steps see."""
    return {
        "worktree": state.get("session_worktree") or "",
        "source_branch": state.get("session_branch") or "",
        "target_branch": state.get("base_branch") or "",
        "session_id": state.get("job_id") or "",
    }


def _domain_label(state: ParallelState) -> str:
    # Events and errors name a domain: the job's only one (a Prodigy workflow), else none.
    names = [choice["name"] for choice in state.get("domains") or []]
    return names[0] if len(names) == 1 else "session"


@dataclass
class MergeSteps:
    """Runs the merge steps of one job (at most once) and keeps what they spent."""

    state: ParallelState
    settings: GraphSettings
    emitter: Emitter
    usage: Usage = field(default_factory=Usage)

    async def __call__(self) -> str | None:
        """Run the steps; returns why the merge must not happen, or None to go on."""
        steps = self.settings.merge_steps
        if not steps:
            return None
        domain = _domain_label(self.state)
        context = StepContext(
            phase="merge",
            domain=domain,
            job_id=self.state["job_id"],
            worktree=Path(self.state.get("session_worktree") or "."),
            variables={"merge": merge_scope(self.state)},
            env=self.settings.merge_env,
            claude_command=self.settings.claude_command,
            emit=self.emitter,
            workflow=self.settings.name,
        )
        self.emitter.emit("phase_start", domain=domain, phase="merge")
        outcome = await run_steps(steps, context)
        self.usage = outcome.usage
        self.emitter.emit("phase_end", domain=domain, phase="merge", ok=outcome.ok)
        if outcome.ok:
            return None
        last_lines = [line for line in outcome.output_tail.splitlines() if line.strip()][-4:]
        detail = f" ({' / '.join(last_lines)})" if last_lines else ""
        return f"a merge step failed: {outcome.error}{detail}"

    def budget_after(self, state: ParallelState) -> dict[str, Any] | None:
        """The job's budget with the merge steps' tokens and cost added (None if none)."""
        if not (self.usage.tokens or self.usage.cost):
            return None
        budget: dict[str, Any] = dict(state.get("budget") or {})
        used = dict(budget.get("used") or {})
        used["tokens"] = int(used.get("tokens", 0)) + self.usage.tokens
        used["cost"] = float(used.get("cost", 0.0)) + self.usage.cost
        budget["used"] = used
        return budget
