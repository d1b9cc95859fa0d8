"""The Studio factory: options from the run's config, the graph it builds, its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from treefork.errors import InputError, RepositoryError, WorkflowError
from treefork.studio import EXAMPLES, StudioOptions, make_graph, studio_options


def test_defaults_are_the_demo_example_asking_before_merging() -> None:
    assert studio_options({}, environ={}) == StudioOptions(
        workflow=None, example="demo", auto_approve=False, max_parallel=None, home=None
    )


def test_configurable_keys_are_read_with_strings_accepted() -> None:
    options = studio_options(
        {"workflow": "flow.yml", "auto_approve": "true", "max_parallel": "3", "home": "/h"},
        environ={},
    )
    assert options == StudioOptions(
        workflow="flow.yml", example="demo", auto_approve=True, max_parallel=3, home="/h"
    )


def test_the_workflow_defaults_to_the_environment_variable() -> None:
    assert studio_options({}, environ={"TREEFORK_WORKFLOW": "/w.yml"}).workflow == "/w.yml"
    assert (
        studio_options({"workflow": "/c.yml"}, environ={"TREEFORK_WORKFLOW": "/w.yml"}).workflow
        == "/c.yml"
    )


def test_the_repository_comes_from_the_config_else_the_environment() -> None:
    assert studio_options({}, environ={}).repo is None
    assert studio_options({}, environ={"TREEFORK_REPO": "/env"}).repo == "/env"
    assert studio_options({"repo": "/cfg"}, environ={"TREEFORK_REPO": "/env"}).repo == "/cfg"


@pytest.mark.parametrize(
    ("configurable", "key"),
    [
        ({"repo": 3}, "repo"),
        ({"example": "nope"}, "example"),
        ({"auto_approve": "maybe"}, "auto_approve"),
        ({"max_parallel": 0}, "max_parallel"),
        ({"max_parallel": "many"}, "max_parallel"),
    ],
)
def test_bad_values_name_their_key(configurable: dict[str, object], key: str) -> None:
    with pytest.raises(InputError) as caught:
        studio_options(configurable, environ={})
    assert caught.value.key == key


async def test_the_demo_example_builds_the_graph_without_a_checkpointer() -> None:
    assert EXAMPLES["demo"].is_file()

    graph = await make_graph({"configurable": {}})

    assert graph.checkpointer is None
    nodes = set(graph.get_graph().nodes)
    assert {"supervisor", "dispatcher", "aggregator", "merge_review"} <= nodes


async def test_a_workflow_file_gives_its_domains(workflow_file: Path, sample_repo: Path) -> None:
    graph = await make_graph(
        {"configurable": {"workflow": str(workflow_file), "auto_approve": True}}
    )

    out = await graph.ainvoke({"task": "Review the api", "repo": str(sample_repo)})

    assert [choice["name"] for choice in out["domains"]] == ["api"]
    assert out["merge"]["status"] == "merged"
    assert len(out["aggregated_files"]) == 3


async def test_an_invalid_workflow_lists_its_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("domains:\n  docs:\n    map: {}\n")

    with pytest.raises(WorkflowError) as caught:
        await make_graph({"configurable": {"workflow": str(bad)}})

    assert str(bad) in str(caught.value)


async def test_the_assistants_repository_serves_runs_that_name_none(
    workflow_file: Path, sample_repo: Path, tmp_path: Path
) -> None:
    graph = await make_graph(
        {
            "configurable": {
                "workflow": str(workflow_file),
                "auto_approve": True,
                "repo": str(sample_repo),
            }
        }
    )

    out = await graph.ainvoke({"task": "Review the api"})

    assert out["repo"] == str(sample_repo.resolve())
    assert out["merge"]["status"] == "merged"
    with pytest.raises(RepositoryError, match="none"):  # the input's repository wins
        await graph.ainvoke({"task": "Review the api", "repo": str(tmp_path / "none")})
