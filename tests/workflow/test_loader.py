"""Loading from files: every failure is a WorkflowError, never a traceback."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from treefork.errors import WorkflowError
from treefork.workflow import Workflow, load_workflow, parse_workflow, validate_workflow

VALID = """\
name: ok
mode: mapreduce
map:
  input: items.json
  max_parallel: ${PARALLEL}
  agent_template:
    - shell: echo ${item}
"""


def test_missing_file_is_a_workflow_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nope.yml"
    with pytest.raises(WorkflowError) as raised:
        load_workflow(path, env={})
    (problem,) = raised.value.problems
    assert (problem.where, problem.message) == (str(path), "no such file")


def test_directory_is_a_workflow_error(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError, match="is a directory"):
        load_workflow(tmp_path, env={})


def test_non_utf8_file_is_a_workflow_error(tmp_path: Path) -> None:
    path = tmp_path / "latin.yml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(WorkflowError, match="not UTF-8"):
        load_workflow(path, env={})


def test_process_environment_is_the_default_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ok.yml"
    path.write_text(VALID, encoding="utf-8")
    monkeypatch.setenv("PARALLEL", "7")
    workflow = load_workflow(str(path))
    assert isinstance(workflow, Workflow) and workflow.path == path
    domain_map = workflow.domains[0].map
    assert domain_map is not None and domain_map.max_parallel == 7


def test_validate_workflow_of_a_valid_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "ok.yml"
    path.write_text(VALID, encoding="utf-8")
    assert validate_workflow(path, env={"PARALLEL": "2"}) == []


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet="abn: -[]{}\"'|>\n\t#&*!%$", max_size=80))
def test_arbitrary_text_never_raises_anything_but_workflow_error(text: str) -> None:
    try:
        parse_workflow(text, path="fuzz.yml", env={})
    except WorkflowError as error:
        assert error.problems
        assert all(problem.where.startswith("fuzz.yml:") for problem in error.problems)


KEYS = [
    "name",
    "mode",
    "map",
    "input",
    "agent_template",
    "setup",
    "reduce",
    "merge",
    "shell",
    "claude",
    "write_file",
    "path",
    "content",
    "capture",
    "capture_output",
    "on_failure",
    "retry",
    "env",
    "max_parallel",
    "filter",
    "sort_by",
    "json_path",
    "commands",
    "domains",
    "timeout",
    "error_policy",
    "capture_outputs",
    "max_attempts",
    "budget",
    "keywords",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 5),
    st.sampled_from(["mapreduce", "echo ${item}", "${X}", "$[*]", "a >= 1", "x DESC", "", "0644"]),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS), children, max_size=4)
    ),
    max_leaves=25,
)


def dump(document: Any) -> str:
    stream = io.StringIO()
    YAML().dump(document, stream)
    return stream.getvalue()


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENTS)
def test_arbitrary_documents_never_raise_anything_but_workflow_error(document: Any) -> None:
    try:
        workflow = parse_workflow(dump(document), path="fuzz.yml", env={})
    except WorkflowError as error:
        assert error.problems
    else:
        assert workflow.domains


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(KEYS), SCALARS, max_size=6),
    st.dictionaries(st.sampled_from(KEYS), SCALARS | st.lists(SCALARS, max_size=2), max_size=6),
)
def test_arbitrary_steps_in_a_valid_frame_never_crash(
    step: dict[str, Any], map_extra: dict[str, Any]
) -> None:
    document = {
        "name": "fuzz",
        "mode": "mapreduce",
        "map": {"input": "items.json", **map_extra, "agent_template": [step]},
    }
    try:
        parse_workflow(dump(document), path="fuzz.yml", env={})
    except WorkflowError as error:
        assert error.problems


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(KEYS),
        SCALARS | st.lists(SCALARS, max_size=2) | st.dictionaries(st.sampled_from(KEYS), SCALARS),
        max_size=6,
    )
)
def test_arbitrary_domain_entries_never_crash(entries: dict[str, Any]) -> None:
    document = {
        "domains": {
            "d": {"map": {"input": "i.json", "agent_template": [{"shell": "ls"}]}, **entries}
        }
    }
    try:
        parse_workflow(dump(document), path="fuzz.yml", env={})
    except WorkflowError as error:
        assert error.problems


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, 4), ({"MAX_WORKERS": "3"}, 3), ({"MAX_WORKERS": ""}, 4)],
)
def test_a_count_may_name_a_variable_with_a_default(env: dict[str, str], expected: int) -> None:
    text = VALID.replace("${PARALLEL}", "${MAX_WORKERS:-4}")
    workflow = parse_workflow(text, path="defaults.yml", env=env)
    domain_map = workflow.domains[0].map
    assert domain_map is not None and domain_map.max_parallel == expected


def test_a_bad_default_is_named_in_the_problem() -> None:
    text = VALID.replace("${PARALLEL}", "${MAX_WORKERS:-many}")
    with pytest.raises(WorkflowError, match=r"\$\{MAX_WORKERS\} is unset: its default 'many'"):
        parse_workflow(text, path="defaults.yml", env={})


def test_a_prodigy_workflow_without_a_name_is_named_after_its_file(tmp_path: Path) -> None:
    path = tmp_path / "nightly-review.yml"
    path.write_text(VALID.replace("name: ok\n", ""), encoding="utf-8")
    workflow = load_workflow(path, env={"PARALLEL": "2"})
    assert workflow.name == "nightly-review"
    assert [domain.name for domain in workflow.domains] == ["nightly-review"]
