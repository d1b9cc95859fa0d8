"""The floors in pyproject.toml are real: the core runs on the lowest versions it allows.

A fresh virtual environment gets every core dependency at exactly its lowest allowed
version (``name==floor`` for each ``name>=floor``), treefork's wheel, and the test tools;
then the tests of the core (graph, phases, workflows, git, runners, store, command line)
run there. Installing needs the package registry.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent

CORE_TESTS = (
    "tests/core",
    "tests/workflow",
    "tests/git",
    "tests/runners",
    "tests/store",
    "tests/test_graph.py",
    "tests/test_subgraphs.py",
    "tests/test_resume.py",
    "tests/test_error_policy.py",
    "tests/test_steps_in_phases.py",
    "tests/cli/test_run.py",
)
"""Tests that need nothing beyond the core install."""


def lowest_constraints() -> list[str]:
    """``name==floor`` for every core dependency of pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = []
    for text in project["dependencies"]:
        requirement = Requirement(text)
        floors = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        assert floors, f"{text}: every core dependency has a floor (>=)"
        pins.append(f"{requirement.name}=={floors[0]}")
    return pins


def test_every_core_dependency_has_a_floor() -> None:
    assert len(lowest_constraints()) >= 10


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_core_tests_pass_on_the_lowest_allowed_versions(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(dist), str(ROOT)],
        check=True,
    )  # fmt: skip
    wheel = next(dist.glob("treefork-*.whl"))
    constraints = tmp_path / "lowest.txt"
    constraints.write_text("\n".join(lowest_constraints()) + "\n")
    venv = tmp_path / "lowest"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    installed = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-c", str(constraints), str(wheel),
         "pytest", "pytest-asyncio", "pytest-timeout", "hypothesis"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]
    versions = subprocess.run(
        [python, "-m", "pip", "freeze"], capture_output=True, text=True, check=True
    ).stdout.lower()
    for pin in lowest_constraints():
        assert pin.lower().replace("_", "-") in versions.replace("_", "-"), pin
    done = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         "-W", "ignore::DeprecationWarning", "-W", "ignore::PendingDeprecationWarning",
         "-m", "not slow", *CORE_TESTS],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=1100,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
