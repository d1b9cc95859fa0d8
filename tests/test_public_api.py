"""The public surface: __all__ matches what is exported, and the documented names exist."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import treefork


def test_all_matches_the_public_names_exported() -> None:
    # Names load on first use (PEP 562): resolve every one, then compare.
    for name in treefork.__all__:
        assert getattr(treefork, name) is not None
    public = {
        name
        for name, value in vars(treefork).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(treefork.__all__) - {"__version__"} == public
    assert len(treefork.__all__) == len(set(treefork.__all__))
    assert isinstance(treefork.__all__, tuple)
    assert set(treefork.__all__) <= set(dir(treefork))


def test_unknown_names_raise_attribute_error() -> None:
    assert not hasattr(treefork, "no_such_name")


def test_importing_treefork_loads_no_langgraph() -> None:
    code = (
        "import sys, treefork, treefork.domain, treefork.steps; print('langgraph' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_documented_names_exist() -> None:
    for name in ("build_graph", "Domain", "Map", "Shell", "AgentStep", "ParallelState"):
        assert hasattr(treefork, name)
    state = importlib.import_module("treefork.state")
    assert state.ParallelState is treefork.ParallelState
    nodes = importlib.import_module("treefork.nodes")
    for name in ("supervisor", "dispatcher", "aggregator", "merge_review"):
        assert callable(getattr(nodes, name))


def test_parallel_state_has_the_documented_keys() -> None:
    keys = set(treefork.ParallelState.__annotations__)
    assert {
        "task",
        "repo",
        "base_branch",
        "job_id",
        "domains",
        "domain_results",
        "aggregated_files",
        "all_tests_passed",
        "budget",
        "failures",
        "merge",
    } <= keys
