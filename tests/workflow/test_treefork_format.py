"""treefork's own format: task, budget, global max_parallel and several domains."""

from __future__ import annotations

from pathlib import Path

import pytest

from treefork.domain import Budget, ErrorPolicy
from treefork.errors import WorkflowError
from treefork.steps import Claude, Retry, Shell, WriteFile
from treefork.workflow import load_workflow, parse_workflow

EXAMPLES = Path(__file__).parent / "examples"


def test_multi_domain_file_compiles_every_domain_in_order() -> None:
    workflow = load_workflow(EXAMPLES / "multi-domain.yml", env={"TREEFORK_PARALLEL": "6"})
    assert workflow.format == "treefork"
    assert workflow.name == "checkout-overhaul"
    assert workflow.task == "Fix the login redirect and the refund rounding"
    assert workflow.budget == Budget(tokens=2_000_000, cost=25.5, agent_runs=40)
    assert workflow.max_parallel == 6
    assert [domain.name for domain in workflow.domains] == ["auth", "payments"]
    assert workflow.warnings == ()


def test_domain_settings_are_carried_over() -> None:
    workflow = load_workflow(EXAMPLES / "multi-domain.yml", env={"TREEFORK_PARALLEL": "6"})
    auth = workflow.domain("auth")
    assert auth.keywords == ("login", "session", "token")
    assert auth.paths == ("src/auth/**",)
    assert auth.critical is True
    assert auth.description == "Sign-in, sessions and tokens"
    assert auth.tests == "pytest tests/auth -q"
    assert auth.on_worktree_create == "./scripts/bootstrap.sh"
    assert auth.worktree_include == (".env",)
    assert auth.map is not None and auth.map.max_parallel == 2
    assert auth.map.filter == "item matches '\\.py$'"
    assert len(auth.setup) == 2 and auth.setup[1].capture_format == "number"


def test_domain_env_includes_the_workflow_env_with_references_resolved() -> None:
    workflow = load_workflow(EXAMPLES / "multi-domain.yml", env={"TREEFORK_PARALLEL": "6"})
    assert workflow.env == {"REPORT_DIR": "reports", "SUMMARY": "reports/summary.md"}
    assert workflow.domain("auth").env == {**workflow.env, "AREA": "auth"}
    assert workflow.domain("payments").env == workflow.env


def test_error_policy_layers_workflow_defaults_under_domain_settings() -> None:
    workflow = load_workflow(EXAMPLES / "multi-domain.yml", env={"TREEFORK_PARALLEL": "6"})
    assert workflow.domain("auth").error_policy == ErrorPolicy(
        on_item_failure="retry", max_retries=2
    )
    assert workflow.domain("payments").error_policy == ErrorPolicy(
        on_item_failure="skip", max_failures=4, max_retries=2
    )


def test_map_selection_and_step_options_of_the_block_form() -> None:
    workflow = load_workflow(EXAMPLES / "multi-domain.yml", env={"TREEFORK_PARALLEL": "6"})
    payments = workflow.domain("payments").map
    assert payments is not None
    assert payments.input == "python scripts/list_payment_modules.py"
    assert (payments.sort_by, payments.max_items, payments.offset, payments.distinct) == (
        "priority DESC NULLS LAST, name",
        5,
        1,
        "module",
    )
    assert payments.isolation == "none"
    assert payments.max_parallel == 4  # the Map default
    (audit,) = payments.agent
    assert isinstance(audit, Claude)
    assert audit.timeout == 300
    assert audit.retry == Retry(attempts=2)


def test_handlers_and_merge_steps() -> None:
    workflow = load_workflow(EXAMPLES / "multi-domain.yml", env={"TREEFORK_PARALLEL": "6"})
    auth_map = workflow.domain("auth").map
    assert auth_map is not None
    write_report = auth_map.agent[1]
    assert isinstance(write_report, Shell) and write_report.commit_required
    assert [type(step) for step in write_report.on_failure] == [Shell]
    (merge,) = workflow.merge
    assert isinstance(merge, Shell) and merge.command == "echo merging into ${SUMMARY}"
    assert workflow.origin("auth.map.agent[1].on_failure[0]") is not None
    assert workflow.origin("merge[0]") == f"{EXAMPLES / 'multi-domain.yml'}:70:5"


def test_global_max_parallel_needs_its_env_variable() -> None:
    with pytest.raises(WorkflowError) as raised:
        load_workflow(EXAMPLES / "multi-domain.yml", env={})
    (problem,) = raised.value.problems
    assert problem.where.endswith("multi-domain.yml:4:15")
    assert "max_parallel: refers to ${TREEFORK_PARALLEL}" in problem.message


def test_minimal_domain_file_is_named_after_the_file() -> None:
    workflow = load_workflow(EXAMPLES / "minimal-domain.yml", env={})
    assert workflow.name == "minimal-domain"
    assert workflow.task is None and workflow.budget is None and workflow.max_parallel is None
    docs_map = workflow.domain("docs").map
    assert docs_map is not None
    (write,) = docs_map.agent
    assert isinstance(write, WriteFile)
    assert (write.path, write.content, write.mode) == (
        "notes/${item_id}.md",
        "# ${item.title}\n",
        0o600,
    )


def test_a_file_with_domains_is_treefork_format_even_with_mode() -> None:
    text = """
mode: mapreduce
domains:
  api:
    map:
      input: items.json
      agent_template:
        - shell: echo ${item}
"""
    workflow = parse_workflow(text, path="flow.yml")
    assert workflow.format == "treefork"
    assert workflow.name == "flow"


def test_domain_lookup_by_unknown_name_raises_key_error() -> None:
    workflow = load_workflow(EXAMPLES / "minimal-domain.yml", env={})
    with pytest.raises(KeyError):
        workflow.domain("nope")
