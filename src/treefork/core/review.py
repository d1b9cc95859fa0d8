"""Merge review decisions: what a resume value means, and whether a merge may happen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from treefork.errors import InputError

__all__ = ("ACCEPTED_ANSWERS", "Decision", "merge_block_reason", "parse_decision")

_APPROVE = {"approve", "approved", "yes", "y", "merge", "true", "ok"}
_REJECT = {"reject", "rejected", "no", "n", "false", "cancel"}

ACCEPTED_ANSWERS: tuple[str, ...] = (
    "approve",
    "reject",
    "true",
    "false",
    "{'approve': true, 'override': true}",
)
"""The resume values merge review accepts, as shown to the reviewer."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The reviewer's answer."""

    approve: bool
    override: bool = False
    """Merge even though the job failed."""


def parse_decision(value: Any) -> Decision:
    """Read a resume value: ``True``/``False``, ``"approve"``/``"reject"``, or a dict
    ``{"approve": bool, "override": bool}``.

    Raises:
        InputError: The value means neither approve nor reject.
    """
    if isinstance(value, bool):
        return Decision(value)
    if isinstance(value, str) and value.strip().lower() in _APPROVE | _REJECT:
        return Decision(value.strip().lower() in _APPROVE)
    if isinstance(value, dict) and isinstance(value.get("approve"), bool):
        return Decision(value["approve"], bool(value.get("override", False)))
    raise InputError(
        "resume",
        f"{value!r} is not a merge decision; resume with 'approve', 'reject', True, False "
        "or {'approve': True, 'override': True}",
    )


def merge_block_reason(status: str, decision: Decision) -> str | None:
    """Why an approved merge must not happen, or None."""
    if status == "failed" and not decision.override:
        return "the job failed (a critical domain failed); approve with override to merge anyway"
    return None
