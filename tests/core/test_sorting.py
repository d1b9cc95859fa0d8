from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treefork.core.sorting import SortError, parse_sort_spec, sort_items


def ordered(items: list[Any], spec: str) -> list[Any]:
    return sort_items(items, parse_sort_spec(spec))


def test_single_key_ascending_by_default() -> None:
    items = [{"p": 3}, {"p": 1}, {"p": 2}]
    assert ordered(items, "priority") == items  # no such field: input order kept
    assert [i["p"] for i in ordered(items, "p")] == [1, 2, 3]
    assert [i["p"] for i in ordered(items, "item.p DESC")] == [3, 2, 1]


def test_nulls_go_last_by_default_in_both_directions() -> None:
    items = [{"p": None}, {"p": 1}, {}, {"p": 2}]
    assert [i.get("p") for i in ordered(items, "p ASC")] == [1, 2, None, None]
    assert [i.get("p") for i in ordered(items, "p DESC")] == [2, 1, None, None]


def test_nulls_first_puts_missing_values_first_in_both_directions() -> None:
    items = [{"p": 1}, {}, {"p": 2}]
    assert [i.get("p") for i in ordered(items, "p asc nulls first")] == [None, 1, 2]
    assert [i.get("p") for i in ordered(items, "p DESC NULLS FIRST")] == [None, 2, 1]


def test_several_keys_each_keep_their_own_direction() -> None:
    items = [
        {"id": "a", "group": 1, "score": 5},
        {"id": "b", "group": 2, "score": 9},
        {"id": "c", "group": 1, "score": 7},
        {"id": "d", "group": 2, "score": 1},
    ]
    assert [i["id"] for i in ordered(items, "group ASC, score DESC")] == ["c", "a", "b", "d"]


def test_debtmap_spec_puts_files_before_functions() -> None:
    items = [
        {"Function": {"unified_score": {"final_score": 30}}},
        {"File": {"score": 12}},
        {"Function": {"unified_score": {"final_score": 50}}},
        {"File": {"score": 40}},
    ]
    spec = "File.score DESC NULLS LAST, Function.unified_score.final_score DESC NULLS LAST"
    result = ordered(items, spec)
    assert result == [items[3], items[1], items[2], items[0]]


def test_mixed_types_order_by_type_first() -> None:
    items = [{"v": "b"}, {"v": [1]}, {"v": 2}, {"v": {"k": 1}}, {"v": True}, {"v": 1.5}]
    assert [i["v"] for i in ordered(items, "v")] == [True, 1.5, 2, "b", [1], {"k": 1}]


def test_nan_sorts_after_other_numbers() -> None:
    nan = float("nan")
    result = ordered([{"v": nan}, {"v": 1}], "v")
    assert result[0] == {"v": 1}


@pytest.mark.parametrize(
    ("spec", "column", "fragment"),
    [
        ("", 1, "empty sort spec"),
        ("a, , b", 3, "empty sort key"),
        ("a DESC ASC", 8, "unexpected 'ASC'"),
        ("a NULLS", 3, "NULLS must be followed"),
        ("a NULLS MIDDLE", 3, "NULLS must be followed"),
        ("1abc", 1, "expected a field name"),
        ("a.b+c", 4, "unexpected '+'"),
    ],
)
def test_bad_specs_are_reported_with_their_column(spec: str, column: int, fragment: str) -> None:
    with pytest.raises(SortError) as raised:
        parse_sort_spec(spec)
    assert raised.value.position + 1 == column
    assert fragment in str(raised.value)


json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=3)


@given(st.lists(st.fixed_dictionaries({"k": json_scalars, "n": st.integers()}), max_size=20))
def test_sort_is_stable_and_a_permutation(items: list[dict[str, Any]]) -> None:
    tagged = [{**item, "position": position} for position, item in enumerate(items)]
    for spec in ("k", "k DESC", "k NULLS FIRST", "k DESC NULLS FIRST"):
        result = ordered(tagged, spec)
        assert sorted(i["position"] for i in result) == list(range(len(items)))
        for before, after in pairwise(result):
            if before["k"] == after["k"] and type(before["k"]) is type(after["k"]):
                assert before["position"] < after["position"]


@given(st.lists(st.fixed_dictionaries({"k": st.none() | st.integers()}), max_size=20))
def test_nulls_placement_holds_whatever_the_direction(items: list[dict[str, Any]]) -> None:
    for direction in ("ASC", "DESC"):
        last = [i["k"] is None for i in ordered(items, f"k {direction} NULLS LAST")]
        first = [i["k"] is None for i in ordered(items, f"k {direction} NULLS FIRST")]
        assert last == sorted(last)
        assert first == sorted(first, reverse=True)


@given(st.lists(st.integers(), max_size=20))
def test_desc_is_the_reverse_of_asc_for_distinct_numbers(values: list[int]) -> None:
    items = [{"v": v} for v in set(values)]
    assert ordered(items, "v DESC") == list(reversed(ordered(items, "v ASC")))
