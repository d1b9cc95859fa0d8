"""Every core dependency in pyproject.toml has a floor (``>=``)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent

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
