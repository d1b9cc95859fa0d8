"""Workflows written from pages of Prodigy's documentation, run for real.

Each file in ``tests/workflow/docs_pages`` follows one page (named in its first comment):
its keys, forms and variables as the page shows them. Each runs on a real repository, and
the test checks what the page says should happen.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cliutil import TRACEBACK, Finished, environment, treefork
from gitutil import make_repo, run_git

PAGES = Path(__file__).resolve().parent.parent / "workflow" / "docs_pages"
ITEMS = [
    {"name": "alpha", "priority": 3, "tags": ["x"]},
    {"name": "beta", "priority": 2, "tags": ["y"]},
    {"name": "gamma", "priority": 1, "tags": ["z"]},
]
DEPLOY_KEY = "tf-doc-deploy-key-0c11"
SECRETS = {"SECRET_API_KEY": "tf-doc-api-key-7d21", "GITHUB_TOKEN": "tf-doc-token-93ab"}


def run_page(name: str, tmp_path: Path, *args: str, **env: str) -> tuple[Finished, Path]:
    repo = make_repo(tmp_path / "repo", {"items.json": json.dumps(ITEMS) + "\n"})
    finished = treefork(
        "run", PAGES / f"{name}.yml", "--repo", repo, "--yes", "--json", *args,
        env=environment(**env), timeout=120,
    )  # fmt: skip
    assert TRACEBACK not in finished.stderr
    return finished, repo


def domain(finished: Finished) -> dict[str, Any]:
    (only,) = finished.report()["domains"].values()
    return dict(only)


def test_every_page_workflow_validates() -> None:
    for path in sorted(PAGES.glob("*.yml")):
        checked = treefork("validate", path, env=environment(**SECRETS, ENVIRONMENT="production"))
        assert checked.returncode == 0, (path.name, checked.stderr)
        assert "warning" not in checked.stderr, (path.name, checked.stderr)


def test_environment_files_layer_as_documented(tmp_path: Path) -> None:
    finished, repo = run_page("environment-files", tmp_path, ENVIRONMENT="production")

    assert finished.returncode == 0, finished.stderr
    assert (repo / "env-alpha.txt").read_text() == (
        "my-project postgresql://prod-server:5432/app 20 30 my value with spaces\n"
    )


def test_secrets_reach_the_commands_and_never_the_output(tmp_path: Path) -> None:
    finished, repo = run_page("secrets-management", tmp_path, **SECRETS)

    assert finished.returncode == 0, finished.stderr
    assert (repo / "secret-beta.txt").read_text() == "used\n"
    job = finished.report()["job_id"]
    written = finished.stdout + finished.stderr + treefork("events", job, "--json").stdout
    for value in (*SECRETS.values(), DEPLOY_KEY):
        assert value not in written


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ("development", "my-app development true http://localhost:3000\n"),
        ("production", "my-app production false https://api.example.com\n"),
        (None, "my-app local  \n"),
    ],
)
def test_profiles_override_the_global_env(
    tmp_path: Path, profile: str | None, expected: str
) -> None:
    finished, repo = run_page(
        "environment-profiles", tmp_path, *(("--profile", profile) if profile else ())
    )

    assert finished.returncode == 0, finished.stderr
    assert (repo / "profile-gamma.txt").read_text() == expected


def test_error_handling_forms_let_the_agents_go_on(tmp_path: Path) -> None:
    finished, repo = run_page("error-handling", tmp_path)

    assert finished.returncode == 0, finished.stderr
    assert domain(finished)["succeeded"] == 3
    for name in ("alpha", "beta", "gamma"):
        assert (repo / f"recovered-{name}.txt").read_text() == "recovered\n"
        assert (repo / f"lint-{name}.txt").read_text() == "lint-fixed\n"


def test_retry_configuration_tries_again_until_it_passes(tmp_path: Path) -> None:
    finished, repo = run_page("retry-configuration", tmp_path)

    assert finished.returncode == 0, finished.stderr
    assert (repo / "tries-alpha").read_text() == "3\n"


def test_standard_variables_have_values(tmp_path: Path) -> None:
    finished, repo = run_page("standard-variables", tmp_path)

    assert finished.returncode == 0, finished.stderr
    words = (repo / "vars-beta.txt").read_text().split()
    assert words[:4] == ["beta", "standard-variables", "1", "1"]
    assert words[4] == str(Path.home()) and len(words[5]) == 36


def test_mapreduce_variables_filter_sort_and_index(tmp_path: Path) -> None:
    finished, repo = run_page("mapreduce-variables", tmp_path)

    assert finished.returncode == 0, finished.stderr
    assert domain(finished)["succeeded"] == 2  # gamma filtered out
    assert (repo / "item-alpha.txt").read_text() == "alpha 3 x 0 2\n"
    assert (repo / "item-beta.txt").read_text() == "beta 2 y 1 2\n"
    assert not (repo / "item-gamma.txt").exists()


def test_conditional_steps_and_on_success(tmp_path: Path) -> None:
    finished, repo = run_page("conditional-steps", tmp_path)

    assert finished.returncode == 0, finished.stderr
    assert (repo / "high-alpha.txt").exists()
    assert not (repo / "high-beta.txt").exists()
    assert "high-alpha" in run_git(repo, "log", "--format=%s", "-n", "20")
