"""Random workflows built from Prodigy's documented grammar never crash the loader.

Each example is a document assembled from the keys, step forms, options, variables and
environment features Prodigy's documentation shows, with values that are sometimes right
and sometimes of the wrong type or shape. Loading it either gives a workflow or raises one
:class:`WorkflowError` whose every problem has a location: never another exception. The
same documents go through ``treefork validate``, which exits 0 or 2 without a traceback.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from typer.testing import CliRunner

from treefork.cli.app import _register, app
from treefork.errors import WorkflowError
from treefork.workflow import parse_workflow

_register()

NAMES = st.sampled_from(["API_KEY", "MAX_WORKERS", "TIMEOUT", "ENVIRONMENT", "x", "9bad", ""])
TEXT = st.sampled_from(
    [
        "echo ${item}", "echo ${item.path}", "echo ${map.successful}", "echo ${map.sucessful}",
        "echo ${shell.output}", "echo ${last.exit_code}", "echo ${workflow.name}",
        "echo ${worker.id}", "echo ${step.index}", "echo ${env.HOME}", "echo ${uuid}",
        "echo ${date:%Y}", "echo ${cmd:ls}", "echo $API_KEY", "echo ${MAX_WORKERS:-4}",
        "/prodigy-fix ${item.file}", "", "${", "}", "echo ${unknown}", "make test",
    ]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 100), st.sampled_from([1.5, "30", "2s", "abc"]),
    st.sampled_from(["${TIMEOUT}", "${TIMEOUT:-30}", "$MAX_WORKERS", "${NOPE}", "true"]),
)  # fmt: skip
ANYTHING = st.one_of(SCALARS, TEXT, st.lists(TEXT, max_size=2), st.just({"a": 1}))


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, ANYTHING)


RETRY_CONFIG = st.fixed_dictionaries(
    {},
    optional={
        "attempts": _maybe(st.integers(1, 4)),
        "backoff": _maybe(st.sampled_from(["fixed", "exponential", "linear", "fibonacci"])),
        "initial_delay": _maybe(st.sampled_from(["1s", "500ms", 2])),
        "max_delay": _maybe(st.sampled_from(["30s", "1m"])),
        "jitter": st.booleans(),
        "retry_on": st.just(["timeout"]),
    },
)


def _step(depth: int) -> st.SearchStrategy[Any]:
    handler: st.SearchStrategy[Any] = (
        st.one_of(
            st.booleans(),
            TEXT,
            st.lists(_step(depth + 1), max_size=2),
            st.fixed_dictionaries(
                {},
                optional={
                    "shell": TEXT,
                    "claude": TEXT,
                    "fail_workflow": _maybe(st.booleans()),
                    "max_attempts": _maybe(st.integers(1, 3)),
                    "commands": st.lists(TEXT, max_size=2),
                    "timeout": SCALARS,
                    "handler_failure_fatal": st.booleans(),
                },
            ),
        )
        if depth < 2
        else TEXT
    )
    return st.fixed_dictionaries(
        {},
        optional={
            "shell": TEXT,
            "claude": TEXT,
            "write_file": st.fixed_dictionaries(
                {"path": TEXT, "content": TEXT}, optional={"format": ANYTHING}
            ),
            "name": _maybe(TEXT),
            "timeout": SCALARS,
            "capture": _maybe(st.sampled_from(["out", "workflow", "item", "x.y"])),
            "capture_output": _maybe(st.booleans()),
            "capture_format": _maybe(st.sampled_from(["json", "lines", "number", "nope"])),
            "commit_required": SCALARS,
            "on_failure": handler,
            "on_success": _maybe(TEXT),
            "retry_config": _maybe(RETRY_CONFIG),
            "max_attempts": SCALARS,
            "when": _maybe(TEXT),
            "env": st.dictionaries(NAMES, SCALARS, max_size=2),
            "working_dir": _maybe(TEXT),
            "continue_on_error": SCALARS,
        },
    )


STEPS = st.one_of(st.lists(_step(0), max_size=3), ANYTHING)
ENV = st.dictionaries(
    NAMES, st.one_of(SCALARS, st.fixed_dictionaries({"secret": st.booleans(), "value": TEXT})),
    max_size=3,
)  # fmt: skip
DOCUMENT = st.fixed_dictionaries(
    {"mode": _maybe(st.just("mapreduce"))},
    optional={
        "name": _maybe(st.sampled_from(["flow", "fix docs"])),
        "env": _maybe(ENV),
        "secrets": _maybe(
            st.dictionaries(
                NAMES,
                st.one_of(
                    st.sampled_from(["${env:API_KEY}", "API_KEY", "literal value"]),
                    st.fixed_dictionaries(
                        {"provider": st.sampled_from(["env", "file", "vault"])},
                        optional={"key": _maybe(st.just("API_KEY")), "version": TEXT},
                    ),
                ),
                max_size=2,
            )
        ),
        "env_files": _maybe(st.lists(st.sampled_from([".env", ".env.${ENVIRONMENT}"]), max_size=2)),
        "profiles": _maybe(st.dictionaries(st.sampled_from(["dev", "prod"]), ENV, max_size=2)),
        "active_profile": _maybe(st.sampled_from(["dev", "prod", "staging"])),
        "setup": STEPS,
        "map": _maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "input": _maybe(st.sampled_from(["items.json", "ls *.md", "${ITEMS}"])),
                    "json_path": _maybe(st.sampled_from(["$[*]", "$.items[*]", "$[", "bad"])),
                    "agent_template": STEPS,
                    "max_parallel": SCALARS,
                    "filter": _maybe(st.sampled_from(["priority > 5", "a ==", "x in ['a']"])),
                    "sort_by": _maybe(st.sampled_from(["priority DESC", "a ASC b"])),
                    "max_items": SCALARS,
                    "offset": SCALARS,
                    "distinct": _maybe(TEXT),
                    "agent_timeout_secs": SCALARS,
                    "timeout_config": st.dictionaries(
                        st.sampled_from(["agent_timeout_secs", "cleanup_grace_period_secs"]),
                        SCALARS,
                        max_size=2,
                    ),
                },
            )
        ),
        "reduce": STEPS,
        "merge": _maybe(st.one_of(STEPS, st.fixed_dictionaries({"commands": STEPS}))),
        "error_policy": _maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "on_item_failure": _maybe(st.sampled_from(["dlq", "retry", "skip", "stop"])),
                    "continue_on_failure": SCALARS,
                    "max_failures": SCALARS,
                    "failure_threshold": SCALARS,
                    "retry_config": _maybe(RETRY_CONFIG),
                    "error_collection": _maybe(st.sampled_from(["aggregate", "immediate"])),
                },
            )
        ),
        "max_parallel": SCALARS,
        "inherit": SCALARS,
    },
)

_YAML = YAML(typ="safe", pure=True)


def _text(document: dict[str, Any]) -> str:
    buffer = io.StringIO()
    _YAML.dump(document, buffer)
    return buffer.getvalue()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENT, st.sampled_from([None, "dev", "prod"]))
def test_documented_grammar_loads_or_fails_with_located_problems(
    document: dict[str, Any], profile: str | None
) -> None:
    text = _text(document)
    try:
        parse_workflow(
            text, path="random.yml", env={"API_KEY": "k", "TIMEOUT": "5"}, profile=profile
        )
    except WorkflowError as error:
        assert error.problems, text
        for problem in error.problems:
            assert problem.where and problem.message, (text, problem)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(DOCUMENT)
def test_validate_exits_0_or_2_without_a_traceback(
    tmp_path_factory: Any, document: dict[str, Any]
) -> None:
    folder = Path(tmp_path_factory.mktemp("grammar"))
    path = folder / "flow.yml"
    path.write_text(_text(document))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code in (0, 2), (path.read_text(), result.output, result.exception)
    assert "Traceback" not in result.output


# --- documents that follow the documentation: they must load -------------------------------

GOOD_AGENT = st.sampled_from(
    [
        "echo ${item}", "echo ${item_index} of ${item_total}", "make test",
        "echo ${workflow.name} ${workflow.id} ${worker.id}", "echo ${step.name} ${step.index}",
        "echo ${env.HOME} ${uuid} $API_KEY", "echo ${MODE:-none}",
    ]
)  # fmt: skip
GOOD_HANDLER = st.one_of(
    st.just(True),
    st.sampled_from(["echo fix", "/prodigy-debug"]),
    st.fixed_dictionaries({"shell": st.just("echo ${shell.output} ${last.exit_code}")}),
    st.fixed_dictionaries({"fail_workflow": st.booleans()}),
    st.fixed_dictionaries({"max_attempts": st.integers(1, 3)}),
    st.fixed_dictionaries({"claude": st.just("/fix"), "fail_workflow": st.just(False)}),
)
GOOD_STEP = st.fixed_dictionaries(
    {"shell": GOOD_AGENT},
    optional={
        "timeout": st.one_of(st.integers(1, 600), st.just("${TIMEOUT:-30}")),
        "commit_required": st.booleans(),
        "on_failure": GOOD_HANDLER,
        "retry_config": st.fixed_dictionaries(
            {"attempts": st.integers(1, 4)},
            optional={
                "backoff": st.sampled_from(["fixed", "exponential"]),
                "initial_delay": st.sampled_from(["1s", "500ms"]),
                "max_delay": st.just("30s"),
            },
        ),
        "env": st.dictionaries(st.sampled_from(["LEVEL", "MODE"]), st.just("x"), max_size=1),
    },
)
GOOD_DOCUMENT = st.fixed_dictionaries(
    {
        "mode": st.just("mapreduce"),
        "map": st.fixed_dictionaries(
            {"input": st.just("items.json"), "agent_template": st.lists(GOOD_STEP, min_size=1, max_size=3)},
            optional={
                "json_path": st.sampled_from(["$[*]", "$.items[*]"]),
                "max_parallel": st.one_of(st.integers(1, 8), st.just("${MAX_WORKERS:-4}")),
                "filter": st.just("priority > 5"),
                "sort_by": st.just("priority DESC"),
                "max_items": st.integers(0, 10),
                "agent_timeout_secs": st.one_of(st.integers(1, 900), st.just("${TIMEOUT}")),
            },
        ),
    },
    optional={
        "name": st.just("documented"),
        "env": st.dictionaries(st.sampled_from(["MODE", "OUT"]), st.just("v"), max_size=2),
        "secrets": st.just({"API_KEY": "${env:API_KEY}"}),
        "profiles": st.just({"dev": {"description": "d", "MODE": "dev"}, "prod": {"MODE": "p"}}),
        "setup": st.lists(st.fixed_dictionaries({"shell": st.sampled_from(["echo hi", "echo ${workflow.id}"])}), max_size=2),
        "reduce": st.lists(
            st.fixed_dictionaries({"shell": st.sampled_from(["echo ${map.successful} ${map.success_rate}", "echo ${map.results_json}"])}),
            max_size=2,
        ),
        "error_policy": st.fixed_dictionaries(
            {}, optional={"on_item_failure": st.sampled_from(["dlq", "retry", "skip", "stop"]), "max_failures": st.integers(1, 5)}
        ),
    },
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(GOOD_DOCUMENT, st.sampled_from([None, "dev", "prod"]))
def test_documents_written_as_the_documentation_shows_load(
    document: dict[str, Any], profile: str | None
) -> None:
    if profile is not None and "profiles" not in document:
        document["profiles"] = {profile: {"MODE": profile}}
    workflow = parse_workflow(
        _text(document), path="good.yml", env={"API_KEY": "k-good", "TIMEOUT": "5"}, profile=profile
    )
    assert workflow.profile == profile
    assert len(workflow.domains[0].map.agent) == len(document["map"]["agent_template"])
