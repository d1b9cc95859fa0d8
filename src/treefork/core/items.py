"""Work-item selection: from an input document to the items the map phase runs agents for.

Selection happens in this order, each step working on the result of the one before::

    json_path -> filter -> sort_by -> distinct -> offset -> max_items

so ``sort_by`` + ``distinct`` keeps the best item of each group, and ``offset`` /
``max_items`` page through the final ordering (``offset: 10, max_items: 10`` is the second
page of the filtered, sorted, de-duplicated items).

Where the items come from:

- With ``json_path``, the items are the JSONPath matches in document order (jsonpath-ng's
  extended syntax, so ``$.items[?(@.score > 5)]`` works). When the path matches exactly one
  value and that value is a list (``$.items`` rather than ``$.items[*]``), its elements are
  the items.
- Without ``json_path``, a list document is the items. An object with exactly one list value
  (``{"items": [...]}``) gives that list's elements; any other object is an error naming its
  keys, because guessing which list is meant would silently run the wrong agents. Any other
  document (a number, a string) is an error too.

Item ids are assigned before filtering, from the item's position in that list, so an item
keeps its id when the filter, sort or page changes (resuming relies on it): an object's
``id`` field (a string or a number, stringified) if it has one, otherwise its position. An id
that is already taken gets a suffix: the second ``"a"`` becomes ``"a-2"`` (``"a-3"``, ... if
that is taken as well).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng.exceptions import JSONPathError
from jsonpath_ng.ext.parser import parse as parse_extended_json_path

from treefork.core.filter import (
    FieldPath,
    Filter,
    FilterError,
    parse_field_path,
    parse_filter,
)
from treefork.core.sorting import SortError, SortKey, parse_sort_spec, sort_items
from treefork.errors import WorkItemError

__all__ = (
    "MAP_FIELDS",
    "WorkItem",
    "assign_item_ids",
    "compile_json_path",
    "extract_items",
    "select_items",
)


MAP_FIELDS = frozenset(
    {"successful", "failed", "skipped", "total", "success_rate", "results", "results_json"}
)
"""The fields of ``${map}`` in reduce (``validate`` checks references against them)."""


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One selected work item."""

    value: Any
    """The item itself: a string, number or JSON object."""
    item_id: str
    """Stable, unique id: the ``id`` field, else the position in the extracted list."""
    index: int
    """Position among the selected items (0-based)."""


_LABEL_FIELDS = ("path", "file", "name", "title", "id")
_LABEL_LENGTH = 60


def item_label(item: WorkItem) -> str:
    """A short, one-line name for an item, for commit messages and errors (pure).

    A string is itself; an object is its first ``path``, ``file``, ``name``, ``title`` or
    ``id`` field that is a string or number, else its compact JSON; anything longer than 60
    characters is cut with an ellipsis.
    """
    value = item.value
    if isinstance(value, Mapping):
        named = next(
            (
                value[key]
                for key in _LABEL_FIELDS
                if isinstance(value.get(key), str | int | float) and str(value[key]).strip()
            ),
            None,
        )
        text = (
            str(named)
            if named is not None
            else json.dumps(value, separators=(",", ":"), default=str)
        )
    elif value is None or isinstance(value, str | int | float | bool):
        text = str(value)
    else:
        text = json.dumps(value, separators=(",", ":"), default=str)
    text = " ".join(text.split()) or f"item {item.item_id}"
    return text if len(text) <= _LABEL_LENGTH else text[: _LABEL_LENGTH - 1] + "…"


@lru_cache(maxsize=256)
def compile_json_path(expression: str) -> JSONPath:
    """Parse a JSONPath expression (jsonpath-ng extended syntax).

    Raises:
        ValueError: The expression is not valid JSONPath; the message says where.
    """
    if not expression.strip():
        raise ValueError("empty JSONPath expression")
    try:
        return parse_extended_json_path(expression)
    except JSONPathError as error:
        raise ValueError(f"invalid JSONPath {expression!r}: {error}") from error
    except Exception as error:  # jsonpath-ng's grammar actions raise plain errors too
        raise ValueError(f"invalid JSONPath {expression!r}: {error}") from error


def _items_of_document(document: Any) -> list[Any]:
    if isinstance(document, list | tuple):
        return list(document)
    if isinstance(document, Mapping):
        lists = [key for key, value in document.items() if isinstance(value, list)]
        if len(lists) == 1:
            return list(document[lists[0]])
        keys = ", ".join(map(str, document)) or "none"
        raise ValueError(
            "the input is a JSON object, not a list; set json_path to say which items to use "
            f"(keys: {keys})"
        )
    raise ValueError(f"expected a JSON list of items, got {type(document).__name__}")


def extract_items(document: Any, json_path: str | None) -> list[Any]:
    """The items of ``document`` before filtering (see the module docstring).

    Raises:
        ValueError: The document has no recognisable list of items or the path is invalid.
    """
    if json_path is None:
        return _items_of_document(document)
    matches = [match.value for match in compile_json_path(json_path).find(document)]
    if len(matches) == 1 and isinstance(matches[0], list):
        return list(matches[0])
    return matches


def _natural_id(value: Any, position: int) -> str:
    if isinstance(value, Mapping):
        candidate = value.get("id")
        if isinstance(candidate, str) and candidate:
            return candidate
        if isinstance(candidate, int | float) and not isinstance(candidate, bool):
            return str(candidate)
    return str(position)


def assign_item_ids(values: Sequence[Any]) -> list[str]:
    """Unique ids for ``values``, in order (``id`` field or position, suffixed when taken)."""
    natural = [_natural_id(value, position) for position, value in enumerate(values)]
    taken: set[str] = set()
    wanted = set(natural)
    ids: list[str] = []
    for candidate in natural:
        unique = candidate
        suffix = 2
        while unique in taken or (unique != candidate and unique in wanted):
            unique = f"{candidate}-{suffix}"
            suffix += 1
        taken.add(unique)
        ids.append(unique)
    return ids


def _distinct_key(value: Any) -> tuple[str, str]:
    if isinstance(value, bool):
        return "bool", str(value)
    if isinstance(value, float) and value.is_integer():
        return "number", str(int(value))
    if isinstance(value, int | float):
        return "number", repr(value)
    return type(value).__name__, json.dumps(value, sort_keys=True, default=str)


def _keep_first_per_value(
    entries: list[tuple[str, Any]], field: FieldPath
) -> list[tuple[str, Any]]:
    seen: set[tuple[str, str]] = set()
    kept: list[tuple[str, Any]] = []
    for entry in entries:
        key = _distinct_key(field.lookup(entry[1]))
        if key not in seen:
            seen.add(key)
            kept.append(entry)
    return kept


@dataclass(frozen=True, slots=True)
class _Selection:
    """Parsed selection settings."""

    filter: Filter | None
    sort_keys: tuple[SortKey, ...]
    distinct: FieldPath | None
    offset: int
    max_items: int | None

    def apply(self, values: Sequence[Any]) -> list[WorkItem]:
        entries = list(zip(assign_item_ids(values), values, strict=True))
        if self.filter is not None:
            entries = [entry for entry in entries if self.filter.matches(entry[1])]
        if self.sort_keys:
            entries = sort_items(entries, self.sort_keys, value_of=lambda entry: entry[1])
        if self.distinct is not None:
            entries = _keep_first_per_value(entries, self.distinct)
        stop = None if self.max_items is None else self.offset + self.max_items
        return [
            WorkItem(value=value, item_id=item_id, index=index)
            for index, (item_id, value) in enumerate(entries[self.offset : stop])
        ]


def _parse_selection(
    *,
    filter: str | None,
    sort_by: str | None,
    offset: int | None,
    max_items: int | None,
    distinct: str | None,
) -> _Selection:
    for name, count in (("offset", offset), ("max_items", max_items)):
        if count is not None and count < 0:
            raise ValueError(f"{name} must not be negative, got {count}")
    try:
        parsed_filter = None if filter is None else parse_filter(filter)
    except FilterError as error:
        raise ValueError(f"invalid filter: {error}") from error
    try:
        sort_keys = () if sort_by is None else parse_sort_spec(sort_by)
    except SortError as error:
        raise ValueError(f"invalid sort_by: {error}") from error
    try:
        distinct_field = None if distinct is None else parse_field_path(distinct)
    except FilterError as error:
        raise ValueError(f"invalid distinct field: {error}") from error
    return _Selection(parsed_filter, sort_keys, distinct_field, offset or 0, max_items)


def select_items(
    document: Any,
    *,
    json_path: str | None,
    filter: str | None,
    sort_by: str | None,
    offset: int | None,
    max_items: int | None,
    distinct: str | None,
    source: str = "input",
) -> list[WorkItem]:
    """Select the work items of ``document``.

    Args:
        document: The parsed input (JSON value).
        json_path: JSONPath selecting the items; None to use the document itself.
        filter: Filter expression (:mod:`treefork.core.filter`); None keeps every item.
        sort_by: Sort spec (:mod:`treefork.core.sorting`); None keeps document order.
        offset: Skip this many items after filter, sort and distinct.
        max_items: Keep at most this many items after offset.
        distinct: Field path; keep only the first item for each of its values (a missing
            field counts as the value null).
        source: Names the input in error messages (file path or command).

    Returns:
        The selected items, ``index`` numbered from 0 in their final order.

    Raises:
        WorkItemError: The document has no usable items or a selection setting is invalid.
    """
    try:
        selection = _parse_selection(
            filter=filter, sort_by=sort_by, offset=offset, max_items=max_items, distinct=distinct
        )
        return selection.apply(extract_items(document, json_path))
    except ValueError as error:
        raise WorkItemError(source, str(error)) from error
