"""Optional parts: a missing extra is one line naming the pip command, before anything runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cliutil import environment
from gitutil import make_repo

from treefork.errors import MissingExtraError
from treefork.extras import EXTRAS, require

# Runs treefork's command line in a process where the named modules cannot be imported,
# as in an install without their extra.
WITHOUT = """\
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
sys.argv = ["treefork", *sys.argv[2:]]
from treefork.cli.app import main
main()
"""


def _treefork_without(
    modules: list[str], *args: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT, ",".join(modules), *args],
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_extra_is_installed_for_the_tests() -> None:
    for extra in EXTRAS:
        require(extra, "the tests")


def test_a_missing_extra_raises_an_import_error_naming_the_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ImportError, match=r"pip install 'treefork\[postgres\]'") as raised:
        require("postgres", "the PostgreSQL checkpointer")
    assert isinstance(raised.value, MissingExtraError)
    assert raised.value.modules == ("psycopg",)


def test_a_postgres_checkpointer_without_its_extra_is_refused_before_anything_runs(
    tmp_path: Path, treefork_home: Path
) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "hello\n"})
    workflow = tmp_path / "wf.yml"
    workflow.write_text(
        "name: pg\nmode: mapreduce\nmap:\n  input: \"printf 'a\\\\n'\"\n  agent_template:\n"
        "    - shell: echo ${item}\n",
        encoding="utf-8",
    )
    done = _treefork_without(
        ["langgraph.checkpoint.postgres"],
        "run", str(workflow), "--repo", str(repo), "--checkpointer", "postgres://localhost/x",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: --checkpointer postgres://... needs treefork's 'postgres' extra "
        "(langgraph.checkpoint.postgres is missing): pip install 'treefork[postgres]'"
    )
    assert not (treefork_home / "treefork.db").exists()  # no job recorded


def _one_item_workflow(tmp_path: Path) -> Path:
    workflow = tmp_path / "wf.yml"
    workflow.write_text(
        "name: cluster\nmode: mapreduce\nmap:\n  input: \"printf 'a\\\\n'\"\n  agent_template:\n"
        "    - shell: echo ${item}\n",
        encoding="utf-8",
    )
    return workflow


def test_the_ray_executor_without_its_extra_is_refused_before_anything_runs(
    tmp_path: Path, treefork_home: Path
) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "hello\n"})
    done = _treefork_without(
        ["ray"],
        "run", str(_one_item_workflow(tmp_path)), "--repo", str(repo), "--executor", "ray",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: --executor ray needs treefork's 'ray' extra (ray is missing): "
        "pip install 'treefork[ray]'"
    )
    assert not (treefork_home / "treefork.db").exists()


def test_the_ray_executor_class_without_its_extra_names_the_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import treefork.executors

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.delitem(sys.modules, "treefork.executors.ray", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'treefork\[ray\]'"):
        _ = treefork.executors.RayExecutor


def test_the_default_path_never_imports_ray(tmp_path: Path, treefork_home: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "hello\n"})
    # Ray made unimportable: a local run works all the same.
    done = _treefork_without(
        ["ray"],
        "run", str(_one_item_workflow(tmp_path)), "--repo", str(repo), "--yes",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--executor", "cluster"], "error: --executor 'cluster': expected local or ray"),
        (
            ["--executor", "ray"],
            "error: ray: no cluster address: give --ray-address (or "
            "RayExecutor(address=...)) or set RAY_ADDRESS",
        ),
    ],
)
def test_a_bad_executor_choice_is_refused_before_anything_runs(
    tmp_path: Path, treefork_home: Path, args: list[str], said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    repo = make_repo(tmp_path / "repo", {"README.md": "hello\n"})
    done = _treefork_without(
        [], "run", str(_one_item_workflow(tmp_path)), "--repo", str(repo), *args, cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == said
    assert "Traceback" not in done.stderr
    assert not (treefork_home / "treefork.db").exists()
