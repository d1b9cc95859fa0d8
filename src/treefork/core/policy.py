"""Error policy: after each item, decide whether further items may start."""

from __future__ import annotations

from dataclasses import dataclass

from treefork.domain import ErrorPolicy

__all__ = ("ItemCounts", "attempts_allowed", "stop_reason")


@dataclass(frozen=True, slots=True)
class ItemCounts:
    """Items of one domain so far."""

    succeeded: int = 0
    failed: int = 0

    @property
    def finished(self) -> int:
        """Items that ran to an outcome."""
        return self.succeeded + self.failed


def stop_reason(policy: ErrorPolicy, counts: ItemCounts) -> str | None:
    """Why no further item may start, or None to go on.

    Rules, in order: ``on_item_failure: stop`` or ``continue_on_failure: false`` stop at the
    first failure; ``max_failures`` stops once that many items failed;
    ``failure_threshold`` stops once failed / finished reaches it.
    """
    if counts.failed == 0:
        return None
    if policy.on_item_failure == "stop":
        return "error policy: on_item_failure is stop"
    if not policy.continue_on_failure:
        return "error policy: continue_on_failure is false"
    if policy.max_failures is not None and counts.failed >= policy.max_failures:
        return f"error policy: {counts.failed} failures reached max_failures {policy.max_failures}"
    if policy.failure_threshold is not None:
        ratio = counts.failed / counts.finished
        if ratio >= policy.failure_threshold:
            return (
                f"error policy: failure rate {ratio:.0%} reached failure_threshold "
                f"{policy.failure_threshold:.0%}"
            )
    return None


def attempts_allowed(policy: ErrorPolicy) -> int:
    """How many times one item may run (more than once only with ``retry``)."""
    return 1 + policy.max_retries if policy.on_item_failure == "retry" else 1
