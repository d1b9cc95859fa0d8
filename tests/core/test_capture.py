from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treefork.core.capture import parse_capture


@pytest.mark.parametrize(
    ("output", "capture_format", "value"),
    [
        ("hello\n", "string", "hello"),
        ("  two\nlines \r\n\n", "string", "  two\nlines "),
        ("42\n", "number", 42),
        (" -7 ", "number", -7),
        ("2.5\n", "number", 2.5),
        ('{"a": [1, 2]}\n', "json", {"a": [1, 2]}),
        ("[1]", "json", [1]),
        ('"text"', "json", "text"),
        ("a\n\nb\n", "lines", ["a", "", "b"]),
        ("", "lines", []),
        ("\n", "lines", []),
        ("true\n", "boolean", True),
        ("Yes", "boolean", True),
        ("0", "boolean", False),
        ("", "boolean", False),
    ],
)
def test_formats(output: str, capture_format: str, value: Any) -> None:
    assert parse_capture(output, capture_format, variable="v") == value


@pytest.mark.parametrize(
    ("output", "capture_format", "message"),
    [
        ("12 files", "number", "cannot capture 'count' as number: '12 files' is not a number"),
        ("nan", "number", "is not a number"),
        ("{oops", "json", "cannot capture 'count' as json: Expecting property name"),
        ("", "json", "cannot capture 'count' as json"),
        ("maybe", "boolean", "cannot capture 'count' as boolean: 'maybe' is not true or false"),
        ("x", "yaml", "cannot capture 'count' as yaml: unknown format"),
    ],
)
def test_errors_name_the_variable_and_the_format(
    output: str, capture_format: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_capture(output, capture_format, variable="count")


@given(st.integers())
def test_numbers_round_trip(number: int) -> None:
    assert parse_capture(f"{number}\n", "number", variable="n") == number


@given(
    st.lists(
        st.text(
            alphabet=st.characters(exclude_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
            min_size=1,
        )
    )
)
def test_lines_round_trip(lines: list[str]) -> None:
    assert parse_capture("\n".join(lines) + "\n", "lines", variable="n") == lines
