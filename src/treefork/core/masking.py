"""Secret values masked (``***``) in everything treefork writes.

A workflow's ``secrets`` (and ``build_graph(secrets=...)``) reach the agents' environment
as they are, but their values never reach a log: they are registered here when the graph is
built, and the event stream, the job store (results, the DLQ, the event log), step results
and step errors pass what they carry through :func:`mask`. The registry is process-wide and
only grows: a value another job registered is masked in this one too, which can only hide
more, never less.

Every occurrence of a value is replaced, the longest values first (so a secret containing
another is masked whole), however short the value: masking a short one hides every
occurrence of that text in output, which is the price of never printing it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any, TypeVar

__all__ = ("MASK", "mask", "mask_text", "register_secrets", "secret_count")

MASK = "***"

T = TypeVar("T")


class _Registry:
    """The values masked in this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: frozenset[str] = frozenset()
        self.pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str]) -> None:
        with self.lock:
            known = self.values | {value for value in values if value}
            if known == self.values:
                return
            ordered = sorted(known, key=len, reverse=True)
            self.pattern = re.compile("|".join(re.escape(value) for value in ordered))
            self.values = known


_REGISTRY = _Registry()


def register_secrets(values: Iterable[str]) -> None:
    """Mask these values from now on (empty values are ignored)."""
    _REGISTRY.add(values)


def secret_count() -> int:
    """How many distinct values are masked."""
    return len(_REGISTRY.values)


def mask_text(text: str) -> str:
    """``text`` with every registered value replaced by ``***``."""
    pattern = _REGISTRY.pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def mask(value: T) -> T:
    """``value`` with secrets masked in every string it holds: strings, and the keys and
    values of dicts, lists and tuples, recursively (other objects are returned as they
    are). Returns ``value`` itself when nothing is registered."""
    if _REGISTRY.pattern is None:
        return value
    return _masked(value)  # type: ignore[no-any-return]


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {_masked(key): _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_masked(item) for item in value)
    return value
