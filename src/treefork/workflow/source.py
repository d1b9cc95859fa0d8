"""A workflow file as data, with the line and column of every key and value.

:func:`parse_yaml` reads YAML text with ruamel.yaml's round-trip loader, turns it into plain
Python values (dicts, lists, str, int, float, bool, None) and keeps a :class:`SourceMap`
from *paths* (``("map", "agent_template", 2, "shell")``) to 1-based positions, so every
later check can point at ``file.yml:LINE:COL``.

Lenient reading. A few files in Prodigy's own collection are not strictly valid YAML but are
clearly meant one way; when the strict parse fails, these repairs are tried (each one is
reported as a warning, never silently):

- a plain value that contains ``": "`` (``- shell: echo "item ${item.id}: done"``) is read
  as a quoted string;
- a sequence item whose block scalar (``- shell: |``) and following keys are indented two
  columns too little is read as if the item were indented correctly.

Anything else that does not parse is a problem at the line and column the parser names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, NodeEvent

from treefork.errors import Problem, WorkflowError

__all__ = ("DataPath", "Position", "SourceDocument", "SourceMap", "dotted", "parse_yaml")

DataPath: TypeAlias = tuple[str | int, ...]
"""Where a value sits in the document: keys and list indexes from the root."""

_MAX_REPAIRS = 20

MAX_DEPTH = 64
"""How deeply mappings and lists may nest. Prodigy's deepest workflows nest about ten."""

MAX_ALIAS_EXPANSION = 100_000
"""How many values YAML aliases may add when they are written out (an alias bomb adds 10⁸)."""


@dataclass(frozen=True, slots=True)
class Position:
    """A 1-based line and column."""

    line: int
    column: int


def dotted(path: DataPath) -> str:
    """``("map", "agent_template", 2, "shell")`` as ``map.agent_template[2].shell``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


@dataclass(frozen=True)
class SourceMap:
    """Positions of keys and values in the parsed text, and how to report them."""

    name: str
    """The file as it appears in problems (the path the caller gave)."""
    text: str
    """The text that was parsed (after lenient repairs)."""
    keys: Mapping[DataPath, Position]
    """Position of each mapping key, by the path of its value."""
    values: Mapping[DataPath, Position]
    """Position of each value."""
    shifts: Mapping[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    """Per 1-based line: (column, characters inserted there) by lenient repairs."""

    def position(self, path: DataPath, *, key: bool = False) -> Position:
        """Where ``path`` is: its key (``key=True``) or value, else its closest parent."""
        for length in range(len(path), -1, -1):
            prefix = path[:length]
            found = (self.keys.get(prefix) if key else None) or self.values.get(prefix)
            if found is None and not key:
                found = self.keys.get(prefix)
            if found is not None:
                return self._original(found)
        return Position(1, 1)

    def where(self, path: DataPath, *, key: bool = False) -> str:
        """``file.yml:LINE:COL`` of ``path`` (see :meth:`position`)."""
        return self.at(self.position(path, key=key))

    def at(self, position: Position) -> str:
        """``file.yml:LINE:COL`` of a position."""
        return f"{self.name}:{position.line}:{position.column}"

    def problem(self, path: DataPath, message: str, *, key: bool = False) -> Problem:
        """A problem at ``path``, its message prefixed with the dotted location."""
        return Problem(self.where(path, key=key), f"{dotted(path)}: {message}")

    def position_in_value(self, path: DataPath, fragment: str, occurrence: int) -> Position:
        """Where the ``occurrence``-th (0-based) ``fragment`` of the string at ``path`` is.

        Falls back to the value's own position when the fragment cannot be found (for
        example when escapes in a quoted string changed it).
        """
        start = self.values.get(path)
        if start is None:
            return self.position(path)
        offset = self._offset(start)
        for _ in range(occurrence + 1):
            found = self.text.find(fragment, offset)
            if found < 0:
                return self._original(start)
            offset = found + len(fragment)
        return self._original(self._position_of(found))

    def position_at_offset(self, path: DataPath, offset: int) -> Position:
        """Where character ``offset`` of the one-line string at ``path`` is in the file.

        Quoted strings are allowed (an escape before ``offset`` makes this approximate);
        for a string spread over several lines the value's own position is returned.
        """
        start = self.values.get(path)
        if start is None:
            return self.position(path)
        begin = self._offset(start)
        if self.text[begin : begin + 1] in ("|", ">"):
            return self._original(start)
        if self.text[begin : begin + 1] in ("'", '"'):
            begin += 1
        line_end = self.text.find("\n", begin)
        if line_end >= 0 and begin + offset > line_end:
            return self._original(start)
        return self._original(self._position_of(begin + offset))

    def _offset(self, position: Position) -> int:
        lines = self.text.split("\n")
        return sum(len(line) + 1 for line in lines[: position.line - 1]) + position.column - 1

    def _position_of(self, offset: int) -> Position:
        line = self.text.count("\n", 0, offset) + 1
        column = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return Position(line, column)

    def _original(self, position: Position) -> Position:
        return _unshift(position, self.shifts)


def _unshift(position: Position, shifts: Mapping[int, tuple[tuple[int, int], ...]]) -> Position:
    """The position in the file as written, before lenient repairs inserted characters."""
    inserted = sum(
        count for column, count in shifts.get(position.line, ()) if column < position.column
    )
    return Position(position.line, max(1, position.column - inserted))


@dataclass(frozen=True)
class SourceDocument:
    """A parsed workflow file."""

    data: Any
    """The document as plain Python values."""
    source: SourceMap
    """Positions of everything in ``data``."""
    repairs: tuple[str, ...] = ()
    """Warnings about lenient readings (``file:line:col: ...``)."""


# --------------------------------------------------------------------------- conversion


def _plain_key(key: Any) -> str | int:
    return key if isinstance(key, str) else str(key)


def _walk(
    node: Any, path: DataPath, keys: dict[DataPath, Position], values: dict[DataPath, Position]
) -> Any:
    if isinstance(node, CommentedMap):
        return _walk_mapping(node, path, keys, values)
    if isinstance(node, CommentedSeq):
        result = []
        for index, child in enumerate(node):
            child_path = (*path, index)
            line, column = node.lc.item(index)
            values[child_path] = Position(line + 1, column + 1)
            result.append(_walk(child, child_path, keys, values))
        return result
    return _plain_scalar(node)


def _walk_mapping(
    node: CommentedMap,
    path: DataPath,
    keys: dict[DataPath, Position],
    values: dict[DataPath, Position],
) -> dict[str | int, Any]:
    result: dict[str | int, Any] = {}
    for key, child in node.items():
        child_path = (*path, _plain_key(key))
        if key in node.lc.data:
            key_line, key_column, value_line, value_column = node.lc.data[key]
            keys[child_path] = Position(key_line + 1, key_column + 1)
            values[child_path] = Position(value_line + 1, value_column + 1)
        result[_plain_key(key)] = _walk(child, child_path, keys, values)
    return result


def _plain_scalar(node: Any) -> Any:
    if isinstance(node, TaggedScalar):
        return node.value
    if isinstance(node, bool) or node is None:
        return node
    for kind in (str, int, float):
        if isinstance(node, kind):
            return kind(node)
    if isinstance(node, bytes):
        return node.decode("utf-8", errors="replace")
    return str(node)


# --------------------------------------------------------------------------- repairs


@dataclass(frozen=True, slots=True)
class _Repair:
    text: str
    line: int
    """1-based line the repair is reported at."""
    column: int
    note: str
    shifts: dict[int, tuple[tuple[int, int], ...]]


_PLAIN_ENTRY = re.compile(
    r"^(?P<lead>[ \t]*(?:-[ \t]+)?[A-Za-z_][\w.-]*:[ \t]+)(?P<value>[^'\"|>\[{&*!#%@`\s].*)$"
)
_BLOCK_HEADER = re.compile(
    r"^(?P<indent> *)(?P<dash>-[ \t]+)(?P<key>[A-Za-z_][\w.-]*):[ \t]*[|>][-+0-9]*[ \t]*(#.*)?$"
)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _quote_plain_value(lines: list[str], index: int) -> _Repair | None:
    match = _PLAIN_ENTRY.match(lines[index])
    if match is None or ": " not in match.group("value"):
        return None
    value, _, comment = match.group("value").partition(" #")
    value = value.rstrip()
    lead = match.group("lead")
    inserted = [(len(lead) + 1, 1)]
    inserted += [(len(lead) + 1 + offset + 1, 1) for offset, c in enumerate(value) if c == "'"]
    quoted = "'" + value.replace("'", "''") + "'"
    lines[index] = lead + quoted + (f" #{comment}" if comment else "")
    return _Repair(
        "\n".join(lines),
        index + 1,
        len(lead) + 1,
        "a plain value contains ': ' (not allowed in YAML); read it as a quoted string",
        {index + 1: tuple(inserted)},
    )


def _item_body_end(lines: list[str], start: int, dash_column: int) -> int:
    end = start
    while end < len(lines):
        line = lines[end]
        if line.strip():
            indent = _indent(line)
            if indent < dash_column or (indent == dash_column and line.lstrip().startswith("-")):
                break
        end += 1
    return end


def _reindent_item(lines: list[str], before: int) -> _Repair | None:
    for index in range(min(before, len(lines) - 1), -1, -1):
        header = _BLOCK_HEADER.match(lines[index])
        if header is None:
            continue
        key_column = len(header.group("indent")) + len(header.group("dash"))
        following = next((line for line in lines[index + 1 :] if line.strip()), None)
        if following is None or _indent(following) > key_column:
            return None  # the closest block scalar is fine: the error is something else
        dash_column = len(header.group("indent"))
        width = key_column - dash_column
        end = _item_body_end(lines, index + 1, dash_column)
        shifts: dict[int, tuple[tuple[int, int], ...]] = {}
        for body in range(index + 1, end):
            if lines[body].strip():
                lines[body] = " " * width + lines[body]
                shifts[body + 1] = ((1, width),)
        return _Repair(
            "\n".join(lines),
            index + 1,
            key_column + 1,
            f"the block scalar of {header.group('key')!r} and the rest of its list item are "
            f"indented {width} columns too little; read them as if indented correctly",
            shifts,
        )
    return None


def _try_repair(text: str, error: MarkedYAMLError) -> _Repair | None:
    mark = error.problem_mark or error.context_mark
    if mark is None:
        return None
    lines = text.split("\n")
    if error.problem == "mapping values are not allowed here" and mark.line < len(lines):
        return _quote_plain_value(lines, mark.line)
    if error.problem == "could not find expected ':'":
        context_line = error.context_mark.line if error.context_mark else mark.line
        return _reindent_item(lines, context_line)
    return None


def _merge_shifts(
    into: dict[int, tuple[tuple[int, int], ...]], new: Mapping[int, tuple[tuple[int, int], ...]]
) -> None:
    for line, entries in new.items():
        into[line] = (*into.get(line, ()), *entries)


def _check_shape(text: str, name: str) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` and alias bombs, before composing.

    Reads the parser's event stream, which is cheap and stops at the first offending event,
    so a 5,000-deep list or 10⁸ values reached through nested anchors costs milliseconds.
    A syntax error ends the check quietly: loading the text reports it with its position.
    """
    sizes: dict[str, int] = {}
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, values so far) per open node
    added = 0
    try:
        for event in YAML(typ="rt").parse(text):
            if isinstance(event, CollectionStartEvent):
                open_nodes.append((event.anchor, 1))
                if len(open_nodes) > MAX_DEPTH:
                    raise _shape_error(
                        name,
                        event,
                        f"YAML lists and mappings nest more than {MAX_DEPTH} levels deep here",
                    )
                continue
            if isinstance(event, CollectionEndEvent):
                anchor, size = open_nodes.pop()
            elif isinstance(event, AliasEvent):
                anchor, size = None, sizes.get(str(event.anchor), 1)
                added += size
                if added > MAX_ALIAS_EXPANSION:
                    raise _shape_error(
                        name,
                        event,
                        f"YAML aliases expand the document past {MAX_ALIAS_EXPANSION:,} values "
                        f"(*{event.anchor} here stands for {size:,}); write the values out or "
                        "use fewer nested aliases",
                    )
            elif isinstance(event, NodeEvent):
                anchor, size = event.anchor, 1
            else:
                continue
            if anchor is not None:
                sizes[str(anchor)] = size
            if open_nodes:
                parent_anchor, parent_size = open_nodes[-1]
                open_nodes[-1] = (parent_anchor, parent_size + size)
    except YAMLError:
        return


def _shape_error(name: str, event: Any, message: str) -> WorkflowError:
    mark = event.start_mark
    where = f"{name}:{mark.line + 1}:{mark.column + 1}"
    return WorkflowError(name, [Problem(where, f"refused: {message}")])


def _load(text: str, name: str) -> Any:
    _check_shape(text, name)
    yaml = YAML(typ="rt")
    return yaml.load(text)


_DUPLICATE_KEY = re.compile(r'found duplicate key "(?P<key>[^"]*)"')


def _syntax_problem(
    name: str, error: YAMLError, shifts: Mapping[int, tuple[tuple[int, int], ...]]
) -> Problem:
    problem_mark = getattr(error, "problem_mark", None)
    context_mark = getattr(error, "context_mark", None)
    mark = problem_mark or context_mark
    if mark is None:
        return Problem(f"{name}:1:1", f"YAML syntax error: {error}")
    position = _unshift(Position(mark.line + 1, mark.column + 1), shifts)
    detail = getattr(error, "problem", None) or str(error)
    duplicate = _DUPLICATE_KEY.search(detail)
    context = getattr(error, "context", None)
    if duplicate is not None:
        detail = f"duplicate key {duplicate.group('key')!r}: each key may appear only once"
    elif context and context_mark is not None and context_mark.line != mark.line:
        opened = _unshift(Position(context_mark.line + 1, context_mark.column + 1), shifts)
        detail = f"{detail} ({context} started at line {opened.line}, column {opened.column})"
    elif context:
        detail = f"{detail} ({context})"
    return Problem(f"{name}:{position.line}:{position.column}", f"YAML syntax error: {detail}")


def _parse_leniently(text: str, name: str) -> tuple[Any, str, dict[int, Any], list[str]]:
    shifts: dict[int, tuple[tuple[int, int], ...]] = {}
    notes: list[str] = []
    for _ in range(_MAX_REPAIRS):
        try:
            return _load(text, name), text, shifts, notes
        except MarkedYAMLError as error:
            repair = _try_repair(text, error)
            if repair is None or repair.text == text:
                raise WorkflowError(name, [_syntax_problem(name, error, shifts)]) from error
            text = repair.text
            _merge_shifts(shifts, repair.shifts)
            notes.append(f"{name}:{repair.line}:{repair.column}: read leniently: {repair.note}")
        except YAMLError as error:
            raise WorkflowError(name, [_syntax_problem(name, error, shifts)]) from error
    raise WorkflowError(name, [Problem(f"{name}:1:1", "YAML syntax error: too many problems")])


def parse_yaml(text: str, *, name: str) -> SourceDocument:
    """Parse workflow YAML into plain data with positions.

    Args:
        text: The file's contents.
        name: How the file is named in problems and warnings (its path).

    Returns:
        The document, its source map and any lenient-reading warnings.

    Raises:
        WorkflowError: The text is not YAML (one problem, at the parser's line:column).
    """
    loaded, parsed_text, shifts, notes = _parse_leniently(text, name)
    keys: dict[DataPath, Position] = {}
    values: dict[DataPath, Position] = {(): Position(1, 1)}
    if isinstance(loaded, CommentedMap | CommentedSeq):
        values[()] = Position(loaded.lc.line + 1, loaded.lc.col + 1)
    data = _walk(loaded, (), keys, values)
    source = SourceMap(name, parsed_text, keys, values, shifts)
    return SourceDocument(data, source, tuple(notes))


def iter_paths(data: Any, path: DataPath = ()) -> Iterator[tuple[DataPath, Any]]:
    """Every (path, value) in ``data``, parents before children."""
    yield path, data
    if isinstance(data, dict):
        for key, value in data.items():
            yield from iter_paths(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from iter_paths(value, (*path, index))
