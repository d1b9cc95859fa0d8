"""How Prodigy's step and phase fields become treefork objects."""

from __future__ import annotations

from typing import Any

import pytest

from treefork.domain import ErrorPolicy, Map
from treefork.errors import WorkflowError
from treefork.steps import Claude, Retry, Shell, Step, WriteFile
from treefork.workflow import Workflow, parse_workflow

HEAD = "name: demo\nmode: mapreduce\n"


def load(body: str, env: dict[str, str] | None = None) -> Workflow:
    return parse_workflow(HEAD + body, path="demo.yml", env=env or {})


def agent_steps(*steps: str) -> tuple[Step, ...]:
    return the_map(load(agent_body(*steps))).agent


def agent_body(*steps: str) -> str:
    lines = "\n".join(f"    - {step}" for step in steps)
    return f"map:\n  input: items.json\n  agent_template:\n{lines}\n"


def the_map(workflow: Workflow) -> Map:
    domain_map = workflow.domains[0].map
    assert domain_map is not None
    return domain_map


@pytest.mark.parametrize(
    ("retry", "expected"),
    [
        ("3", Retry(attempts=3)),
        (
            "{attempts: 4, backoff: 2, max_delay: 10}",
            Retry(attempts=4, backoff=2.0, max_delay=10.0),
        ),
        ("{attempts: 2, backoff: exponential}", Retry(attempts=2, backoff=1.0)),
    ],
)
def test_retry_forms(retry: str, expected: Retry) -> None:
    (step,) = agent_steps(f"shell: make\n      retry: {retry}")
    assert step.retry == expected


@pytest.mark.parametrize(
    "on_failure",
    [
        "\n        claude: /fix ${shell.output}\n        commit_required: true",
        "\n        - claude: /fix ${shell.output}\n          commit_required: true",
        "\n        commands:\n          - claude: /fix ${shell.output}\n"
        "            commit_required: true",
        "\n        claude: /fix ${shell.output}\n        commit_required: true\n"
        "        max_attempts: 2\n        fail_workflow: true",
    ],
)
def test_on_failure_forms_give_the_same_handler(on_failure: str) -> None:
    (step,) = agent_steps(f"shell: cargo test\n      on_failure:{on_failure}")
    (handler,) = step.on_failure
    assert isinstance(handler, Claude)
    assert handler.prompt == "/fix ${shell.output}" and handler.commit_required


def test_on_failure_options_that_cannot_be_honoured_are_warned_about() -> None:
    workflow = load(
        agent_body(
            "shell: cargo test\n      on_failure:\n        claude: /fix\n"
            "        max_attempts: 3\n        fail_workflow: false"
        )
    )
    assert [warning.split(": ", 2)[1] for warning in workflow.warnings] == [
        "map.agent_template[0].on_failure.max_attempts",
    ]
    (step,) = the_map(workflow).agent
    assert step.continue_on_failure  # fail_workflow: false lets the next steps run


def test_on_failure_max_attempts_alone_retries_the_step() -> None:
    workflow = load(agent_body("shell: cargo test\n      on_failure:\n        max_attempts: 3"))
    (step,) = the_map(workflow).agent
    assert step.retry == Retry(attempts=3) and step.on_failure == ()
    assert not workflow.warnings


@pytest.mark.parametrize(("fail_workflow", "continues"), [("true", False), ("false", True)])
def test_on_failure_with_options_alone(fail_workflow: str, continues: bool) -> None:
    (step,) = agent_steps(f"shell: cargo test\n      on_failure:\n        fail_workflow: {fail_workflow}")
    assert step.on_failure == ()
    assert step.continue_on_failure is continues


def test_capture_output_forms() -> None:
    workflow = load(
        agent_body(
            "shell: ls\n      capture_output: true",
            "claude: /x\n      capture_output: true",
            "shell: ls\n      capture_output: listing",
            "shell: ls\n      capture: shell.output",
            "shell: ls\n      capture_output: false",
        )
    )
    assert [step.capture for step in the_map(workflow).agent] == [None, None, "listing", None, None]
    (warning,) = workflow.warnings
    assert "map.agent_template[1].capture_output: ${claude.output} is not provided" in warning


@pytest.mark.parametrize(
    ("streams", "expected"),
    [
        ("both", "both"),
        ("stderr", "stderr"),
        ("{stdout: true, stderr: true}", "both"),
        ("{stdout: false, stderr: true}", "stderr"),
        ("{stdout: true}", "stdout"),
    ],
)
def test_capture_streams(streams: str, expected: str) -> None:
    (step,) = agent_steps(f"shell: ls\n      capture: out\n      capture_streams: {streams}")
    assert step.capture_streams == expected


def test_capture_streams_extras_are_warned_about() -> None:
    workflow = load(agent_body("shell: ls\n      capture_streams: {stdout: true, exit_code: true}"))
    assert "exit_code/success/duration are not captured" in workflow.warnings[0]


@pytest.mark.parametrize(
    ("mode", "expected"), [('"0644"', 0o644), ("755", 0o755), ('"0o600"', 0o600)]
)
def test_write_file_modes_are_octal(mode: str, expected: int) -> None:
    (step,) = agent_steps(f"write_file: {{path: a.txt, content: x, mode: {mode}}}")
    assert isinstance(step, WriteFile) and step.mode == expected


def test_write_file_without_mode_uses_the_default() -> None:
    (step,) = agent_steps("write_file: {path: a.txt, content: x}")
    assert isinstance(step, WriteFile) and step.mode == 0o644


def test_step_options_are_carried_over() -> None:
    (step,) = agent_steps(
        "shell: make\n      name: build\n      timeout: 90\n      commit_required: true\n"
        "      env: {DEBUG: true, LEVEL: 3}\n      when: ${item.enabled}\n      working_dir: src\n"
        "      capture: log\n      capture_format: lines"
    )
    assert isinstance(step, Shell)
    assert (step.name, step.timeout, step.commit_required) == ("build", 90, True)
    assert step.env == {"DEBUG": "true", "LEVEL": "3"}
    assert (step.when, step.working_dir) == ("${item.enabled}", "src")
    assert (step.capture, step.capture_format) == ("log", "lines")


def test_setup_capture_outputs_name_the_captured_step() -> None:
    workflow = load(
        "setup:\n  commands:\n    - shell: date\n    - shell: cat meta.json\n"
        "  capture_outputs:\n    STARTED: 0\n    META: {command_index: 1, format: json}\n"
        + agent_body("shell: echo ${STARTED} ${META.version}")
    )
    setup = workflow.domains[0].setup
    assert [(step.capture, step.capture_format) for step in setup] == [
        ("STARTED", "string"),
        ("META", "json"),
    ]


def test_capture_outputs_may_not_target_a_step_twice() -> None:
    with pytest.raises(WorkflowError, match="setup command 0 already captures into A"):
        load(
            "setup:\n  commands:\n    - shell: date\n  capture_outputs:\n    A: 0\n    B: 0\n"
            + agent_body("shell: echo ${item}")
        )


def test_phase_timeout_applies_to_steps_without_their_own() -> None:
    workflow = load(
        agent_body("shell: echo ${item}")
        + "reduce:\n  timeout: 60\n  commands:\n    - shell: a\n    - shell: b\n      timeout: 5\n"
    )
    assert [step.timeout for step in workflow.domains[0].reduce] == [60, 5]
    assert any("reduce.timeout: a phase timeout" in warning for warning in workflow.warnings)


def test_error_policy_shortcuts_and_retry_config() -> None:
    workflow = load(
        "on_item_failure: retry\ncontinue_on_failure: false\nfailure_threshold: 0.25\n"
        "error_policy:\n  retry_config:\n    max_attempts: 4\n    backoff: exponential\n"
        + agent_body("shell: echo ${item}")
    )
    assert workflow.domains[0].error_policy == ErrorPolicy(
        on_item_failure="retry", continue_on_failure=False, failure_threshold=0.25, max_retries=3
    )
    assert any("retry_config.backoff" in warning for warning in workflow.warnings)


def test_explicit_max_retries_wins_over_retry_config() -> None:
    workflow = load(
        "error_policy:\n  max_retries: 1\n  retry_config: {max_attempts: 5}\n"
        + agent_body("shell: echo ${item}")
    )
    assert workflow.domains[0].error_policy.max_retries == 1


def test_prodigy_name_that_cannot_be_a_branch_name_is_cleaned_with_a_warning() -> None:
    workflow = parse_workflow(
        "name: My Big Workflow!\nmode: mapreduce\n" + agent_body("shell: echo ${item}"),
        path="demo.yml",
    )
    assert workflow.name == "My Big Workflow!"
    assert workflow.domains[0].name == "My-Big-Workflow"
    assert workflow.warnings[-1].startswith("demo.yml:1:7: name: 'My Big Workflow!' is used as")


def test_map_input_env_references_are_replaced_and_others_kept() -> None:
    workflow = load(
        "env:\n  DIR: data\nmap:\n  input: ${DIR}/items-${HOME_DIR}.json\n"
        "  agent_template:\n    - shell: echo ${item}\n",
        env={"HOME_DIR": "h"},
    )
    assert the_map(workflow).input == "data/items-h.json"


def test_map_defaults_when_settings_are_absent() -> None:
    domain_map = the_map(load(agent_body("shell: echo ${item}")))
    expected: dict[str, Any] = {
        "max_parallel": 4,
        "json_path": None,
        "filter": None,
        "sort_by": None,
        "offset": None,
        "max_items": None,
        "distinct": None,
        "agent_timeout": None,
        "isolation": "worktree",
    }
    assert {name: getattr(domain_map, name) for name in expected} == expected


def test_claude_step_becomes_claude() -> None:
    (step,) = agent_steps("claude: /do ${item}")
    assert isinstance(step, Claude) and step.prompt == "/do ${item}"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("max_attempts: 4", Retry(attempts=4)),
        ("retry_config:\n        attempts: 5", Retry(attempts=5, backoff=1.0, max_delay=30.0)),
        (
            "retry_config:\n        attempts: 2\n        backoff: exponential\n"
            "        initial_delay: 500ms\n        max_delay: 1m",
            Retry(attempts=2, backoff=0.5, max_delay=60.0),
        ),
        (
            "retry_config:\n        attempts: 3\n        backoff: fixed\n        initial_delay: 2s",
            Retry(attempts=3, backoff=2.0, max_delay=2.0),
        ),
    ],
)
def test_command_level_retry_config(options: str, expected: Retry) -> None:
    (step,) = agent_steps(f"shell: cargo test\n      {options}")
    assert step.retry == expected


def test_command_level_retry_options_that_are_not_honoured_are_named() -> None:
    workflow = load(
        agent_body(
            "shell: curl x\n      retry_config:\n        attempts: 3\n"
            "        backoff:\n          linear:\n            increment: 2s\n"
            "        jitter: true\n        retry_on: [network]"
        )
    )
    assert sorted(warning.split(": ", 2)[1] for warning in workflow.warnings) == [
        "map.agent_template[0].retry_config.backoff",
        "map.agent_template[0].retry_config.jitter",
        "map.agent_template[0].retry_config.retry_on",
    ]


def test_a_bad_duration_names_the_forms() -> None:
    with pytest.raises(WorkflowError, match="must be a duration like 2s, 500ms, 1m"):
        load(agent_body("shell: x\n      retry_config:\n        initial_delay: soon"))


@pytest.mark.parametrize(
    "policy",
    [
        "  on_item_failure: skip\n  max_failures: 2\n",
        "  error_policy:\n    on_item_failure: skip\n    max_failures: 2\n",
    ],
)
def test_a_map_level_error_policy_is_the_domain_policy(policy: str) -> None:
    workflow = load(agent_body("shell: make") + policy + "error_policy:\n  max_failures: 9\n")
    assert workflow.domains[0].error_policy == ErrorPolicy(on_item_failure="skip", max_failures=2)


def test_every_documented_on_failure_form() -> None:
    workflow = load(
        agent_body(
            "shell: optional-cleanup.sh\n      on_failure: true",
            'shell: npm install\n      on_failure: "npm cache clean --force"',
            'shell: cargo clippy\n      on_failure: "/fix-warnings"',
            'shell: npm ci\n      on_failure:\n        - "npm cache clean --force"\n'
            '        - "rm -rf node_modules"',
            "shell: deploy\n      on_failure:\n        shell: rollback\n        claude: /analyze\n"
            "        fail_workflow: false",
            "shell: deploy\n      on_failure:\n        strategy: recovery\n        timeout: 300\n"
            "        commands:\n          - shell: rollback\n            continue_on_error: true\n"
            "          - claude: /analyze-deployment-failure",
            "shell: flaky\n      fail_workflow: false",
            "shell: x\n      on_failure:\n        claude: /fix\n        max_retries: 2",
        )
    )
    steps = the_map(workflow).agent
    assert steps[0].on_failure == () and steps[0].continue_on_failure
    assert steps[1].on_failure == (Shell("npm cache clean --force"),)
    assert steps[2].on_failure == (Claude("/fix-warnings"),)
    assert steps[3].on_failure == (Shell("npm cache clean --force"), Shell("rm -rf node_modules"))
    assert steps[4].on_failure == (Shell("rollback"), Claude("/analyze"))
    assert steps[4].continue_on_failure
    rollback, analyze = steps[5].on_failure
    assert rollback == Shell("rollback", timeout=300, continue_on_failure=True)
    assert analyze == Claude("/analyze-deployment-failure", timeout=300)
    assert steps[6].continue_on_failure and not steps[7].continue_on_failure
    assert [warning.split(": ", 2)[1] for warning in workflow.warnings] == [
        "map.agent_template[7].on_failure.max_retries",
    ]
