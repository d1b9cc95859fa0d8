from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treefork.core.filter import FilterError, json_equal, parse_field_path, parse_filter

ITEMS: list[dict[str, Any]] = [
    {"path": "src/main.rs", "has_issues": True, "complexity": 15, "severity": "high"},
    {"path": "README.md", "has_issues": False, "complexity": 0, "severity": "low"},
    {"path": "src/lib.rs", "has_issues": False, "complexity": 8, "severity": "critical"},
    {"File": {"score": 12}},
    {"Function": {"unified_score": {"final_score": 30}}, "tags": ["perf", "bug"]},
]


def kept(expression: str, items: list[Any] = ITEMS) -> list[int]:
    parsed = parse_filter(expression)
    return [index for index, item in enumerate(items) if parsed.matches(item)]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("path matches '\\.rs$' && has_issues == true", [0]),
        ("severity == 'high' || severity == 'critical'", [0, 2]),
        ("File.score >= 10 OR Function.unified_score.final_score >= 10", [3, 4]),
        ("item.complexity > 5", [0, 2]),
        ("complexity <= 8", [1, 2]),
        ("complexity != 15", [1, 2, 3, 4]),
        ("severity in ['high', 'low']", [0, 1]),
        ("severity not in ['high', 'low']", [2, 3, 4]),
        ("path contains 'src/'", [0, 2]),
        ("tags contains 'bug'", [4]),
        ("path starts_with 'src' AND path ends_with 'lib.rs'", [2]),
        ('severity == "high"', [0]),
    ],
)
def test_corpus_style_expressions_select_the_expected_items(
    expression: str, expected: list[int]
) -> None:
    assert kept(expression) == expected


def test_and_binds_tighter_than_or() -> None:
    assert kept("severity == 'low' OR has_issues == true AND complexity > 100") == [1]
    assert kept("(severity == 'low' OR has_issues == true) AND complexity > 100") == []


def test_not_applies_to_the_whole_comparison_that_follows() -> None:
    assert kept("!complexity > 5") == [1, 3, 4]
    assert kept("NOT (complexity > 5 OR severity == 'low')") == [3, 4]


def test_keywords_are_case_insensitive() -> None:
    assert kept("severity == 'low' or severity == 'high'") == kept(
        "severity == 'low' OR severity == 'high'"
    )
    assert kept("not has_issues") == kept("NOT has_issues") == [1, 2, 3, 4]


def test_missing_fields_compare_as_null() -> None:
    assert kept("severity == null") == [3, 4]
    assert kept("nothing.here != null") == []


def test_ordering_with_null_or_mismatched_types_is_false() -> None:
    assert kept("complexity >= 0") == [0, 1, 2]
    assert kept("complexity < 'z'") == []
    assert not parse_filter("x > 1").matches({"x": "2"})


def test_equality_is_strict_by_type() -> None:
    assert parse_filter("x == 1").matches({"x": 1.0})
    assert not parse_filter("x == 1").matches({"x": True})
    assert not parse_filter("x == '1'").matches({"x": 1})
    assert not json_equal(0, False)


def test_bare_field_is_a_truth_test() -> None:
    assert kept("has_issues") == [0]
    assert kept("tags") == [4]


def test_plain_string_items_are_the_item_itself() -> None:
    files = ["a.rs", "b.py", "c.rs"]
    assert kept("item matches '\\.rs$'", files) == [0, 2]
    assert kept("item.anything == null", files) == [0, 1, 2]


def test_list_indexes_and_quoted_keys_reach_nested_values() -> None:
    item = {"tags": ["x", "y"], "odd key": {"v": 3}}
    assert parse_filter("tags[1] == 'y'").matches(item)
    assert parse_filter("tags[-1] == 'y'").matches(item)
    assert parse_filter("item['odd key'].v == 3").matches(item)
    assert not parse_filter("tags[5] != null").matches(item)


def test_matches_searches_anywhere_and_anchors_work() -> None:
    assert parse_filter("p matches 'lib'").matches({"p": "src/lib.rs"})
    assert not parse_filter("p matches '^lib'").matches({"p": "src/lib.rs"})
    assert not parse_filter("p matches 'x'").matches({"p": 5})


def test_backslash_escapes_only_quote_and_backslash() -> None:
    assert parse_filter(r"p == 'it\'s'").matches({"p": "it's"})
    assert parse_filter(r"p matches '\d+'").matches({"p": "a12"})


def test_numbers_parse_with_sign_and_fraction() -> None:
    assert parse_filter("x > -1.5").matches({"x": -1})
    assert parse_filter("x == 2e3").matches({"x": 2000})


@pytest.mark.parametrize(
    ("expression", "column", "fragment"),
    [
        ("", 1, "empty filter"),
        ("a ==", 5, "ends where a value"),
        ("a = 1", 3, "use =="),
        ("(a == 1", 8, "missing ')'"),
        ("a matches '('", 11, "invalid regular expression"),
        ("a == 1 b", 8, "expected AND, OR"),
        ("'abc", 1, "unterminated string"),
        ("a in [1,", 9, "ends where"),
        ("a in [1 2]", 9, "expected ',' or ']'"),
        ("== 1", 1, "expected a value or field"),
        ("a && || b", 6, "expected a value or field"),
        ("a matches b", 11, "quoted regular expression"),
        ("a # 1", 3, "unexpected '#'"),
    ],
)
def test_bad_syntax_is_reported_with_its_column(
    expression: str, column: int, fragment: str
) -> None:
    with pytest.raises(FilterError) as raised:
        parse_filter(expression)
    assert raised.value.position + 1 == column
    assert fragment in str(raised.value)


def test_field_paths_drop_the_item_prefix() -> None:
    assert parse_field_path("item.a.b[0]").parts == ("a", "b", 0)
    assert parse_field_path("a.b[0]").parts == ("a", "b", 0)
    assert parse_field_path("item").parts == ()


def test_field_path_rejects_trailing_text() -> None:
    with pytest.raises(FilterError, match="unexpected"):
        parse_field_path("a.b c")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=8,
)


@given(st.lists(json_values, max_size=10))
def test_true_keeps_every_item_and_false_keeps_none(items: list[Any]) -> None:
    assert parse_filter("true").apply(items) == items
    assert parse_filter("false").apply(items) == []


@given(st.dictionaries(st.sampled_from("abc"), json_values, max_size=3), st.integers())
def test_a_condition_and_its_negation_partition_items(item: dict[str, Any], bound: int) -> None:
    condition = parse_filter(f"a > {bound} OR b == 'x'")
    negation = parse_filter(f"!(a > {bound} OR b == 'x')")
    assert condition.matches(item) != negation.matches(item)


@given(st.text(max_size=30))
def test_any_text_either_parses_or_raises_filter_error(expression: str) -> None:
    try:
        parsed = parse_filter(expression)
    except FilterError as error:
        assert 0 <= error.position <= len(expression)
    else:
        parsed.matches({"a": 1})
