"""Names of treefork's branches and worktree folders.

Git cannot hold a branch ``a/b`` next to a branch ``a/b/c`` (a ref is a file, not a
folder), so the three levels live side by side under the job's prefix::

    treefork/<job>/session                   session worktree: domains merge here
    treefork/<job>/domains/<domain>          domain worktree: setup and reduce run here
    treefork/<job>/agents/<domain>/<item>    agent worktree: one map agent runs here

Everything treefork creates in the user's repository is under ``refs/heads/treefork/``.
"""

from __future__ import annotations

import re

__all__ = (
    "BRANCH_PREFIX",
    "NAME_PATTERN",
    "agent_branch",
    "domain_branch",
    "is_valid_name",
    "item_slug",
    "job_prefix",
    "session_branch",
)

BRANCH_PREFIX = "treefork"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""Domain names and job ids: safe in branch names and folder names alike."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def is_valid_name(name: str) -> bool:
    """Whether a domain name or job id can be used in branch and folder names."""
    return (
        NAME_PATTERN.fullmatch(name) is not None
        and ".." not in name
        and not name.endswith((".lock", "."))
    )


def job_prefix(job_id: str) -> str:
    """The branch prefix of every branch of a job."""
    return f"{BRANCH_PREFIX}/{job_id}"


def session_branch(job_id: str) -> str:
    """The session branch of a job."""
    return f"{job_prefix(job_id)}/session"


def domain_branch(job_id: str, domain: str) -> str:
    """The branch of one domain of a job."""
    return f"{job_prefix(job_id)}/domains/{domain}"


def item_slug(item_id: str, index: int) -> str:
    """A ref-safe, unique folder/branch component for a work item.

    The index keeps slugs unique even when two ids clean up to the same text.
    """
    cleaned = _UNSAFE.sub("-", item_id).strip("-.")[:48].rstrip(".")
    cleaned = cleaned.replace("..", "-")
    if cleaned.endswith(".lock"):
        cleaned = cleaned[: -len(".lock")]
    return f"{index:04d}-{cleaned}" if cleaned else f"{index:04d}"


def agent_branch(job_id: str, domain: str, slug: str) -> str:
    """The branch of one map agent."""
    return f"{job_prefix(job_id)}/agents/{domain}/{slug}"
