from __future__ import annotations

import pytest

from treefork.core.conditions import evaluate, holds
from treefork.errors import InterpolationError


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("true", True),
        ("False", False),
        ("yes", True),
        ("no", False),
        ("1", True),
        ("0", False),
        ("''", False),
        ("2.5", True),
        ("a == a", True),
        ("a == b", False),
        ("a != b", True),
        ("a = a", True),
        ("1.0 == 1", True),
        ("10 > 9", True),
        ("10 < 9", False),
        ("3 >= 3", True),
        ("-1 <= -2", False),
        ("! false", True),
        ("not true", False),
        ("true && false", False),
        ("true and true", True),
        ("false || true", True),
        ("false or false", False),
        ("!(true && false) && (1 == 1 || x == y)", True),
        ("all good == all good", True),
        ("'a && b' == \"a && b\"", True),
        ("NOT (a == b) AND yes", True),
    ],
)
def test_evaluate_follows_the_grammar(condition: str, expected: bool) -> None:
    assert evaluate(condition) is expected


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("", "empty"),
        ("maybe", "cannot read 'maybe' as true or false"),
        ("a < b", "< needs numbers"),
        ("(true", "expected \\)"),
        ("true true ==", "expected a value"),
        ("&& true", "expected a value"),
        ("true false", "cannot read"),
        ("1 == 1 )", "expected &&, \\|\\| or the end"),
    ],
)
def test_unknown_syntax_is_a_clear_error(condition: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate(condition)


def test_holds_interpolates_each_operand_after_reading_the_structure() -> None:
    scope = {"map": {"failed": 0}, "shell": {"output": "a && b == c"}}
    assert holds("${map.failed} == 0", scope)
    assert holds("${shell.output} == 'a && b == c'", scope)
    assert not holds('${shell.output} != "a && b == c" || ${map.failed} > 0', scope)


def test_holds_reports_unknown_variables() -> None:
    with pytest.raises(InterpolationError, match="did you mean"):
        holds("${flag} == yes", {"flags": True})


def test_holds_reads_captured_booleans() -> None:
    assert holds("${ready}", {"ready": True})
    assert not holds("${ready} && true", {"ready": False})
