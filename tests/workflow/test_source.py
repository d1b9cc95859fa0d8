from __future__ import annotations

import pytest

from treefork.errors import WorkflowError
from treefork.workflow.source import Position, dotted, parse_yaml

TEXT = """\
name: demo
map:
  input: items.json
  filter: "score > 5"
  agent_template:
    - shell: |
        echo one
        echo ${item.id}
      capture: out
"""


def test_data_is_plain_python() -> None:
    document = parse_yaml(TEXT, name="flow.yml")
    assert document.data == {
        "name": "demo",
        "map": {
            "input": "items.json",
            "filter": "score > 5",
            "agent_template": [{"shell": "echo one\necho ${item.id}\n", "capture": "out"}],
        },
    }
    assert type(document.data["map"]["agent_template"][0]["shell"]) is str
    assert document.repairs == ()


def test_keys_and_values_have_one_based_positions() -> None:
    source = parse_yaml(TEXT, name="flow.yml").source
    assert source.position(("map", "input"), key=True) == Position(3, 3)
    assert source.position(("map", "input")) == Position(3, 10)
    assert source.position(("map", "agent_template", 0)) == Position(6, 7)
    assert source.where(("map", "agent_template", 0, "capture"), key=True) == "flow.yml:9:7"


def test_missing_paths_fall_back_to_the_closest_parent() -> None:
    source = parse_yaml(TEXT, name="flow.yml").source
    assert source.position(("map", "nothing", 3)) == source.position(("map",))


def test_fragments_inside_block_scalars_are_located() -> None:
    source = parse_yaml(TEXT, name="flow.yml").source
    path = ("map", "agent_template", 0, "shell")
    assert source.position_in_value(path, "${item.id}", 0) == Position(8, 14)


def test_offsets_inside_quoted_one_line_strings_are_located() -> None:
    source = parse_yaml(TEXT, name="flow.yml").source
    assert source.position_at_offset(("map", "filter"), 6) == Position(4, 18)


def test_problem_message_names_the_dotted_location() -> None:
    source = parse_yaml(TEXT, name="flow.yml").source
    problem = source.problem(("map", "agent_template", 0, "capture"), "bad")
    assert str(problem) == "flow.yml:9:16: map.agent_template[0].capture: bad"


def test_dotted_paths() -> None:
    assert dotted(("a", 0, "b", 2)) == "a[0].b[2]"
    assert dotted(()) == "(top level)"


def test_plain_value_with_colon_space_is_read_as_a_string_with_a_warning() -> None:
    document = parse_yaml("steps:\n  - shell: echo a: b # note\n", name="f.yml")
    assert document.data == {"steps": [{"shell": "echo a: b"}]}
    (warning,) = document.repairs
    assert warning.startswith("f.yml:2:12: read leniently: a plain value contains ': '")


def test_quotes_in_repaired_values_are_kept() -> None:
    document = parse_yaml("- shell: echo it's: ${x}\n", name="f.yml")
    assert document.data == [{"shell": "echo it's: ${x}"}]
    assert document.source.position_in_value((0, "shell"), "${x}", 0) == Position(1, 21)


def test_shallow_block_scalar_item_is_read_as_if_indented() -> None:
    text = (
        "reduce:\n  - shell: |\n    cat <<EOF\n    hi\n    EOF\n  capture: report\n  - shell: ls\n"
    )
    document = parse_yaml(text, name="f.yml")
    assert document.data == {
        "reduce": [{"shell": "cat <<EOF\nhi\nEOF\n", "capture": "report"}, {"shell": "ls"}]
    }
    assert document.repairs[0].startswith("f.yml:2:5: read leniently: the block scalar of 'shell'")
    # positions are reported as the file is written, not as it was repaired
    assert document.source.position(("reduce", 0, "capture"), key=True) == Position(6, 3)


@pytest.mark.parametrize(
    ("text", "where", "fragment"),
    [
        ("a: [1,\n", "f.yml:2:1", "YAML syntax error"),
        ("a: 1\na: 2\n", "f.yml:2:1", "duplicate key 'a'"),
        ("a: 1\n---\nb: 2\n", "f.yml:2:1", "expected a single document"),
        ('a: "unterminated\n', "f.yml:2:1", "found unexpected end of stream"),
    ],
)
def test_syntax_errors_are_one_problem_at_the_parser_position(
    text: str, where: str, fragment: str
) -> None:
    with pytest.raises(WorkflowError) as raised:
        parse_yaml(text, name="f.yml")
    (problem,) = raised.value.problems
    assert problem.where == where
    assert fragment in problem.message


def test_tags_and_anchors_become_plain_values() -> None:
    document = parse_yaml("a: &x 1\nb: *x\nc: !custom text\n", name="f.yml")
    assert document.data == {"a": 1, "b": 1, "c": "text"}


def test_an_error_after_a_correctly_indented_block_is_not_repaired() -> None:
    text = "steps:\n  - shell: |\n      echo ok\n  - shell: ls\n    oops\n"
    with pytest.raises(WorkflowError) as raised:
        parse_yaml(text, name="f.yml")
    (problem,) = raised.value.problems
    assert problem.where == "f.yml:6:1"
    assert "simple key started at line 5, column 5" in problem.message
