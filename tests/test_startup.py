"""Startup: ``treefork validate`` imports only what it needs."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

# The module, not the ``app`` object that ``treefork.cli`` re-exports under the same name.
cli = importlib.import_module("treefork.cli.app")

WORKFLOW = """\
domains:
  docs:
    map:
      input: pages.json
      agent_template:
        - shell: echo ${item}
"""


def test_every_command_is_mapped_to_the_module_that_defines_it() -> None:
    cli._register(None)
    defined: dict[str, str] = {}
    for info in cli.app.registered_commands:
        assert info.callback is not None
        name = info.name or info.callback.__name__.replace("_", "-")
        defined[name] = info.callback.__module__
    for group in cli.app.registered_groups:
        assert group.name is not None and group.typer_instance is not None
        callbacks = [command.callback for command in group.typer_instance.registered_commands]
        defined[group.name] = next(c.__module__ for c in callbacks if c is not None)
    assert {name: f"treefork.cli.{module}" for name, module in cli._COMMAND_MODULES.items()} == (
        defined
    )
    assert set(cli._MODULES) == set(cli._COMMAND_MODULES.values())


def test_validate_loads_neither_langgraph_nor_gitpython(tmp_path: Path) -> None:
    workflow = tmp_path / "flow.yml"
    workflow.write_text(WORKFLOW)
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print(sorted({m.split('.')[0] for m in sys.modules} "
        "& {'langgraph', 'langchain_core', 'git', 'sqlite3'})))\n"
        f"sys.argv = ['treefork', 'validate', {str(workflow)!r}]\n"
        "from treefork.cli.app import main\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"
