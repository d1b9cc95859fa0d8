"""Field paths into work items (``item.a.b[0]``) and the JSON-style value semantics that
filters and sort keys share: equality by type, ordering only between numbers or strings,
truthiness.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ("FieldPath", "FilterError", "json_equal", "parse_field_path")


class FilterError(ValueError):
    """A filter expression (or field path) cannot be parsed."""

    def __init__(self, expression: str, position: int, reason: str) -> None:
        self.expression = expression
        self.position = position
        """0-based offset of the offending character in ``expression``."""
        self.reason = reason
        super().__init__(f"column {position + 1}: {reason} (in {expression!r})")


def _unescape(raw: str, quote: str) -> str:
    return raw.replace("\\" + quote, quote).replace("\\\\", "\\")


# --------------------------------------------------------------------------- field paths


@dataclass(frozen=True, slots=True)
class FieldPath:
    """A path into a work item: ``item.a.b[0]`` is ``("a", "b", 0)``."""

    parts: tuple[str | int, ...]
    """Object keys and list indexes, outermost first; empty for the whole item."""
    text: str
    """The path as written."""

    def lookup(self, item: Any) -> Any:
        """The value at this path in ``item``, or None when any step is missing."""
        value = item
        for part in self.parts:
            value = _step_into(value, part)
            if value is None:
                return None
        return value


def _step_into(value: Any, part: str | int) -> Any:
    if isinstance(part, int):
        if isinstance(value, list) and -len(value) <= part < len(value):
            return value[part]
        return None
    if isinstance(value, Mapping):
        return value.get(part)
    return None


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INDEX = re.compile(r"\[(-?\d+)\]")
_QUOTED_KEY = re.compile(r"""\[(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\]""")


def _scan_field_path(text: str, start: int) -> tuple[FieldPath, int] | None:
    """Read a field path at ``start``; return it and the offset after it, or None."""
    match = _NAME.match(text, start)
    if match is None:
        return None
    parts: list[str | int] = [match.group()]
    position = match.end()
    while position < len(text):
        if text[position] == "." and (name := _NAME.match(text, position + 1)):
            parts.append(name.group())
            position = name.end()
        elif index := _INDEX.match(text, position):
            parts.append(int(index.group(1)))
            position = index.end()
        elif key := _QUOTED_KEY.match(text, position):
            raw = key.group(1) if key.group(1) is not None else key.group(2)
            parts.append(_unescape(raw, "'" if key.group(1) is not None else '"'))
            position = key.end()
        else:
            break
    if parts[0] == "item":
        parts.pop(0)
    return FieldPath(tuple(parts), text[start:position]), position


def parse_field_path(text: str) -> FieldPath:
    """Parse a field path such as ``item.a.b[0]``, ``priority`` or ``item``.

    Raises:
        FilterError: The text is not exactly one field path.
    """
    stripped = text.strip()
    offset = len(text) - len(text.lstrip())
    scanned = _scan_field_path(stripped, 0)
    if scanned is None:
        raise FilterError(text, offset, "expected a field name")
    path, end = scanned
    if end != len(stripped):
        raise FilterError(text, offset + end, f"unexpected {stripped[end]!r} in field path")
    return path


# --------------------------------------------------------------------------- values


def json_equal(left: Any, right: Any) -> bool:
    """Equality of JSON values, strict by type (``true != 1``, ``"1" != 1``, ``1 == 1.0``)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is bool and type(right) is bool and left == right
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    return _same_scalar(left, right)


def _same_scalar(left: Any, right: Any) -> bool:
    """Strings equal strings, null equals null, nothing else is equal."""
    if isinstance(left, str) and isinstance(right, str):
        return left == right
    return left is None and right is None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _order(left: Any, right: Any) -> int | None:
    """-1/0/1 between two numbers or two strings; None for anything else."""
    comparable = (_is_number(left) and _is_number(right)) or (
        isinstance(left, str) and isinstance(right, str)
    )
    if not comparable:
        return None
    return int(left > right) - int(left < right)


def _truthy(value: Any) -> bool:
    return (
        value is not None
        and value is not False
        and value not in (0, "")
        and (not isinstance(value, list | Mapping) or len(value) > 0)
    )


def _contains(container: Any, element: Any) -> bool:
    if isinstance(container, str):
        return isinstance(element, str) and element in container
    if isinstance(container, list):
        return any(json_equal(member, element) for member in container)
    if isinstance(container, Mapping):
        return isinstance(element, str) and element in container
    return False


def _both_strings(check: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    def compare(left: Any, right: Any) -> bool:
        return isinstance(left, str) and isinstance(right, str) and check(left, right)

    return compare


def _ordered(accept: Callable[[int], bool]) -> Callable[[Any, Any], bool]:
    def compare(left: Any, right: Any) -> bool:
        order = _order(left, right)
        return order is not None and accept(order)

    return compare


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": json_equal,
    "!=": lambda left, right: not json_equal(left, right),
    "<": _ordered(lambda order: order < 0),
    "<=": _ordered(lambda order: order <= 0),
    ">": _ordered(lambda order: order > 0),
    ">=": _ordered(lambda order: order >= 0),
    "in": lambda left, right: _contains(right, left),
    "not in": lambda left, right: not _contains(right, left),
    "contains": _contains,
    "starts_with": _both_strings(str.startswith),
    "ends_with": _both_strings(str.endswith),
}
