"""Which ${...} references a workflow may use where (checked when it loads)."""

from __future__ import annotations

from pathlib import Path

import pytest

from treefork.errors import WorkflowError
from treefork.workflow import parse_workflow

HEAD = """\
name: refs
mode: mapreduce
env:
  OUT: out
"""


def problems_of(body: str) -> list[str]:
    try:
        parse_workflow(HEAD + body, path="refs.yml", env={})
    except WorkflowError as error:
        return [problem.message for problem in error.problems]
    return []


def agent(*steps: str) -> str:
    lines = "\n".join(f"    - {step}" for step in steps)
    return f"map:\n  input: items.json\n  agent_template:\n{lines}\n"


@pytest.mark.parametrize(
    "step",
    [
        "shell: echo ${item} ${item.a.b[0]} ${item_id} ${item_index} ${item_total} ${item_json}",
        "shell: for f in *.md; do echo ${f}; done",
        "shell: count=3; echo ${count}",
        "shell: |\n        # ${not_checked} in a comment\n        echo done",
        "shell: echo ${HOME} ${OUT} ${PATH:-/bin}",
        "shell: echo $${literal} ${later|default:none} ${x:-y}",
        "claude: /fix ${item.path} --out $OUT ${OUT}",
        'shell: echo "$((${item.n} + 1))"',
        "write_file: {path: '${OUT}/${item_id}.txt', content: '${item}'}",
    ],
)
def test_names_in_scope_in_map_agents_are_accepted(step: str) -> None:
    assert problems_of(agent(step)) == []


def test_captures_are_visible_to_later_steps_and_later_phases() -> None:
    body = (
        "setup:\n  - shell: date\n    capture: started\n"
        + agent(
            "shell: echo ${started}", "shell: wc -l\n      capture: lines", "shell: echo ${lines}"
        )
        + "reduce:\n  - shell: echo ${started} ${map.total} ${map.results}\n"
    )
    assert problems_of(body) == []


def test_agent_captures_are_not_visible_in_reduce() -> None:
    body = agent("shell: wc -l\n      capture: lines") + "reduce:\n  - shell: echo ${lines}\n"
    (message,) = problems_of(body)
    assert message == "reduce[0].shell: unknown variable ${lines}"


def test_shell_output_is_visible_after_a_shell_step_and_in_its_handlers() -> None:
    body = agent(
        "shell: cargo test\n      on_failure:\n        claude: /debug ${shell.output}",
        "claude: /summarize ${shell.stderr}",
    )
    assert problems_of(body) == []


def test_handler_captures_do_not_leak_into_later_steps() -> None:
    body = agent(
        "claude: /fix\n      on_failure:\n        - shell: date\n          capture: failed_at",
        "shell: echo ${failed_at}",
    )
    (message,) = problems_of(body)
    assert "unknown variable ${failed_at}" in message


def test_step_env_names_are_in_scope_for_that_step_only() -> None:
    body = agent(
        "shell: echo ${greeting}\n      env:\n        greeting: hi", "shell: echo ${greeting}"
    )
    (message,) = problems_of(body)
    assert message.startswith("map.agent_template[1].shell: unknown variable ${greeting}")


def test_merge_steps_see_merge_variables_and_the_workflow_env() -> None:
    body = agent("shell: echo ${item}") + (
        "merge:\n  - claude: /merge ${merge.source_branch} ${merge.target_branch} ${OUT}\n"
    )
    assert problems_of(body) == []


def test_merge_variables_elsewhere_are_reported() -> None:
    (message,) = problems_of(agent("shell: echo ${merge.source_branch}"))
    assert "${merge.source_branch} is only available in merge steps" in message


def test_every_bad_reference_in_one_template_is_reported() -> None:
    messages = problems_of(agent("shell: echo ${one} ${two} ${one}"))
    assert messages == [
        "map.agent_template[0].shell: unknown variable ${one}",
        "map.agent_template[0].shell: unknown variable ${two}",
    ]


def test_templates_in_when_working_dir_and_env_values_are_checked() -> None:
    messages = problems_of(
        agent(
            "shell: ls\n      when: ${flag}\n      working_dir: ${dir}\n      env:\n        A: ${v}"
        )
    )
    assert [message.split(":")[0] for message in messages] == [
        "map.agent_template[0].when",
        "map.agent_template[0].working_dir",
        "map.agent_template[0].env.A",
    ]


def test_capture_outputs_of_setup_are_in_scope_for_agents() -> None:
    body = (
        "setup:\n  commands:\n    - shell: date\n    - shell: hostname\n"
        "  capture_outputs:\n    STARTED: 0\n    when: {command_index: 1, format: string}\n"
        + agent("shell: echo ${when}")
    )
    assert problems_of(body) == []


def test_a_typo_in_a_map_field_is_caught_at_validate_with_a_suggestion() -> None:
    (message,) = problems_of(
        agent("shell: echo ${item}") + "reduce:\n  - shell: echo ${map.sucessful}\n"
    )
    assert message == (
        "reduce[0].shell: ${map.sucessful}: map has no field 'sucessful'; did you mean "
        "'successful'? (its fields: failed, results, results_json, skipped, success_rate, "
        "successful, total)"
    )


def test_every_documented_map_field_is_accepted_in_reduce() -> None:
    fields = "${map.total} ${map.successful} ${map.failed} ${map.skipped} ${map.success_rate}"
    results = (
        "${map.results} ${map.results_json} ${map.results[0].output} ${map.results[1].item_id}"
    )
    body = agent("shell: echo ${item}") + f"reduce:\n  - shell: echo {fields} {results}\n"
    assert problems_of(body) == []


def test_the_typo_is_caught_by_run_before_any_agent_starts(tmp_path: Path) -> None:
    from cliutil import treefork
    from gitutil import make_repo, run_git

    repo = make_repo(tmp_path / "repo", {"README.md": "hello\n"})
    ran = tmp_path / "ran"
    workflow = tmp_path / "typo.yml"
    workflow.write_text(
        "name: typo\nmode: mapreduce\nmap:\n  input: \"printf 'a\\\\n'\"\n  agent_template:\n"
        f"    - shell: touch {ran}\nreduce:\n  - shell: echo ${{map.sucessful}}\n",
        encoding="utf-8",
    )
    before = run_git(repo, "rev-parse", "main")
    done = treefork("run", workflow, "--repo", repo, "--yes")
    assert done.returncode == 2, done.stderr
    assert f"{workflow}:8:" in done.stderr and "did you mean 'successful'?" in done.stderr
    assert not ran.exists()  # no agent ran, no budget spent
    assert run_git(repo, "rev-parse", "main") == before


def test_an_unknown_compound_variable_is_named_whole() -> None:
    (message,) = problems_of(agent("shell: echo ${nothing.here}"))
    assert message == "map.agent_template[0].shell: unknown variable ${nothing.here}"


@pytest.mark.parametrize(
    "step",
    [
        "shell: echo ${workflow.name} ${workflow.id} ${workflow.iteration} ${worker.id}",
        "shell: echo ${step.name} ${step.index} ${env.HOME} ${env.NOT_SET:-x} ${uuid}",
        "claude: /x ${workflow.name}",
    ],
)
def test_context_variables_are_known_in_every_phase(step: str) -> None:
    body = f"setup:\n  - {step}\n" + agent(step) + f"reduce:\n  - {step}\n"
    assert problems_of(body) == []


def test_last_and_claude_need_an_earlier_step() -> None:
    assert problems_of(agent("shell: echo ${last.output}")) == [
        "map.agent_template[0].shell: ${last.output} needs an earlier step, and none runs "
        "before this one in map.agent_template"
    ]
    assert problems_of(agent("shell: echo ${claude.output}")) == [
        "map.agent_template[0].shell: ${claude.output} needs the output of an earlier claude "
        "step, and none runs before this one in map.agent_template"
    ]
    later = agent("claude: /a", "shell: echo ${last.exit_code} ${claude.output}")
    assert problems_of(later) == []
    handler = agent("shell: make\n      on_failure:\n        shell: echo ${last.exit_code}")
    assert problems_of(handler) == []


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("${workflow.nme}", "workflow has no field 'nme'; did you mean 'name'? (its fields: "
         "id, iteration, name)"),
        ("${worker.idd}", "worker has no field 'idd'; did you mean 'id'? (its fields: id)"),
        ("${step.indx}", "step has no field 'indx'; did you mean 'index'?"),
    ],
)  # fmt: skip
def test_a_typo_in_a_context_field_names_the_field(reference: str, expected: str) -> None:
    (message,) = problems_of(agent(f"shell: echo {reference}"))
    assert expected in message and message.startswith(f"map.agent_template[0].shell: {reference}")


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("${date:%Y-%m-%d}", "${date:%Y-%m-%d} is not supported: use $(date +FORMAT)"),
        ("${file:VERSION}", "${file:VERSION} is not supported: read the file in a shell command"),
        ("${cmd:git rev-parse HEAD}", "${cmd:git rev-parse HEAD} is not supported: commands run"),
        ("${json:$.id:from:data}", "${json:$.id:from:data} is not supported: capture the JSON"),
    ],
)
def test_prodigy_computed_forms_are_refused_with_an_alternative(
    reference: str, expected: str
) -> None:
    (message,) = problems_of(agent(f"shell: 'echo \"{reference}\"'"))
    assert expected in message


def test_context_names_cannot_be_captured() -> None:
    (message,) = problems_of(agent("shell: echo x\n      capture: workflow"))
    assert "workflow" in message


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ("goal_seek: {goal: x, claude: /x}", "Prodigy's goal-seeking loop (goal_seek) is not "
         "supported: run the command and its check in a shell step"),
        ("foreach: {input: [a], do: []}", "Prodigy's foreach steps are not supported"),
        ("analyze: {}", "Prodigy's analyze step is not supported"),
        ("test: {command: make}", "Prodigy's legacy test step is not supported"),
    ],
)  # fmt: skip
def test_refused_step_kinds_are_named_with_a_reason(step: str, expected: str) -> None:
    (message,) = problems_of(agent(step))
    assert expected in message


def test_on_success_steps_see_the_step_they_follow() -> None:
    assert problems_of(agent("shell: make\n      on_success: 'echo ${shell.output}'")) == []
    assert problems_of(agent("claude: /x\n      on_success:\n        - shell: echo ${claude.output}")) == []
    (message,) = problems_of(agent("shell: make\n      on_success:\n        shell: echo ${nope}"))
    assert message.startswith("map.agent_template[0].on_success.shell: unknown variable ${nope}")
