"""``${NAME}`` in numeric and boolean settings: resolved before their types are checked."""

from __future__ import annotations

import pytest

from treefork.errors import WorkflowError
from treefork.workflow import parse_workflow

TEXT = """\
name: typed
mode: mapreduce
env:
  AGENT_TIMEOUT: "45"
map:
  input: items.json
  agent_timeout_secs: '@TIMEOUT@'
  agent_template:
    - shell: "make"
      commit_required: '@COMMIT@'
error_policy:
  continue_on_failure: '@CONTINUE@'
  max_failures: '@FAILURES@'
"""


def _load(env: dict[str, str], **values: str):  # type: ignore[no-untyped-def]
    text = TEXT
    for name, value in values.items():
        text = text.replace(f"'@{name}@'", repr(value))
    return parse_workflow(text, path="typed.yml", env=env)


def test_numbers_and_booleans_come_from_the_env_and_defaults() -> None:
    workflow = _load(
        {"STRICT": "true", "MAX_FAILS": "3"},
        TIMEOUT="${AGENT_TIMEOUT}",
        COMMIT="${STRICT}",
        CONTINUE="${CONTINUE_ON_FAILURE:-false}",
        FAILURES="$MAX_FAILS",
    )
    domain = workflow.domains[0]
    assert domain.map is not None
    assert domain.map.agent_timeout == 45
    assert domain.map.agent[0].commit_required is True
    assert domain.error_policy.max_failures == 3


def test_an_unset_variable_without_default_is_named() -> None:
    with pytest.raises(WorkflowError) as raised:
        _load({}, TIMEOUT="${AGENT_TIMEOUT_MISSING}", COMMIT="false", CONTINUE="true", FAILURES="2")
    message = str(raised.value)
    assert (
        "typed.yml:7:23: map.agent_timeout_secs: refers to ${AGENT_TIMEOUT_MISSING}, which "
        "neither the workflow env nor the process environment defines "
        "(give it a default: ${AGENT_TIMEOUT_MISSING:-VALUE})"
    ) in message
    assert "valid number" not in message  # one problem, not two


def test_a_bad_value_names_the_variable_it_came_from() -> None:
    with pytest.raises(WorkflowError) as raised:
        _load({"SLOW": "forever"}, TIMEOUT="${SLOW}", COMMIT="false", CONTINUE="true", FAILURES="2")
    assert "(from ${SLOW} = 'forever')" in str(raised.value)


def test_a_command_that_is_only_a_reference_is_left_alone() -> None:
    text = TEXT.replace("make", "${CMD}").replace("'@TIMEOUT@'", "30")
    text = text.replace("'@COMMIT@'", "false").replace("'@CONTINUE@'", "true")
    text = text.replace("'@FAILURES@'", "2")
    workflow = parse_workflow(text, path="typed.yml", env={"CMD": "rm -rf /"})
    assert workflow.domains[0].map is not None
    assert workflow.domains[0].map.agent[0].command == "${CMD}"  # type: ignore[attr-defined]
