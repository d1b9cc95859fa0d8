"""Choosing the domains a task touches.

The rule-based analyzer matches each domain's keywords (whole words, any case) and path
globs (against paths and globs the task mentions). :class:`Analyzer` is the protocol that any
analyzer, rule-based or LLM, implements; the supervisor node only knows the protocol.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from wcmatch import glob as wcglob

from treefork.steps import Usage

__all__ = (
    "Analyzer",
    "DomainSpec",
    "RuleAnalyzer",
    "Selection",
    "mentioned_paths",
    "path_matches",
    "select_by_rules",
)

_GLOB_FLAGS = wcglob.GLOBSTAR | wcglob.BRACE | wcglob.DOTGLOB | wcglob.NEGATE

# A path mention: at least one "/" or a file extension, made of path characters and glob
# wildcards. Trailing punctuation of the sentence is trimmed afterwards.
_PATH_TOKEN = re.compile(r"[\w.*?\[\]{}/,-]*[\w*?\]}/]")


@dataclass(frozen=True, slots=True)
class DomainSpec:
    """What an analyzer needs to know about one domain."""

    name: str
    keywords: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True, slots=True)
class Selection:
    """The domains an analyzer chose."""

    choices: tuple[tuple[str, str], ...]
    """(domain name, reason) in the order of the defined domains."""
    analyzer: str = "rules"
    """Which analyzer decided (``rules``, ``llm``, or ``llm->rules`` after a fallback)."""
    note: str | None = None
    """Why a fallback happened, or other remarks."""
    usage: Usage = field(default_factory=Usage)
    """Tokens and cost the analyzer spent (LLM analyzers)."""


@runtime_checkable
class Analyzer(Protocol):
    """Chooses the domains a task touches."""

    async def select(self, task: str, domains: Sequence[DomainSpec]) -> Selection:
        """Return the chosen domains with a reason each (may be empty)."""
        ...


def keyword_pattern(keyword: str) -> re.Pattern[str]:
    """Whole-word, case-insensitive pattern for a keyword (phrases allowed)."""
    words = [re.escape(word) for word in keyword.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def _looks_like_path(token: str) -> bool:
    if "/" in token:
        return True
    stem, dot, extension = token.rpartition(".")
    return bool(dot and stem and extension and extension.isalnum() and not extension.isdigit())


def mentioned_paths(task: str) -> list[str]:
    """Paths and globs the task mentions (``docs/``, ``src/auth/*.py``, ``README.md``)."""
    found: list[str] = []
    for match in _PATH_TOKEN.finditer(task):
        token = match.group(0).rstrip(".,;:").removeprefix("./")
        if token and _looks_like_path(token) and token not in found:
            found.append(token)
    return found


def _literal_prefix(pattern: str) -> str:
    """The part of a glob before its first wildcard."""
    cut = len(pattern)
    for wildcard in "*?[{":
        position = pattern.find(wildcard)
        if position != -1:
            cut = min(cut, position)
    return pattern[:cut]


def path_matches(mention: str, pattern: str) -> bool:
    """Whether a path or glob the task mentions falls under a domain's glob pattern."""
    if wcglob.globmatch(mention, pattern, flags=_GLOB_FLAGS):
        return True
    directory = mention.rstrip("/")
    # A directory mention ("docs/" or "docs") covers the files below it.
    if wcglob.globmatch(directory + "/_", pattern, flags=_GLOB_FLAGS):
        return True
    if any(wildcard in mention for wildcard in "*?[{"):
        mention_prefix = _literal_prefix(mention)
        pattern_prefix = _literal_prefix(pattern)
        return bool(mention_prefix) and (
            pattern_prefix.startswith(mention_prefix) or mention_prefix.startswith(pattern_prefix)
        )
    return False


def _reason_for(task: str, mentions: Sequence[str], domain: DomainSpec) -> str | None:
    if not domain.keywords and not domain.paths:
        return "no keywords or paths: chosen for every task"
    reasons: list[str] = []
    for keyword in domain.keywords:
        if keyword.strip() and keyword_pattern(keyword).search(task):
            reasons.append(f"keyword '{keyword}'")
    for pattern in domain.paths:
        for mention in mentions:
            if path_matches(mention, pattern):
                reasons.append(f"path '{mention}' matches '{pattern}'")
                break
    return "; ".join(reasons) if reasons else None


FallbackMode = Literal["all", "none"]


def select_by_rules(
    task: str, domains: Sequence[DomainSpec], *, fallback: FallbackMode = "none"
) -> Selection:
    """Choose domains by keywords and path globs.

    A domain with neither keywords nor paths is chosen for every task (a workflow file's
    single domain, for instance).

    Args:
        task: The task in words.
        domains: The defined domains.
        fallback: When nothing matches: ``all`` chooses every domain, ``none`` chooses
            nothing and says so in ``Selection.note``.

    Returns:
        The chosen domains, in their defined order, with the matches as the reason.
    """
    mentions = mentioned_paths(task)
    choices = tuple(
        (domain.name, reason)
        for domain in domains
        if (reason := _reason_for(task, mentions, domain)) is not None
    )
    if choices:
        return Selection(choices=choices)
    names = ", ".join(domain.name for domain in domains) or "(none)"
    if fallback == "all":
        return Selection(
            choices=tuple(
                (domain.name, "fallback: no domain matched, running all") for domain in domains
            ),
            note=f"no keyword or path of any domain matched the task; running all: {names}",
        )
    return Selection(
        choices=(),
        note=f"no keyword or path of any domain matched the task; defined domains: {names}",
    )


@dataclass(frozen=True, slots=True)
class RuleAnalyzer:
    """The default analyzer: keywords and path globs (see :func:`select_by_rules`)."""

    fallback: FallbackMode = "none"
    """What to choose when nothing matches: ``all`` domains or ``none``."""

    async def select(self, task: str, domains: Sequence[DomainSpec]) -> Selection:
        """Choose domains by rules; never fails."""
        return select_by_rules(task, domains, fallback=self.fallback)
