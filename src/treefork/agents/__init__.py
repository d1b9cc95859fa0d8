"""Ready-made agents: a chat model with tools confined to its worktree."""

from __future__ import annotations

from treefork.agents.llm import agent_tools, llm_agent
from treefork.agents.tools import resolve_inside

__all__ = ("agent_tools", "llm_agent", "resolve_inside")
