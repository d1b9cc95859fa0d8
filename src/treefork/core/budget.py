"""Budget arithmetic: what has been used, and whether another agent may start."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("BudgetUse", "exhausted_reason")


@dataclass(frozen=True, slots=True)
class BudgetUse:
    """Resources used so far."""

    tokens: int = 0
    cost: float = 0.0
    agent_runs: int = 0

    def add(self, *, tokens: int = 0, cost: float = 0.0, agent_runs: int = 0) -> BudgetUse:
        """A new value with more use added."""
        return BudgetUse(self.tokens + tokens, self.cost + cost, self.agent_runs + agent_runs)


def exhausted_reason(
    used: BudgetUse, *, tokens: int | None, cost: float | None, agent_runs: int | None
) -> str | None:
    """Why no new agent may start, or None while the budget allows one.

    A limit is reached when the use equals or exceeds it. Agents already running finish,
    so tokens and cost can end above their limit; agent runs never do.
    """
    if agent_runs is not None and used.agent_runs >= agent_runs:
        return f"budget spent: {used.agent_runs} of {agent_runs} agent runs"
    if tokens is not None and used.tokens >= tokens:
        return f"budget spent: {used.tokens} of {tokens} tokens"
    if cost is not None and used.cost >= cost:
        return f"budget spent: {used.cost:.4f} of {cost:.4f} cost"
    return None
