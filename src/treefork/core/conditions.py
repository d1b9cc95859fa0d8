"""``when`` conditions: whether a step runs.

Grammar (keywords and truth words in any case)::

    condition   := disjunction
    disjunction := conjunction (("||" | "or") conjunction)*
    conjunction := negation (("&&" | "and") negation)*
    negation    := ("!" | "not") negation | comparison
    comparison  := operand [("==" | "=" | "!=" | "<" | ">" | "<=" | ">=") operand]
    operand     := "(" condition ")" | 'text' | "text" | words

``words`` is a run of unquoted words; the words together, with their spacing, are one
operand (``${shell.output} == all good`` compares with ``all good``). A lone operand is a
truth value: ``true``/``yes``/``on``/``1`` (or any non-zero number) hold; ``false``/``no``/
``off``/``0`` and the empty text do not; any other text is an error. ``==``/``!=`` compare
as numbers when both sides are numbers, else as text; ``<``, ``>``, ``<=``, ``>=`` need
numbers on both sides.

:func:`holds` reads the structure from the template *before* interpolating, so a value that
contains ``&&`` or quotes stays one operand. :func:`evaluate` takes text that is already
rendered. Both raise ``ValueError`` with a message naming the problem and its position.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from treefork.core.interpolate import render_text

__all__ = ("evaluate", "holds")

_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<operator>&&|\|\||==|!=|<=|>=|<|>|=|!|\(|\))
    |(?P<quoted>'[^']*'|"(?:[^"\\]|\\.)*")
    |(?P<word>(?:\$\{[^}]*\}|[^\s()<>=!&|'"])+)""",
    re.VERBOSE,
)
_KEYWORDS: Final = {"and": "&&", "or": "||", "not": "!"}
_COMPARISONS: Final = frozenset({"==", "=", "!=", "<", ">", "<=", ">="})
_TRUE: Final = frozenset({"true", "yes", "on", "1"})
_FALSE: Final = frozenset({"false", "no", "off", "0", ""})


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    """``operator``, ``text`` (quoted, taken as is) or ``words``."""
    text: str
    position: int


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            raise ValueError(f"condition {source!r}: unexpected {source[position]!r} at {position}")
        position = match.end()
        kind = match.lastgroup or ""
        text = match.group(0)
        if kind == "space":
            continue
        if kind == "word" and text.lower() in _KEYWORDS:
            tokens.append(_Token("operator", _KEYWORDS[text.lower()], match.start()))
        elif kind == "word" and tokens and tokens[-1].kind == "words":
            previous = tokens.pop()  # words run together into one operand, spacing kept
            tokens.append(
                _Token("words", source[previous.position : match.end()], previous.position)
            )
        elif kind == "quoted":
            tokens.append(_Token("text", _unquote(text), match.start()))
        else:
            tokens.append(_Token("words" if kind == "word" else "operator", text, match.start()))
    return tokens


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", r"\1", body) if text.startswith('"') else body


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _truth(text: str, source: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    number = _number(word)
    if number is not None:
        return number != 0
    raise ValueError(
        f"condition {source!r}: cannot read {text!r} as true or false "
        "(use true/false, yes/no, 1/0 or a comparison)"
    )


def _compare(left: str, operator: str, right: str, source: str) -> bool:
    left_number, right_number = _number(left), _number(right)
    both_numbers = left_number is not None and right_number is not None
    if operator in ("==", "="):
        return left_number == right_number if both_numbers else left.strip() == right.strip()
    if operator == "!=":
        return left_number != right_number if both_numbers else left.strip() != right.strip()
    if left_number is None or right_number is None:
        raise ValueError(
            f"condition {source!r}: {operator} needs numbers, got {left!r} and {right!r}"
        )
    results = {
        "<": left_number < right_number,
        ">": left_number > right_number,
        "<=": left_number <= right_number,
        ">=": left_number >= right_number,
    }
    return results[operator]


@dataclass(slots=True)
class _Parser:
    tokens: list[_Token]
    source: str
    render: Callable[[str], str]
    index: int = 0

    def _peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _take_operator(self, *operators: str) -> str | None:
        token = self._peek()
        if token is not None and token.kind == "operator" and token.text in operators:
            self.index += 1
            return token.text
        return None

    def _fail(self, expected: str) -> ValueError:
        token = self._peek()
        found = f"{token.text!r} at {token.position}" if token else "the end"
        return ValueError(f"condition {self.source!r}: expected {expected}, found {found}")

    def parse(self) -> bool:
        if not self.tokens:
            raise ValueError("condition is empty")
        value = self._disjunction()
        if self._peek() is not None:
            raise self._fail("&&, || or the end")
        return value

    def _disjunction(self) -> bool:
        value = self._conjunction()
        while self._take_operator("||"):
            value = self._conjunction() or value
        return value

    def _conjunction(self) -> bool:
        value = self._negation()
        while self._take_operator("&&"):
            value = self._negation() and value
        return value

    def _negation(self) -> bool:
        if self._take_operator("!"):
            return not self._negation()
        return self._comparison()

    def _comparison(self) -> bool:
        if self._take_operator("("):
            value = self._disjunction()
            if not self._take_operator(")"):
                raise self._fail(")")
            return value
        left = self._operand()
        operator = self._take_operator(*_COMPARISONS)
        if operator is None:
            return _truth(left, self.source)
        return _compare(left, operator, self._operand(), self.source)

    def _operand(self) -> str:
        token = self._peek()
        if token is None or token.kind == "operator":
            raise self._fail("a value")
        self.index += 1
        return token.text if token.kind == "text" else self.render(token.text)


def evaluate(condition: str) -> bool:
    """Evaluate a condition whose references are already substituted.

    Raises:
        ValueError: The condition is empty or does not follow the grammar.
    """
    return _Parser(_tokenize(condition), condition, lambda text: text).parse()


def holds(template: str, scope: Mapping[str, Any]) -> bool:
    """Evaluate a ``when`` template: its structure first, then each operand interpolated.

    Args:
        template: The condition as written (``${map.failed} == 0 && ${run_tests}``).
        scope: Variables by name (see :mod:`treefork.core.interpolate`).

    Raises:
        ValueError: The condition does not follow the grammar.
        InterpolationError: A reference in it cannot be resolved.
    """
    tokens = [
        _Token(token.kind, render_text(token.text, scope), token.position)
        if token.kind == "text"
        else token
        for token in _tokenize(template)
    ]
    return _Parser(tokens, template, lambda text: render_text(text, scope)).parse()
