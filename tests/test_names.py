"""treefork's public names never clash with LangGraph's, and the old ones still work, once,
with a deprecation warning."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import pytest

import treefork

LANGGRAPH_MODULES = (
    "langgraph.types",
    "langgraph.graph",
    "langgraph.errors",
    "langgraph.func",
    "langgraph.constants",
    "langgraph.config",
    "langgraph.runtime",
    "langgraph.channels",
    "langgraph.pregel",
    "langgraph.checkpoint.base",
    "langgraph.store.base",
)


def _langgraph_names() -> set[str]:
    names: set[str] = set()
    for name in LANGGRAPH_MODULES:
        module = importlib.import_module(name)
        public = getattr(module, "__all__", None) or [n for n in dir(module) if n[:1] != "_"]
        names.update(public)
    return names


def test_no_public_name_of_treefork_is_one_of_langgraphs() -> None:
    langgraph_names = _langgraph_names()
    assert "Command" in langgraph_names and "StateGraph" in langgraph_names  # the check works
    assert set(treefork.__all__) & langgraph_names == set()


def test_the_old_command_name_warns_and_is_the_new_class() -> None:
    with pytest.warns(DeprecationWarning, match="treefork.Command is deprecated.*CommandItems"):
        old = treefork.Command  # type: ignore[attr-defined]
    assert old is treefork.CommandItems
    assert "Command" not in treefork.__all__


def test_build_graph_store_is_now_job_store_and_the_old_keyword_warns(tmp_path: Path) -> None:
    from treefork.store import JobStore

    domain = treefork.Domain("d", map=treefork.Map(input=["a"], agent=[treefork.Shell("true")]))
    store = JobStore(tmp_path / "jobs.db")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            treefork.build_graph([domain], job_store=store)
        with pytest.warns(DeprecationWarning, match=r"store=\) is deprecated.*job_store="):
            treefork.build_graph([domain], store=store)
        with pytest.raises(TypeError, match="both"):
            treefork.build_graph([domain], store=store, job_store=store)
    finally:
        store.close()


def test_usage_is_one_type() -> None:
    state = importlib.import_module("treefork.state")
    assert treefork.Usage is importlib.import_module("treefork.steps").Usage
    assert "Usage" not in state.__dict__  # no second type of that name
    assert set(state.BudgetUsage.__annotations__) == {"tokens", "cost", "agent_runs", "wall_time"}
    with pytest.warns(DeprecationWarning, match="treefork.state.Usage is deprecated.*BudgetUsage"):
        old = state.Usage
    assert old is state.BudgetUsage
