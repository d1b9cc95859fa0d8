from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treefork.core.items import WorkItem, assign_item_ids, extract_items, select_items
from treefork.errors import WorkItemError


def select(document: Any, **settings: Any) -> list[WorkItem]:
    options: dict[str, Any] = {
        "json_path": None,
        "filter": None,
        "sort_by": None,
        "offset": None,
        "max_items": None,
        "distinct": None,
    }
    options.update(settings)
    return select_items(document, **options)


def test_json_path_picks_items_inside_an_object() -> None:
    document = {"items": [{"id": 1, "task": "a"}, {"id": 2, "task": "b"}]}
    items = select(document, json_path="$.items[*]")
    assert [(i.item_id, i.index, i.value["task"]) for i in items] == [("1", 0, "a"), ("2", 1, "b")]


def test_json_path_to_a_single_list_uses_its_elements() -> None:
    assert extract_items({"items": [1, 2]}, "$.items") == [1, 2]


def test_root_star_path_over_a_list_gives_its_elements() -> None:
    assert extract_items(["a", "b"], "$[*]") == ["a", "b"]


def test_extended_json_path_filters_work() -> None:
    document = {"items": [{"s": 1}, {"s": 9}]}
    assert extract_items(document, "$.items[?(@.s > 5)]") == [{"s": 9}]


def test_list_document_without_json_path_is_the_items() -> None:
    assert [i.value for i in select(["x", "y"])] == ["x", "y"]


def test_object_with_exactly_one_list_gives_that_list() -> None:
    assert [i.value for i in select({"name": "n", "files": ["a", "b"]})] == ["a", "b"]


def test_object_with_several_lists_needs_a_json_path() -> None:
    with pytest.raises(WorkItemError, match=r"set json_path.*keys: a, b"):
        select(
            {"a": [1], "b": [2]},
        )


def test_scalar_document_is_an_error() -> None:
    with pytest.raises(WorkItemError, match="expected a JSON list"):
        select(42)


def test_invalid_json_path_is_a_work_item_error_naming_the_source() -> None:
    with pytest.raises(WorkItemError, match=r"items\.json.*invalid JSONPath"):
        select_items(
            [],
            json_path="$.[",
            filter=None,
            sort_by=None,
            offset=None,
            max_items=None,
            distinct=None,
            source="items.json",
        )


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"filter": "a =="}, "invalid filter"),
        ({"sort_by": "a SIDEWAYS"}, "invalid sort_by"),
        ({"distinct": "a b"}, "invalid distinct"),
        ({"offset": -1}, "offset must not be negative"),
        ({"max_items": -2}, "max_items must not be negative"),
    ],
)
def test_invalid_settings_are_work_item_errors(settings: dict[str, Any], fragment: str) -> None:
    with pytest.raises(WorkItemError, match=fragment):
        select([1], **settings)


def test_ids_come_from_the_id_field_else_the_position() -> None:
    assert assign_item_ids([{"id": "x"}, "plain", {"id": 7}, {"id": None}, {"id": True}]) == [
        "x",
        "1",
        "7",
        "3",
        "4",
    ]


def test_duplicate_ids_get_suffixes_that_do_not_collide() -> None:
    assert assign_item_ids([{"id": "a"}, {"id": "a"}, {"id": "a-2"}]) == ["a", "a-3", "a-2"]


def test_ids_stay_stable_when_the_selection_changes() -> None:
    document = [{"n": n} for n in range(6)]
    all_items = {i.value["n"]: i.item_id for i in select(document)}
    page = select(document, filter="n >= 2", sort_by="n DESC", offset=1, max_items=2)
    assert [(i.value["n"], i.index) for i in page] == [(4, 0), (3, 1)]
    assert all(i.item_id == all_items[i.value["n"]] for i in page)


def test_order_is_filter_sort_distinct_offset_max_items() -> None:
    document = [
        {"id": "a", "group": "x", "score": 1},
        {"id": "b", "group": "x", "score": 5},
        {"id": "c", "group": "y", "score": 3},
        {"id": "d", "group": "z", "score": 0},
        {"id": "e", "group": "y", "score": 4},
    ]
    items = select(
        document, filter="score > 0", sort_by="score DESC", distinct="group", offset=1, max_items=5
    )
    # filter drops d; sort: b e c a; distinct per group keeps b (x) e (y); offset 1 -> e.
    assert [i.item_id for i in items] == ["e"]


def test_distinct_treats_missing_fields_as_one_null_value() -> None:
    items = select([{"k": 1}, {}, {"k": 1.0}, {"k": None}, {"k": True}], distinct="k")
    assert [i.item_id for i in items] == ["0", "1", "4"]


documents = st.lists(
    st.fixed_dictionaries(
        {"k": st.none() | st.integers(0, 3) | st.sampled_from(["a", "b"]), "n": st.integers()}
    ),
    max_size=25,
)
counts = st.none() | st.integers(0, 30)


@given(documents, counts, counts)
def test_offset_and_max_items_slice_the_unpaged_selection(
    document: list[dict[str, Any]], offset: int | None, max_items: int | None
) -> None:
    everything = select(document, sort_by="k")
    page = select(document, sort_by="k", offset=offset, max_items=max_items)
    start = offset or 0
    expected = everything[start:] if max_items is None else everything[start : start + max_items]
    assert [i.item_id for i in page] == [i.item_id for i in expected]
    assert [i.index for i in page] == list(range(len(page)))
    if max_items is not None:
        assert len(page) <= max_items


@given(documents)
def test_distinct_leaves_one_item_per_value_and_keeps_order(
    document: list[dict[str, Any]],
) -> None:
    everything = select(document)
    unique = select(document, distinct="k")
    values = [(type(i.value["k"]).__name__, i.value["k"]) for i in unique]
    assert len(values) == len(set(values))
    positions = [int(i.item_id) for i in unique]
    assert positions == sorted(positions)
    assert {(type(i.value["k"]).__name__, i.value["k"]) for i in everything} == set(values)


@given(documents)
def test_filter_true_keeps_all_and_ids_are_unique(document: list[dict[str, Any]]) -> None:
    items = select(document, filter="true")
    assert [i.value for i in items] == document
    assert len({i.item_id for i in items}) == len(items)


@given(documents)
def test_a_filter_and_its_negation_split_the_items(document: list[dict[str, Any]]) -> None:
    kept = {i.item_id for i in select(document, filter="k == 'a' OR n > 0")}
    dropped = {i.item_id for i in select(document, filter="!(k == 'a' OR n > 0)")}
    assert kept.isdisjoint(dropped)
    assert kept | dropped == {i.item_id for i in select(document)}


@given(
    st.lists(
        st.one_of(
            st.text(max_size=3),
            st.integers(),
            st.fixed_dictionaries({"id": st.sampled_from(["a", "b", "a-2", "1"])}),
        ),
        max_size=15,
    )
)
def test_assigned_ids_are_always_unique(values: list[Any]) -> None:
    ids = assign_item_ids(values)
    assert len(ids) == len(set(ids)) == len(values)
