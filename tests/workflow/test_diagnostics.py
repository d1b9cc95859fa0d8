from __future__ import annotations

import pytest

from treefork.errors import WorkflowError
from treefork.workflow import parse_workflow
from treefork.workflow.diagnostics import allowed_keys
from treefork.workflow.schema import ProdigyWorkflowSpec, TreeforkWorkflowSpec


def test_allowed_keys_follow_the_schema_through_lists_and_blocks() -> None:
    step_keys = allowed_keys(ProdigyWorkflowSpec, ("map", "agent_template", "commands", 0))
    assert {"shell", "claude", "write_file", "capture", "validate", "on_failure"} <= set(step_keys)
    assert "commands" in allowed_keys(ProdigyWorkflowSpec, ("setup",))
    assert "keywords" in allowed_keys(TreeforkWorkflowSpec, ("domains", "auth"))


def test_unknown_keys_inside_on_failure_suggest_step_and_handler_keys() -> None:
    location = ("map", "agent_template", "commands", 0, "on_failure", "steps", 0)
    keys = allowed_keys(ProdigyWorkflowSpec, location)
    assert "max_attempts" in keys and "claude" in keys and "steps" not in keys


def test_a_misspelt_handler_option_gets_a_suggestion() -> None:
    (problem,) = problems(
        "name: d\nmode: mapreduce\nmap:\n  input: i.json\n  agent_template:\n"
        "    - shell: make\n      on_failure:\n        claude: /fix\n        max_attempt: 2\n"
    )
    assert "unknown key 'max_attempt'; did you mean 'max_attempts'?" in problem
    assert problem.startswith("d.yml:9:9: map.agent_template[0].on_failure.max_attempt:")


def problems(text: str) -> list[str]:
    with pytest.raises(WorkflowError) as raised:
        parse_workflow(text, path="d.yml", env={})
    return [str(problem) for problem in raised.value.problems]


def test_union_alternatives_are_one_problem() -> None:
    (problem,) = problems(
        "name: d\nmode: mapreduce\nmap:\n  input: i.json\n  agent_template:\n"
        "    - shell: ls\n      capture_output: [1]\n"
    )
    assert problem == (
        "d.yml:7:23: map.agent_template[0].capture_output: must be a valid boolean or "
        "must be a valid string, got a list"
    )


def test_unknown_key_without_a_close_match_lists_the_allowed_ones() -> None:
    (problem,) = problems(
        "name: d\nmode: mapreduce\nzzz: 1\nmap:\n  input: i.json\n  agent_template: [{shell: ls}]\n"
    )
    assert "d.yml:3:1: zzz: unknown key 'zzz'; allowed: " in problem
    assert "map" in problem


def test_booleans_are_not_numbers() -> None:
    (problem,) = problems(
        "name: d\nmode: mapreduce\nmap:\n  input: i.json\n  max_items: true\n"
        "  agent_template: [{shell: ls}]\n"
    )
    assert problem == "d.yml:5:14: map.max_items: expected a number, not true/false, got True"


def test_a_step_that_is_not_a_mapping() -> None:
    (problem,) = problems(
        "name: d\nmode: mapreduce\nmap:\n  input: i.json\n  agent_template:\n    - echo hi\n"
    )
    assert problem.startswith("d.yml:6:7: map.agent_template[0]: expected a step: a mapping")
