"""Analyzers beyond the rules: choosing a task's domains with a chat model."""

from __future__ import annotations

from treefork.analyzers.llm import LLMAnalyzer

__all__ = ("LLMAnalyzer",)
