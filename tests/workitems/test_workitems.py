from __future__ import annotations

from pathlib import Path

import pytest

from treefork.errors import WorkItemError
from treefork.workitems import load_items_file, parse_items_text


def test_json_text_is_parsed() -> None:
    assert parse_items_text('[{"id": 1}, {"id": 2}]\n', source="cmd") == [{"id": 1}, {"id": 2}]
    assert parse_items_text('{"items": []}', source="cmd") == {"items": []}


def test_other_text_is_one_item_per_non_empty_line() -> None:
    text = "./src/a.rs\n\n  ./src/b.rs  \r\n"
    assert parse_items_text(text, source="find") == ["./src/a.rs", "./src/b.rs"]


def test_a_lone_json_scalar_is_read_as_a_line() -> None:
    assert parse_items_text("42\n", source="cmd") == ["42"]


def test_empty_output_has_no_items() -> None:
    assert parse_items_text("", source="cmd") == []


def test_json_file_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    path.write_text('{"items": [1, 2]}', encoding="utf-8")
    assert load_items_file(path, source="items.json") == {"items": [1, 2]}


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "files.json"
    with pytest.raises(WorkItemError, match=r"work items from files\.json: .*files\.json: no such"):
        load_items_file(path, source="files.json")


def test_bad_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    path.write_text('[\n  {"id": 1},\n  {"id": }\n]', encoding="utf-8")
    with pytest.raises(WorkItemError) as raised:
        load_items_file(path, source="items.json")
    assert f"{path}:3:10: invalid JSON" in str(raised.value)
    assert raised.value.source == "items.json"


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(WorkItemError, match="is a directory"):
        load_items_file(tmp_path, source="dir")


def test_non_utf8_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    path.write_bytes(b"\xff\xfe[]")
    with pytest.raises(WorkItemError, match="not UTF-8"):
        load_items_file(path, source="items.json")


def test_file_that_is_not_json_by_name_is_read_like_command_output(tmp_path: Path) -> None:
    path = tmp_path / "files.txt"
    path.write_text("a.rs\nb.rs\n", encoding="utf-8")
    assert load_items_file(path, source="files.txt") == ["a.rs", "b.rs"]


def test_json_nested_thousands_deep_is_a_clear_error_not_a_recursion_error(
    tmp_path: Path,
) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(WorkItemError, match="JSON nests too deeply"):
        parse_items_text(deep, source="cmd")
    path = tmp_path / "items.json"
    path.write_text(deep, encoding="utf-8")
    with pytest.raises(WorkItemError, match=f"{path}: JSON nests too deeply"):
        load_items_file(path, source="items.json")
