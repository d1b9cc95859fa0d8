"""Malformed workflow files: each problem is reported at its line:column with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from treefork.errors import WorkflowError
from treefork.workflow import load_workflow, validate_workflow

MALFORMED = Path(__file__).parent / "malformed"

# file -> every problem expected in it: (line:column, fragment of the message).
EXPECTED: dict[str, list[tuple[str, str]]] = {
    "yaml_unclosed_flow.yml": [("6:17", "flow sequence started at line 5, column 14")],
    "yaml_bad_indentation.yml": [("5:13", "YAML syntax error: mapping values are not allowed")],
    "yaml_duplicate_key.yml": [("7:1", "duplicate key 'map'")],
    "yaml_tab_indent.yml": [("4:1", "found character '\\t'")],
    "top_level_list.yml": [("1:1", "this one is a list")],
    "empty_file.yml": [("1:1", "this one is empty")],
    "unknown_top_level_key.yml": [("7:1", "unknown key 'reduse'; did you mean 'reduce'?")],
    "unknown_map_key.yml": [
        ("3:1", "map: missing required key 'agent_template'"),
        ("5:3", "unknown key 'agent_templte'; did you mean 'agent_template'?"),
    ],
    "unknown_step_key.yml": [
        (
            "7:7",
            "map.agent_template[0].comit_required: unknown key 'comit_required'; "
            "did you mean 'commit_required'?",
        ),
    ],
    "missing_mode.yml": [("1:1", "missing required key 'mode': a Prodigy workflow needs mode")],
    "wrong_mode.yml": [("2:7", "mode: must be 'mapreduce', got 'parallel'")],
    "max_parallel_not_a_number.yml": [("5:17", "must be a whole number of at least 1, got 'lots'")],
    "max_parallel_negative.yml": [("5:17", "map.max_parallel: must be at least 1, got -2")],
    "max_parallel_zero.yml": [("7:17", "must be at least 1, got 0")],
    "max_parallel_env_undefined.yml": [
        (
            "9:17",
            "refers to ${MAX_PARALLEL}, which neither the workflow env nor the process "
            "environment defines; did you mean ${MAX_PARALEL}?",
        ),
    ],
    "max_parallel_env_not_a_number.yml": [("9:17", "(${MAX_PARALLEL} is 'many')")],
    "bad_json_path.yml": [("5:14", "map.json_path: invalid JSONPath '$.items['")],
    "bad_filter_incomplete.yml": [("5:26", "invalid filter: expression ends where a value")],
    "bad_filter_single_equals.yml": [("5:20", "unexpected '=' (use == to compare)")],
    "bad_filter_regex.yml": [("5:25", "invalid regular expression")],
    "bad_sort_by_direction.yml": [("5:22", "unexpected 'SIDEWAYS'; expected ASC, DESC")],
    "bad_sort_by_nulls.yml": [("5:29", "NULLS must be followed by FIRST or LAST")],
    "bad_distinct.yml": [("5:18", "map.distinct: invalid distinct field")],
    "claude_and_shell_in_one_step.yml": [
        ("6:7", "exactly one of shell, claude or write_file; this one has shell and claude"),
    ],
    "step_without_command.yml": [
        ("7:7", "map.agent_template[1]: a step needs one of shell, claude or write_file"),
    ],
    "on_failure_without_step.yml": [
        ("8:9", "map.agent_template[0].on_failure: a step needs one of shell, claude"),
    ],
    "empty_agent_template.yml": [("5:19", "map.agent_template: no steps")],
    "item_in_reduce.yml": [
        ("8:32", "reduce[0].shell: ${item.id} is not available in reduce: only map agents"),
    ],
    "item_in_setup.yml": [("6:12", "setup[0].shell: ${item} is not available in setup")],
    "map_results_in_agent.yml": [
        ("6:38", "${map.successful} is not available in map.agent_template"),
    ],
    "shell_output_before_any_shell.yml": [
        ("4:25", "${shell.output} needs the output of an earlier shell step"),
    ],
    "shell_expansion_of_item.yml": [("6:20", "shell expansions of ${item} are not supported")],
    "unknown_variable.yml": [("9:20", "unknown variable ${anlysis}; did you mean ${analysis}?")],
    "capture_used_before_it_exists.yml": [
        ("6:19", "${count}: it is captured only later, by map.agent_template[1]"),
    ],
    "input_uses_capture.yml": [("7:11", "${items_file} cannot be used here: map.input only")],
    "env_cycle.yml": [("5:6", "env entries refer to each other: A -> B -> A")],
    "bad_capture_format.yml": [
        (
            "8:23",
            "capture_format: must be 'string', 'number', 'json', 'lines' or 'boolean', got 'xml'",
        ),
    ],
    "capture_twice.yml": [("8:7", "use capture or capture_output, not both")],
    "capture_reserved_name.yml": [("7:16", "'item' is reserved")],
    "capture_outputs_out_of_range.yml": [("7:12", "command 3 does not exist: setup has 1")],
    "timeout_not_a_number.yml": [("7:16", "timeout: must be a valid number")],
    "negative_max_items.yml": [
        ("5:14", "map.max_items: must be greater than or equal to 0, got -1"),
        ("6:11", "map.offset: must be a valid integer"),
    ],
    "setup_is_a_string.yml": [
        ("3:8", "setup: expected a list of steps (or a mapping with commands), got 'echo hello'"),
    ],
    "retry_wrong_type.yml": [("7:14", "retry: expected a mapping, got 'always'")],
    "bad_write_file_mode.yml": [("9:15", "mode must be octal permissions such as '0644'")],
    "on_item_failure_unknown.yml": [
        ("8:20", "on_item_failure: must be 'dlq', 'retry', 'skip' or 'stop', got 'explode'"),
        ("9:22", "failure_threshold: must be less than or equal to 1, got 1.5"),
    ],
    "policy_shortcut_conflict.yml": [("3:1", "conflicts with error_policy.max_failures (5)")],
    "agent_timeout_conflict.yml": [("7:25", "conflicts with map.agent_timeout_secs (60)")],
    "treefork_bad_domain_name.yml": [("4:3", "'auth service' cannot be a domain name")],
    "treefork_no_domains.yml": [("2:10", "no domains: define at least one")],
    "treefork_setup_at_top_level.yml": [
        ("2:1", "unknown key 'setup': in treefork's format setup belongs inside a domain"),
    ],
    "treefork_bad_glob.yml": [
        ("4:13", "domains.docs.paths[0]: glob '/etc/**' is absolute"),
        ("4:24", "domains.docs.paths[1]: glob 'docs/[a-z' has unbalanced"),
    ],
    "treefork_domain_without_map.yml": [
        ("3:11", "budget.tokens: must be greater than or equal to 1"),
        ("5:3", "domains.docs: missing required key 'map'"),
    ],
    "several_problems.yml": [
        ("7:5", "unknown key 'comit_required'; did you mean 'commit_required'?"),
        ("10:14", "invalid JSONPath '$.items[*'"),
        ("11:19", "invalid filter: expected a value or field, found '>'"),
        ("12:19", "unexpected 'UPWARDS'"),
        ("13:17", "refers to ${PARALLELISM}"),
        ("15:7", "this one has shell and claude"),
        ("17:19", "unknown variable ${summary}"),
        ("18:23", "got 'yaml'"),
        ("20:18", "${item.id} is not available in reduce"),
    ],
}


def test_every_malformed_file_has_expectations() -> None:
    on_disk = {path.name for path in MALFORMED.glob("*.yml")}
    assert on_disk == set(EXPECTED)
    assert len(on_disk) >= 30


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_malformed_file_reports_each_problem_at_its_line_and_column(name: str) -> None:
    path = MALFORMED / name
    with pytest.raises(WorkflowError) as raised:
        load_workflow(path, env={})
    problems = raised.value.problems
    expected = EXPECTED[name]
    assert len(problems) == len(expected), "\n".join(map(str, problems))
    for (location, fragment), problem in zip(expected, problems, strict=True):
        assert problem.where == f"{path}:{location}", str(problem)
        assert fragment in problem.message, str(problem)
    assert raised.value.path == str(path)


def test_a_file_with_several_problems_reports_all_of_them_at_once() -> None:
    path = MALFORMED / "several_problems.yml"
    problems = validate_workflow(path, env={})
    assert len(problems) == 9
    lines = [int(problem.where.split(":")[-2]) for problem in problems]
    assert lines == sorted(lines)
    message = str(WorkflowError(path, problems))
    assert message.startswith(f"invalid workflow {path} (9 problems):")


def test_the_process_environment_can_supply_max_parallel() -> None:
    path = MALFORMED / "several_problems.yml"
    problems = validate_workflow(path, env={"PARALLELISM": "4"})
    assert not any("PARALLELISM" in problem.message for problem in problems)
    assert len(problems) == 8


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_validate_workflow_returns_the_problems_instead_of_raising(name: str) -> None:
    assert len(validate_workflow(MALFORMED / name, env={})) == len(EXPECTED[name])
