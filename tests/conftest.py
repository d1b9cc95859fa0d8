"""Fixtures shared by every test: an isolated treefork home and real git repositories."""

from __future__ import annotations

from pathlib import Path

import pytest
from gitutil import make_repo


@pytest.fixture(autouse=True)
def treefork_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own treefork home (worktrees, store, locks)."""
    home = tmp_path / "treefork-home"
    monkeypatch.setenv("TREEFORK_HOME", str(home))
    return home


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository on main with a README and a docs folder, one commit."""
    return make_repo(
        tmp_path / "repo",
        {
            "README.md": "# sample\n",
            "docs/index.md": "line 1\nline 2\nline 3\n",
            "src/app.py": "print('hello')\n",
        },
    )
