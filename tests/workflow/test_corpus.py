"""Every workflow in Prodigy's own collection loads, compiles, and means what it says."""

from __future__ import annotations

from pathlib import Path

import pytest

from treefork.domain import Map
from treefork.steps import Claude, Shell, WriteFile
from treefork.workflow import Workflow, load_workflow

CORPUS = Path(__file__).parent / "prodigy_corpus"
FILES = sorted(CORPUS.rglob("*.yml"))


def load(relative: str) -> Workflow:
    return load_workflow(CORPUS / relative, env={})


def agent_map(workflow: Workflow) -> Map:
    domain_map = workflow.domains[0].map
    assert domain_map is not None
    return domain_map


def test_the_corpus_is_all_there() -> None:
    assert len(FILES) == 17


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CORPUS)) for p in FILES])
def test_every_corpus_file_loads_as_one_prodigy_domain(path: Path) -> None:
    workflow = load_workflow(path, env={})
    assert workflow.format == "prodigy"
    assert len(workflow.domains) == 1
    domain = workflow.domains[0]
    assert domain.keywords == () and domain.paths == ()
    assert domain.map is not None and domain.map.agent
    assert all(warning.startswith(f"{path}:") for warning in workflow.warnings)


def test_minimal_mapreduce_key_facts() -> None:
    workflow = load("workflows/tests/minimal-mapreduce.yml")
    domain = workflow.domains[0]
    assert workflow.name == domain.name == "minimal-mapreduce-test"
    assert len(domain.setup) == 1 and isinstance(domain.setup[0], Shell)
    agent = agent_map(workflow)
    assert [step.commit_required for step in agent.agent] == [False, False, True]
    assert agent.json_path == "$[*]"
    assert agent.max_parallel == 3
    assert agent.input == "test-items.json"
    assert len(domain.reduce) == 2
    assert workflow.warnings == ()


def test_minimal_mapreduce_steps_know_where_they_came_from() -> None:
    workflow = load("workflows/tests/minimal-mapreduce.yml")
    path = CORPUS / "workflows/tests/minimal-mapreduce.yml"
    assert workflow.origin("minimal-mapreduce-test.setup[0]") == f"{path}:26:5"
    assert workflow.origin("minimal-mapreduce-test.map.agent[2]") == f"{path}:49:7"
    assert workflow.origin("minimal-mapreduce-test.reduce[1]") == f"{path}:71:5"


def test_command_input_keeps_the_command_and_reads_timeout_config() -> None:
    workflow = load("examples/mapreduce-command-input.yml")
    agent = agent_map(workflow)
    assert agent.input == "find . -name '*.rs' -type f | head -20"
    assert agent.max_parallel == 5
    assert agent.agent_timeout == 30


def test_json_input_with_colons_in_plain_values_is_read_leniently() -> None:
    workflow = load("examples/mapreduce-json-input.yml")
    agent = agent_map(workflow)
    first = agent.agent[0]
    assert isinstance(first, Shell)
    assert first.command == 'echo "Processing item ${item.id}: ${item.task} for ${item.file}"'
    assert agent.json_path == "$.items[*]" and agent.agent_timeout == 60
    assert len(workflow.warnings) == 2
    assert "30:14: read leniently" in workflow.warnings[0]


def test_capture_parallel_analysis_reduce_with_shallow_block_scalars_loads() -> None:
    workflow = load("examples/capture-parallel-analysis.yml")
    domain = workflow.domains[0]
    report = domain.reduce[4]
    assert isinstance(report, Shell)
    assert report.command.startswith("cat << EOF\nCode Analysis Report\n")
    assert "- Duration: ${map.duration|default:unknown}\nEOF\n" in report.command
    assert report.capture == "final_report"
    summary = domain.reduce[6]
    assert summary.capture == "json_summary" and summary.capture_format == "json"
    assert [step.capture for step in domain.setup] == [
        "total_files",
        "commit_hash",
        "analysis_timestamp",
        "metadata",
    ]
    assert domain.setup[0].capture_format == "number"
    assert sum("read leniently" in warning for warning in workflow.warnings) == 3


def test_custom_capture_variables_compile_to_capture_names() -> None:
    workflow = load("examples/capture-output-custom-vars.yml")
    domain = workflow.domains[0]
    assert domain.setup[0].capture is None  # capture: shell.output is there anyway
    assert domain.setup[1].capture == "file_count"
    assert [step.capture for step in agent_map(workflow).agent] == [
        "analysis_result",
        "todo_count",
        None,
    ]
    assert isinstance(agent_map(workflow).agent[0], Claude)


def test_env_references_are_resolved_in_input_and_max_parallel() -> None:
    workflow = load("workflows/book-docs-drift.yml")
    agent = agent_map(workflow)
    assert agent.input == ".prodigy/book-analysis/flattened-items.json"
    assert agent.max_parallel == 3
    assert workflow.env["PROJECT_NAME"] == "Prodigy"
    assert workflow.domains[0].env == workflow.env


def test_prodigy_error_policy_compiles_to_error_policy() -> None:
    policy = load("workflows/mkdocs-drift.yml").domains[0].error_policy
    assert policy.on_item_failure == "dlq"
    assert policy.continue_on_failure is True
    assert policy.max_failures == 2


def test_on_failure_mapping_becomes_a_handler_step() -> None:
    reduce_steps = load("workflows/mkdocs-drift.yml").domains[0].reduce
    build = reduce_steps[0]
    assert isinstance(build, Shell) and build.command == "mkdocs build --strict"
    (handler,) = build.on_failure
    assert isinstance(handler, Claude) and handler.commit_required
    assert handler.prompt.startswith("/prodigy-fix-mkdocs-build-errors")


def test_debtmap_selection_settings_and_setup_timeout() -> None:
    workflow = load("workflows/debtmap-reduce.yml")
    domain = workflow.domains[0]
    agent = agent_map(workflow)
    assert agent.filter == "File.score >= 10 OR Function.unified_score.final_score >= 10"
    assert agent.sort_by == (
        "File.score DESC NULLS LAST, Function.unified_score.final_score DESC NULLS LAST"
    )
    assert agent.max_items == 10 and agent.max_parallel == 5
    assert [step.timeout for step in domain.setup] == [900, 900]
    write = domain.reduce[4]
    assert isinstance(write, WriteFile)
    assert write.path == ".prodigy/map-results.json" and write.content == "${map.results}"


def test_debtmap_unsupported_features_are_warned_about_not_dropped() -> None:
    warnings = "\n".join(load("workflows/debtmap-reduce.yml").warnings)
    assert "setup.timeout: a phase timeout is applied to each" in warnings
    assert "map.agent_template[0].validate: Prodigy's validation loop" in warnings
    assert "reduce[0].on_failure.max_attempts: on_failure.max_attempts is not supported" in warnings
    assert "reduce[4].write_file.format" in warnings


def test_filter_and_sort_from_fix_files_are_kept_verbatim() -> None:
    agent = agent_map(load("workflows/fix-files-mapreduce.yml"))
    assert agent.filter == "path matches '\\.rs$' && has_issues == true"
    assert agent.sort_by == "complexity DESC"
    assert agent.max_parallel == 4


def test_env_example_merge_phase_secret_and_profiles() -> None:
    workflow = load("workflows/mapreduce-env-example.yml")
    assert len(workflow.merge) == 4
    assert isinstance(workflow.merge[2], Claude)
    assert workflow.env["API_TOKEN"] == "${GITHUB_TOKEN}"
    assert workflow.secrets == {"API_TOKEN": "${GITHUB_TOKEN}"}  # masked when it runs
    assert workflow.profile is None and workflow.env["DEBUG_MODE"] == "false"
    assert not any("secret" in warning or "profiles" in warning for warning in workflow.warnings)
    development = load_workflow(CORPUS / "workflows/mapreduce-env-example.yml", env={},
                                profile="development")  # fmt: skip
    assert development.profile == "development"
    assert development.env["OUTPUT_DIR"] == "dev-output"
    assert development.domains[0].env["TIMEOUT_SECONDS"] == "60"
    handler = agent_map(workflow).agent[3].on_failure
    assert len(handler) == 1 and isinstance(handler[0], Claude)


def test_process_environment_fills_env_references() -> None:
    path = CORPUS / "workflows/mapreduce-env-example.yml"
    workflow = load_workflow(path, env={"GITHUB_TOKEN": "t0ken"})
    assert workflow.env["API_TOKEN"] == "t0ken"
    assert not any("GITHUB_TOKEN" in warning for warning in workflow.warnings)


def test_workflow_syntax_drift_merge_steps_and_agent_timeout() -> None:
    workflow = load("workflows/workflow-syntax-drift.yml")
    assert agent_map(workflow).agent_timeout == 300
    assert [type(step).__name__ for step in workflow.merge] == [
        "Shell",
        "Shell",
        "Shell",
        "Claude",
        "Claude",
    ]


def test_commit_validation_requires_commits() -> None:
    agent = agent_map(load("tests/workflows/test-commit-validation.yml"))
    assert [step.commit_required for step in agent.agent] == [True]
    assert agent.json_path == "$.items[*]"


@pytest.mark.parametrize(
    ("relative", "json_path", "max_parallel"),
    [
        ("workflows/test-mapreduce.yml", "$[*]", 2),
        ("workflows/test-mapreduce-context.yml", "$[*]", 2),
        ("workflows/tests/test-mapreduce-resume.yml", "$[*]", 2),
        ("workflows/documentation-drift-mapreduce.yml", "$.areas[*]", 4),
        ("workflows/mapreduce-example.yml", "$.debt_items[*]", 10),
    ],
)
def test_selection_settings_of_the_simple_workflows(
    relative: str, json_path: str, max_parallel: int
) -> None:
    agent = agent_map(load(relative))
    assert agent.json_path == json_path
    assert agent.max_parallel == max_parallel
