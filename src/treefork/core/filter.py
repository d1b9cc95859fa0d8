"""Prodigy filter expressions over work items: parsed once, evaluated per item.

Grammar (keywords in any case; ``&&``/``||``/``!`` and ``AND``/``OR``/``NOT`` are the same)::

    expression := or
    or         := and (("||" | OR) and)*
    and        := unary (("&&" | AND) unary)*
    unary      := ("!" | NOT) unary | "(" expression ")" | condition
    condition  := operand [operator operand]
    operator   := == | != | < | > | <= | >= | in | not in | contains | matches
                  | starts_with | ends_with
    operand    := field | 'string' | "string" | number | true | false | null | [literal, ...]
    field      := name ("." name | "[" digits "]" | "['" key "']")*

``NOT`` binds tighter than ``AND``, which binds tighter than ``OR``; a comparison binds
tighter than all three, so ``!score > 5`` means ``!(score > 5)``. A field may be written with
or without the ``item.`` prefix (``item.score`` and ``score`` are the same field); ``item``
alone is the whole item (useful for items that are plain strings). A bare operand is a
truth test: ``has_issues`` holds when the field is not null, false, 0, "" or empty.

Semantics:

- A field the item does not have (or an item that is not an object) is **null**.
- ``==`` / ``!=`` compare JSON values strictly by type: numbers by value (``1 == 1.0``), but
  ``"5" != 5``, ``true != 1`` and ``null`` equals only ``null``.
- ``<``, ``>``, ``<=``, ``>=`` hold only between two numbers or two strings (by code point);
  with null or mismatched types they are false, so ``score >= 5`` drops items without a score.
- ``in``: membership in a list (``kind in ['bug', 'fix']``), or substring of a string.
- ``contains``: substring of a string, element of a list, or key of an object.
- ``matches``: Python regular expression, searched anywhere in a string (anchor with ``^``/``$``);
  false for non-strings. The pattern is compiled when the filter is parsed.
- Inside a quoted string a backslash escapes only the quote character and the backslash
  itself; any other backslash is kept, so regular expressions read naturally (``'\\.rs$'``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from treefork.core.fields import (
    _NAME,
    _OPERATORS,
    FieldPath,
    FilterError,
    _scan_field_path,
    _truthy,
    _unescape,
    json_equal,
    parse_field_path,
)

__all__ = (
    "And",
    "Compare",
    "Condition",
    "FieldPath",
    "Filter",
    "FilterError",
    "Literal",
    "Not",
    "Or",
    "Truthy",
    "json_equal",
    "parse_field_path",
    "parse_filter",
)


_WORD_OPERATORS = frozenset({"in", "contains", "matches", "starts_with", "ends_with"})


# --------------------------------------------------------------------------- syntax tree


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant: string, number, boolean, null, or a list of those."""

    value: Any

    def evaluate(self, item: Any) -> Any:
        """The constant itself."""
        return self.value


Operand: TypeAlias = FieldPath | Literal


def _value(operand: Operand, item: Any) -> Any:
    return operand.lookup(item) if isinstance(operand, FieldPath) else operand.value


@dataclass(frozen=True, slots=True)
class Compare:
    """``left <operator> right``."""

    operator: str
    left: Operand
    right: Operand
    pattern: re.Pattern[str] | None = None
    """The compiled regular expression of a ``matches`` comparison."""

    def holds(self, item: Any) -> bool:
        """Whether the comparison holds for ``item``."""
        left = _value(self.left, item)
        if self.pattern is not None:
            return isinstance(left, str) and self.pattern.search(left) is not None
        return _OPERATORS[self.operator](left, _value(self.right, item))


@dataclass(frozen=True, slots=True)
class Truthy:
    """A bare operand used as a condition."""

    operand: Operand

    def holds(self, item: Any) -> bool:
        """Whether the operand's value is truthy (not null, false, 0, "" or empty)."""
        return _truthy(_value(self.operand, item))


@dataclass(frozen=True, slots=True)
class Not:
    """``!condition``."""

    operand: Condition

    def holds(self, item: Any) -> bool:
        """Whether the inner condition does not hold."""
        return not self.operand.holds(item)


@dataclass(frozen=True, slots=True)
class And:
    """All of ``operands`` hold."""

    operands: tuple[Condition, ...]

    def holds(self, item: Any) -> bool:
        """Whether every operand holds (evaluated left to right, short-circuit)."""
        return all(operand.holds(item) for operand in self.operands)


@dataclass(frozen=True, slots=True)
class Or:
    """At least one of ``operands`` holds."""

    operands: tuple[Condition, ...]

    def holds(self, item: Any) -> bool:
        """Whether some operand holds (evaluated left to right, short-circuit)."""
        return any(operand.holds(item) for operand in self.operands)


Condition: TypeAlias = Compare | Truthy | Not | And | Or
"""A node of a parsed filter."""


@dataclass(frozen=True, slots=True)
class Filter:
    """A parsed filter expression."""

    expression: str
    """The expression as written."""
    root: Condition
    """The parsed condition."""

    def matches(self, item: Any) -> bool:
        """Whether ``item`` passes the filter."""
        return self.root.holds(item)

    def apply(self, items: Sequence[Any]) -> list[Any]:
        """The items that pass, in their order."""
        return [item for item in items if self.matches(item)]


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    """``op``, ``word``, ``field``, ``string``, ``number``, ``punct`` or ``end``."""
    text: str
    position: int
    value: Any = None


_SYMBOLS = ("==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", "[", "]", ",")
_NUMBER = re.compile(r"-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
_KEYWORDS = frozenset({"and", "or", "not", "true", "false", "null", *_WORD_OPERATORS})


def _read_string(expression: str, start: int) -> _Token:
    quote = expression[start]
    position = start + 1
    while position < len(expression):
        character = expression[position]
        if character == "\\" and position + 1 < len(expression):
            position += 2
            continue
        if character == quote:
            raw = expression[start + 1 : position]
            return _Token("string", expression[start : position + 1], start, _unescape(raw, quote))
        position += 1
    raise FilterError(expression, start, "unterminated string")


def _read_token(expression: str, position: int) -> _Token:
    character = expression[position]
    if character in "'\"":
        return _read_string(expression, position)
    number = _NUMBER.match(expression, position)
    if number and not _NAME.match(expression, number.end()):
        text = number.group()
        value = float(text) if any(mark in text for mark in ".eE") else int(text)
        return _Token("number", text, position, value)
    for symbol in _SYMBOLS:
        if expression.startswith(symbol, position):
            kind = "punct" if symbol in "()[]," else "op"
            return _Token(kind, symbol, position)
    scanned = _scan_field_path(expression, position)
    if scanned is None:
        hint = " (use == to compare)" if character == "=" else ""
        raise FilterError(expression, position, f"unexpected {character!r}{hint}")
    path = scanned[0]
    word = path.text.lower()
    if word in _KEYWORDS:
        return _Token("word", path.text, position, word)
    return _Token("field", path.text, position, path)


def _tokenize(expression: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(expression):
        if expression[position].isspace():
            position += 1
            continue
        token = _read_token(expression, position)
        tokens.append(token)
        position += len(token.text)
    tokens.append(_Token("end", "", len(expression)))
    return tokens


# --------------------------------------------------------------------------- parser


class _Parser:
    """Recursive descent over the token list; one method per grammar rule."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.tokens = _tokenize(expression)
        self.index = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.current
        self.index += 1
        return token

    def error(self, reason: str, token: _Token | None = None) -> FilterError:
        return FilterError(self.expression, (token or self.current).position, reason)

    def at_word(self, *words: str) -> bool:
        return self.current.kind == "word" and self.current.value in words

    def at_op(self, *symbols: str) -> bool:
        return self.current.kind in ("op", "punct") and self.current.text in symbols

    def parse(self) -> Condition:
        if self.current.kind == "end":
            raise self.error("empty filter expression")
        condition = self.parse_or()
        if self.current.kind != "end":
            raise self.error(f"unexpected {self.current.text!r}; expected AND, OR or the end")
        return condition

    def parse_or(self) -> Condition:
        operands = [self.parse_and()]
        while self.at_op("||") or self.at_word("or"):
            self.advance()
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def parse_and(self) -> Condition:
        operands = [self.parse_unary()]
        while self.at_op("&&") or self.at_word("and"):
            self.advance()
            operands.append(self.parse_unary())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def parse_unary(self) -> Condition:
        if self.at_op("!") or self.at_word("not"):
            self.advance()
            return Not(self.parse_unary())
        if self.at_op("("):
            opening = self.advance()
            condition = self.parse_or()
            if not self.at_op(")"):
                column = opening.position + 1
                raise self.error(f"missing ')' to close the '(' at column {column}")
            self.advance()
            return condition
        return self.parse_condition()

    def parse_condition(self) -> Condition:
        left = self.parse_operand()
        operator = self.parse_operator()
        if operator is None:
            return Truthy(left)
        right_token = self.current
        right = self.parse_operand()
        if operator != "matches":
            return Compare(operator, left, right)
        return Compare(operator, left, right, self.compile_pattern(right, right_token))

    def parse_operator(self) -> str | None:
        if self.at_op("==", "!=", "<", ">", "<=", ">="):
            return self.advance().text
        if self.at_word(*_WORD_OPERATORS):
            return str(self.advance().value)
        if self.at_word("not") and self.tokens[self.index + 1].value == "in":
            self.index += 2
            return "not in"
        return None

    def compile_pattern(self, right: Operand, token: _Token) -> re.Pattern[str]:
        if not (isinstance(right, Literal) and isinstance(right.value, str)):
            raise self.error("matches needs a quoted regular expression", token)
        try:
            return re.compile(right.value)
        except re.error as error:
            raise self.error(f"invalid regular expression: {error}", token) from error

    def parse_operand(self) -> Operand:
        token = self.current
        if isinstance(token.value, FieldPath):
            self.advance()
            return token.value
        if self.at_op("["):
            return Literal(self.parse_list())
        return Literal(self.parse_literal())

    def parse_literal(self) -> Any:
        token = self.current
        if token.kind in ("string", "number"):
            self.advance()
            return token.value
        if self.at_word("true", "false", "null"):
            self.advance()
            return {"true": True, "false": False, "null": None}[token.value]
        if token.kind == "end":
            raise self.error("expression ends where a value or field was expected")
        raise self.error(f"expected a value or field, found {token.text!r}")

    def parse_list(self) -> list[Any]:
        self.advance()
        values: list[Any] = []
        while not self.at_op("]"):
            values.append(self.parse_literal())
            if self.at_op(","):
                self.advance()
            elif not self.at_op("]"):
                raise self.error("expected ',' or ']' in list")
        self.advance()
        return values


def parse_filter(expression: str) -> Filter:
    """Parse a filter expression once; evaluate it per item with :meth:`Filter.matches`.

    Args:
        expression: e.g. ``item.score >= 5 AND kind in ['bug', 'fix']``.

    Returns:
        The parsed filter.

    Raises:
        FilterError: The expression is not valid; ``position`` points at the problem.
    """
    return Filter(expression, _Parser(expression).parse())
