"""Fixtures for the Studio tests: a scratch copy of the sample project and a workflow file."""

from __future__ import annotations

from pathlib import Path

import pytest

from treefork.cli.demo import make_sample_repository

WORKFLOW = """\
name: studio-check
domains:
  docs:
    keywords: [docs]
    paths: ["docs/**"]
    map:
      input: "ls docs/*.md"
      max_parallel: 2
      agent_template:
        - shell: "printf '\\\\n_Reviewed in Studio._\\\\n' >> ${item}"
        - shell: "git commit -q -am 'docs: review ${item}'"
          commit_required: true
  api:
    keywords: [api]
    paths: ["src/calc/**"]
    map:
      input: "ls src/calc/*.py"
      max_parallel: 2
      agent_template:
        - shell: "printf '\\\\n# reviewed in Studio\\\\n' >> ${item}"
        - shell: "git commit -q -am 'api: review ${item}'"
          commit_required: true
"""
"""Two domains; each map agent appends a line to one file and commits it."""


@pytest.fixture
def sample_repo(tmp_path: Path) -> Path:
    """The sample project committed on main, with a repository-local git identity."""
    return make_sample_repository(tmp_path / "scratch")


@pytest.fixture
def workflow_file(tmp_path: Path) -> Path:
    """A treefork workflow file with a docs and an api domain."""
    path = tmp_path / "studio-check.yml"
    path.write_text(WORKFLOW)
    return path
