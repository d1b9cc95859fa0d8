"""Prodigy's environment features run for real: ``env_files``, ``profiles`` (``--profile``),
``secrets`` and their masking, as its "Environment" pages describe them.

Secret values in these tests are unlike any other text, because masking is process-wide.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cliutil import TRACEBACK, Finished, environment, treefork
from gitutil import make_repo, run_git, snapshot
from jobutil import store_rows

from treefork import build_graph
from treefork.domain import Domain, Map
from treefork.steps import Shell
from treefork.workflow import load_workflow

FROM_ENV = "tf-s3cret-envvar-5b1e"
FROM_FILE = "tf-s3cret-file-c04d"

WORKFLOW = """\
name: environments
mode: mapreduce
env_files:
  - .env
  - .env.${STAGE}
  - path: .env.local
env:
  WHO: world
  PLACE: "${REGION:-nowhere}"
profiles:
  development:
    description: "local work"
    WHO: developers
  production:
    WHO: customers
secrets:
  API_KEY: "${env:TOKEN}"
  DB_PASS:
    provider: file
    key: secrets/db_password
map:
  input: items.json
  json_path: "$[*]"
  max_parallel: ${WORKERS}
  agent_template:
    - shell: >-
        printf '%s|%s|%s|%s|%s|%s\\n' "$GREETING" "$WHO" "$PLACE" "$LAYER"
        "$API_KEY" "$DB_PASS" > out-${item}.txt && git add . && git commit -qm ${item}
        && echo "agent ${item} used $API_KEY"
    - shell: 'test ${item} != b || { echo "b failed holding $DB_PASS" >&2; exit 3; }'
reduce:
  - shell: 'echo "reduce saw $API_KEY and $DB_PASS"'
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with the workflow, its env files and a secret file (not the repository)."""
    folder = tmp_path / "flows"
    (folder / "secrets").mkdir(parents=True)
    (folder / "flow.yml").write_text(WORKFLOW)
    (folder / ".env").write_text(
        '# base\nGREETING="hello there"\nLAYER=base\nexport WORKERS=2\nREGION=\n'
    )
    (folder / ".env.test").write_text("LAYER='stage file'\n")
    (folder / "secrets" / "db_password").write_text(FROM_FILE + "\n")
    return folder


@pytest.fixture
def items_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"items.json": '["a", "b"]\n'})


def job_row(home: Path, job_id: str) -> sqlite3.Row:
    (row,) = store_rows(home, "SELECT * FROM jobs WHERE job_id = ?", (job_id,))
    return row


def run(project: Path, repo: Path, *args: str, **env: str) -> Finished:
    settings = environment(TOKEN=FROM_ENV, STAGE="test", **env)
    return treefork(
        "run", project / "flow.yml", "--repo", repo, "--yes", "--json", *args, env=settings,
        cwd=repo.parent,
    )  # fmt: skip


def everything_written(home: Path, finished: Finished, job_id: str) -> str:
    """All treefork wrote about a job: terminal, JSON, events, the job store, DLQ, report."""
    texts = [finished.stdout, finished.stderr]
    for command in (("events", job_id, "--json"), ("jobs", "--json"), ("dlq", "list", job_id)):
        texts.append(treefork(*command).stdout)
    texts.append(treefork("dlq", "show", job_id, "1").stdout)
    report = home.parent / "report.html"
    assert treefork("report", job_id, "-o", report).returncode == 0
    texts.append(report.read_text())
    texts.extend(path.read_text() for path in (home / "jobs").rglob("*.jsonl"))
    with sqlite3.connect(home / "treefork.db") as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            texts.extend(str(row) for row in db.execute(f"SELECT * FROM {table}"))
    return "\n".join(texts)


def test_env_files_profile_and_secrets_reach_the_agents_and_secrets_are_masked(
    project: Path, items_repo: Path, treefork_home: Path
) -> None:
    finished = run(project, items_repo, "--profile", "production")

    assert finished.returncode == 1, finished.stderr  # item b fails on purpose
    report = finished.report()
    assert report["domains"]["environments"]["succeeded"] == 1
    # Files in order (.env, then .env.${STAGE}; .env.local is missing and optional), the
    # workflow env, the profile over it, the secrets from the environment and a file.
    assert (items_repo / "out-a.txt").read_text() == (
        f"hello there|customers|nowhere|stage file|{FROM_ENV}|{FROM_FILE}\n"
    )
    written = everything_written(treefork_home, finished, report["job_id"])
    assert FROM_ENV not in written and FROM_FILE not in written
    assert "b failed holding ***" in written  # the DLQ keeps the masked output
    assert TRACEBACK not in finished.stderr


def test_the_profile_is_kept_for_resume_and_named_by_validate(
    project: Path, items_repo: Path, treefork_home: Path
) -> None:
    finished = run(project, items_repo, "--profile", "development")
    job = finished.report()["job_id"]
    assert json.loads(job_row(treefork_home, job)["options"])["profile"] == "development"

    checked = treefork(
        "validate", project / "flow.yml", env=environment(TOKEN="x", TREEFORK_PROFILE="production")
    )
    assert checked.returncode == 0, checked.stderr
    assert "profile: production" in checked.stdout


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ("--profile", "prodution"),
            {},
            "profiles: profile 'prodution' (from --profile) is not defined; the workflow "
            "defines development, production; did you mean 'production'?",
        ),
        (
            (),
            {"TREEFORK_PROFILE": "staging"},
            "profile 'staging' (from $TREEFORK_PROFILE) is not defined",
        ),
        (
            (),
            {"PRODIGY_PROFILE": "staging"},
            "profile 'staging' (from $PRODIGY_PROFILE) is not defined",
        ),
    ],
)
def test_an_unknown_profile_is_refused_before_anything_is_recorded(
    project: Path,
    items_repo: Path,
    treefork_home: Path,
    *,
    args: tuple[str, ...],
    env: dict[str, str],
    expected: str,
) -> None:
    before = snapshot(items_repo)
    finished = run(project, items_repo, *args, **env)

    assert finished.returncode == 2
    assert expected in finished.stderr
    assert TRACEBACK not in finished.stderr
    assert snapshot(items_repo) == before
    assert treefork("jobs", "--json").stdout == ""
    assert not (treefork_home / "treefork.db").exists() or not store_rows(
        treefork_home, "SELECT job_id FROM jobs"
    )


def test_a_missing_secret_is_a_problem_at_its_line_before_any_agent_runs(
    project: Path, items_repo: Path
) -> None:
    settings = environment(STAGE="test")  # no TOKEN
    finished = treefork("run", project / "flow.yml", "--repo", items_repo, env=settings)

    assert finished.returncode == 2
    assert "flow.yml:17:12: secrets.API_KEY: $TOKEN is not set in the environment or the env " \
        "files" in finished.stderr  # fmt: skip
    assert not list(items_repo.glob("out-*"))
    assert run_git(items_repo, "branch", "--list", "treefork/*") == ""


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("secrets/db_password", None),
            "secrets.DB_PASS: secret file {folder}/secrets/db_password does not exist",
        ),
        ((".env", "GREETING=hi\nNO EQUALS\n"), "{folder}/.env:2: no '=' in 'NO EQUALS'"),
        ((".env", "BAD='half\n"), "{folder}/.env:1: unbalanced quotes in the value of BAD"),
        ((".env", "9LIVES=x\n"), "{folder}/.env:1: '9LIVES' is not a variable name"),
    ],
)
def test_bad_env_files_and_secret_files_are_named(
    project: Path, edit: tuple[str, str | None], expected: str
) -> None:
    name, content = edit
    if content is None:
        (project / name).unlink()
    else:
        (project / name).write_text(content)
    finished = treefork(
        "validate", project / "flow.yml", env=environment(TOKEN="x", STAGE="test", WORKERS="1")
    )

    assert finished.returncode == 2
    assert expected.format(folder=project) in finished.stderr
    assert TRACEBACK not in finished.stderr


def _validate(tmp_path: Path, text: str, **env: str) -> Finished:
    path = tmp_path / "flow.yml"
    path.write_text(text)
    return treefork("validate", path, env=environment(**env))


MINIMAL = """\
name: minimal
mode: mapreduce
map:
  input: items.json
  agent_template:
    - shell: "true"
"""


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            "secrets:\n  K:\n    provider: vault\n    key: x\n",
            "secrets.K.provider: provider 'vault' is not supported: use env or file",
        ),
        (
            "secrets:\n  K: hunter two\n",
            "secrets.K: names where the value is: \"${env:NAME}\"",
        ),
        (
            "secrets:\n  K:\n    provider: env\n",
            "secrets.K.key: the env provider needs key: the variable's name",
        ),
        (
            "env_files:\n  - path: .env.production\n    required: true\n",
            "env_files[0]: env file {folder}/.env.production does not exist (required: true)",
        ),
        (
            "active_profile: prod\n",
            "active_profile: profile 'prod' (from active_profile) is chosen, but this workflow "
            "defines no profiles",
        ),
    ],
)
def test_unsupported_or_incomplete_sources_are_refused_with_a_reason(
    tmp_path: Path, block: str, expected: str
) -> None:
    finished = _validate(tmp_path, MINIMAL + block)

    assert finished.returncode == 2
    assert expected.replace("{folder}", str(tmp_path)) in finished.stderr
    assert TRACEBACK not in finished.stderr


def test_secret_forms_and_active_profile(tmp_path: Path) -> None:
    (tmp_path / "key.txt").write_text("from-file\n")
    path = tmp_path / "flow.yml"
    path.write_text(
        MINIMAL
        + "active_profile: ci\nprofiles:\n  ci:\n    MODE: ci\n  dev:\n    MODE: dev\n"
        + "secrets:\n  A: \"${env:ONE}\"\n  B: \"${TWO}\"\n  C: THREE\n"
        + "  D:\n    provider: env\n    key: FOUR\n  E:\n    provider: file\n    key: key.txt\n"
        + "    version: v1\n"
        + "env:\n  MODE: none\n  SEEN:\n    secret: true\n    value: \"${FIVE}\"\n"
    )
    env = {"ONE": "1-tf", "TWO": "2-tf", "THREE": "3-tf", "FOUR": "4-tf", "FIVE": "5-tf"}

    workflow = load_workflow(path, env=env)

    assert workflow.profile == "ci"
    assert dict(workflow.secrets) == {
        "A": "1-tf", "B": "2-tf", "C": "3-tf", "D": "4-tf", "E": "from-file", "SEEN": "5-tf",
    }  # fmt: skip
    (domain,) = workflow.domains
    assert domain.env["MODE"] == "ci" and domain.env["E"] == "from-file"
    assert any("secrets.E.version: is not used" in warning for warning in workflow.warnings)
    assert load_workflow(path, env=env, profile="dev").domains[0].env["MODE"] == "dev"
    assert load_workflow(path, env={**env, "TREEFORK_PROFILE": "dev"}).profile == "dev"


def test_profile_and_env_file_values_fill_numeric_settings(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TIMEOUT=45\n")
    path = tmp_path / "flow.yml"
    settings = "  max_parallel: ${WORKERS}\n  agent_timeout_secs: ${TIMEOUT}\n"
    path.write_text(
        MINIMAL.replace("  agent_template:", settings + "  agent_template:")
        + "env_files: [.env]\nprofiles:\n  big:\n    WORKERS: 16\n  small:\n    WORKERS: 1\n"
    )

    (domain,) = load_workflow(path, env={}, profile="big").domains
    assert domain.map.max_parallel == 16
    assert domain.map.agent_timeout == 45
    assert load_workflow(path, env={}, profile="small").domains[0].map.max_parallel == 1


async def test_build_graph_secrets_reach_steps_and_are_masked_in_results_and_events(
    repo: Path,
) -> None:
    value = "tf-s3cret-api-8e2f"
    events: list[dict[str, Any]] = []
    domain = Domain(
        "docs",
        map=Map(
            input=["x"],
            agent=[Shell('echo "token=$TOKEN" > token.txt && git add . && git commit -qm t'),
                   Shell('echo "held $TOKEN" >&2; exit 4')],
        ),
    )  # fmt: skip
    graph = build_graph(
        [domain], secrets={"TOKEN": value}, auto_approve=True, event_sinks=[events.append]
    )

    state = await graph.ainvoke({"task": "docs", "repo": str(repo)})

    (result,) = state["domain_results"]["docs"]["agents"]
    assert result["status"] == "failed"
    assert "held ***" in result["output_tail"]
    assert value not in json.dumps(state, default=str)
    assert value not in json.dumps(events, default=str)
    branch = result["branch"]
    assert run_git(repo, "show", f"{branch}:token.txt").strip() == f"token={value}"


def test_build_graph_refuses_a_secret_that_is_no_variable_name() -> None:
    from treefork.errors import DefinitionError

    domain = Domain("docs", map=Map(input=["x"], agent=[Shell("true")]))
    with pytest.raises(DefinitionError, match=r"secrets\['not a name'\]"):
        build_graph([domain], secrets={"not a name": "v"})
