"""Prodigy ``sort_by`` specs: ``item.priority DESC, name ASC NULLS FIRST``.

A spec is one or more keys separated by commas; each key is a field path (``item.`` prefix
optional, nested ``a.b[0]`` allowed), then optionally ``ASC`` or ``DESC`` (default ``ASC``),
then optionally ``NULLS FIRST`` or ``NULLS LAST`` (default ``NULLS LAST`` in both directions:
items without the field go to the end). Keywords are case-insensitive.

Ordering rules:

- The sort is stable: items equal on every key keep their input order.
- A missing field is null; nulls go first or last as the key says, whatever the direction.
- Values of different JSON types are ordered by type first, deterministically:
  booleans < numbers < strings < lists < objects (``DESC`` reverses this too). Within a type:
  ``false < true``; numbers by value (NaN after every other number); strings by code point;
  lists and objects by their canonical JSON text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from treefork.core.fields import FieldPath, FilterError, parse_field_path

__all__ = ("SortError", "SortKey", "parse_sort_spec", "sort_items")

T = TypeVar("T")


class SortError(ValueError):
    """A sort spec cannot be parsed."""

    def __init__(self, spec: str, position: int, reason: str) -> None:
        self.spec = spec
        self.position = position
        """0-based offset of the offending text in ``spec``."""
        self.reason = reason
        super().__init__(f"column {position + 1}: {reason} (in {spec!r})")


@dataclass(frozen=True, slots=True)
class SortKey:
    """One key of a sort spec."""

    field: FieldPath
    """The field compared."""
    descending: bool = False
    """``DESC``: largest first."""
    nulls_first: bool = False
    """``NULLS FIRST``: items without the field come before the others."""


_WORD = re.compile(r"""(?:[^\s,'"]|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")+""")


def _words(spec: str, start: int, end: int) -> list[tuple[str, int]]:
    return [(match.group(), match.start()) for match in _WORD.finditer(spec, start, end)]


def _key_spans(spec: str) -> list[tuple[int, int]]:
    """Start and end offsets of each comma-separated key (commas in quotes do not count)."""
    spans: list[tuple[int, int]] = []
    start = 0
    quote: str | None = None
    for position, character in enumerate(spec):
        if quote is not None:
            quote = None if character == quote else quote
        elif character in "'\"":
            quote = character
        elif character == ",":
            spans.append((start, position))
            start = position + 1
    spans.append((start, len(spec)))
    return spans


def _parse_modifiers(spec: str, words: list[tuple[str, int]]) -> tuple[bool, bool]:
    descending = False
    nulls_first = False
    index = 0
    if index < len(words) and words[index][0].upper() in ("ASC", "DESC"):
        descending = words[index][0].upper() == "DESC"
        index += 1
    if index < len(words) and words[index][0].upper() == "NULLS":
        if index + 1 >= len(words) or words[index + 1][0].upper() not in ("FIRST", "LAST"):
            raise SortError(spec, words[index][1], "NULLS must be followed by FIRST or LAST")
        nulls_first = words[index + 1][0].upper() == "FIRST"
        index += 2
    if index < len(words):
        word, position = words[index]
        raise SortError(
            spec, position, f"unexpected {word!r}; expected ASC, DESC, NULLS FIRST or NULLS LAST"
        )
    return descending, nulls_first


def _parse_key(spec: str, start: int, end: int) -> SortKey:
    words = _words(spec, start, end)
    if not words:
        raise SortError(spec, start, "empty sort key")
    text, position = words[0]
    try:
        field = parse_field_path(text)
    except FilterError as error:
        raise SortError(spec, position + error.position, error.reason) from error
    descending, nulls_first = _parse_modifiers(spec, words[1:])
    return SortKey(field, descending, nulls_first)


def parse_sort_spec(spec: str) -> tuple[SortKey, ...]:
    """Parse a sort spec into its keys, most significant first.

    Raises:
        SortError: The spec is empty or malformed; ``position`` points at the problem.
    """
    if not spec.strip():
        raise SortError(spec, 0, "empty sort spec")
    return tuple(_parse_key(spec, start, end) for start, end in _key_spans(spec))


_BOOLEAN, _NUMBER, _NAN, _STRING, _LIST, _OBJECT = range(6)


def _type_rank_and_value(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return _BOOLEAN, value
    if isinstance(value, int | float):
        return (_NAN, 0) if isinstance(value, float) and math.isnan(value) else (_NUMBER, value)
    if isinstance(value, str):
        return _STRING, value
    canonical = json.dumps(value, sort_keys=True, default=str)
    return (_LIST if isinstance(value, list | tuple) else _OBJECT), canonical


def _ordering_key(key: SortKey) -> Callable[[Any], tuple[Any, ...]]:
    # Python sorts with reverse=True for DESC; nulls must then be "small" to end up last.
    nulls_sort_high = key.nulls_first == key.descending

    def ordering(item: Any) -> tuple[Any, ...]:
        value = key.field.lookup(item)
        if value is None:
            return (1,) if nulls_sort_high else (-1,)
        return (0, *_type_rank_and_value(value))

    return ordering


def sort_items(
    items: Sequence[T], keys: Sequence[SortKey], *, value_of: Callable[[T], Any] | None = None
) -> list[T]:
    """Stable sort of ``items`` by ``keys`` (most significant first).

    Args:
        items: What to sort.
        keys: Parsed sort keys.
        value_of: Maps an element to the JSON value the keys look into (default: the element).

    Returns:
        A new sorted list.
    """
    result = list(items)
    # Sorting by the least significant key first, relying on stability, keeps each key's
    # own direction and nulls placement independent of the others.
    for key in reversed(keys):
        result.sort(key=_element_key(_ordering_key(key), value_of), reverse=key.descending)
    return result


def _element_key(
    ordering: Callable[[Any], tuple[Any, ...]], value_of: Callable[[T], Any] | None
) -> Callable[[T], tuple[Any, ...]]:
    if value_of is None:
        return ordering
    return lambda element: ordering(value_of(element))
