"""The domain sub-graph: prepare -> setup -> map -> reduce -> tests -> integrate -> finish.

Every node takes the domain state and the config (which carries the job runtime) and
returns an update. A node that fails sets ``failed_phase`` and the graph goes straight to
``finish``, which turns the state into a :class:`~treefork.state.DomainResult`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from treefork.core.aggregate import domain_status
from treefork.core.naming import domain_branch
from treefork.domain import Command, Domain, JsonFile
from treefork.errors import MergeConflictError, TreeforkError, WorktreeError
from treefork.git.merge import changed_files
from treefork.phases.integrate import merge_domain_into_session, retire_domain_worktree
from treefork.phases.map import MapRun, run_map_phase
from treefork.phases.reduce import map_summary, run_reduce, run_tests
from treefork.phases.resume import (
    decode_items,
    record_phase_head,
    record_setup,
    resume_map,
    resume_reduce,
    resume_setup,
    resume_tests,
)
from treefork.phases.setup import load_domain_items, run_setup
from treefork.runtime import JobRuntime, runtime_from
from treefork.settings import GraphSettings
from treefork.state import DomainResult, DomainState

__all__ = ("build_domain_graph",)

_TAIL = 4000


def _failed(phase: str, error: BaseException | str) -> dict[str, Any]:
    return {"failed_phase": phase, "error": str(error)}


def _phase(runtime: JobRuntime, state: DomainState, phase: str, event: str, **fields: Any) -> None:
    runtime.emitter.emit(event, domain=state["domain"], phase=phase, **fields)


def needs_worktree(domain: Domain, settings: GraphSettings) -> bool:
    """Whether a domain uses a worktree of its own: for setup, reduce or tests steps, to read
    its work items from files or a command, for read-only agents, or to be kept. A domain
    with a map of listed items alone needs only its branch (agents merge into it in the
    object store)."""
    map_ = domain.map
    return not (
        map_ is not None
        and not isinstance(map_.input, str | JsonFile | Command)
        and map_.isolation == "worktree"
        and not domain.setup
        and not domain.reduce
        and domain.tests_step is None
        and not settings.keep_worktrees
    )


async def prepare(state: DomainState, config: RunnableConfig) -> dict[str, Any]:
    """Create the domain branch, and its worktree when the domain uses one."""
    runtime = runtime_from(config)
    domain = runtime.settings.domain(state["domain"])
    runtime.emitter.emit("domain_start", domain=domain.name, critical=domain.critical)
    update: dict[str, Any] = {"started_at": time.time(), "variables": {}}
    if not needs_worktree(domain, runtime.settings):
        branch = domain_branch(runtime.job_id, domain.name)
        try:
            await runtime.worktrees.create_branch(branch, runtime.base_commit)
        except TreeforkError as error:
            return {**update, **_failed("prepare", error)}
        await runtime.recorder.resource("branch", branch, role="domain")
        return {**update, "worktree": "", "branch": branch}
    try:
        worktree = await runtime.worktrees.domain_worktree(domain.name, runtime.base_commit)
    except TreeforkError as error:
        return {**update, **_failed("prepare", error)}
    runtime.emitter.emit("worktree", action="created", domain=domain.name, path=str(worktree.path))
    await runtime.recorder.resource("worktree", str(worktree.path), role="domain")
    await runtime.recorder.resource("branch", str(worktree.branch), role="domain")
    return {**update, "worktree": str(worktree.path), "branch": worktree.branch}


async def setup(state: DomainState, config: RunnableConfig) -> dict[str, Any]:
    """Run setup steps, then load and select the work items."""
    runtime = runtime_from(config)
    domain = runtime.settings.domain(state["domain"])
    if not state.get("worktree"):
        return await _listed_items(runtime, domain, state)
    worktree = _worktree(state)
    variables = dict(state.get("variables") or {})
    recorded = await resume_setup(runtime, domain.name, worktree)
    if recorded is not None:
        return recorded
    _phase(runtime, state, "setup", "phase_start")
    outcome = await run_setup(runtime, domain, worktree, variables)
    _phase(runtime, state, "setup", "phase_end", ok=outcome.ok)
    if not outcome.ok:
        return _failed("setup", outcome.error or "setup failed")
    try:
        base_commit = await runtime.worktrees.head(worktree)
        items = await load_domain_items(domain, worktree)
    except TreeforkError as error:
        return _failed("map", error)
    await record_setup(runtime, domain.name, base_commit, items, variables)
    return {"base_commit": base_commit, "items": items, "variables": variables}


async def _listed_items(
    runtime: JobRuntime, domain: Domain, state: DomainState
) -> dict[str, Any]:
    """Setup of a domain without a worktree: no steps, items listed in the definition."""
    recorded = await runtime.recorder.domain(domain.name)
    facts = (recorded or {}).get("setup")
    if facts:
        return {
            "base_commit": facts["base_commit"],
            "items": decode_items(facts["items"]),
            "variables": dict(facts["variables"]),
        }
    try:
        base_commit = await _head(runtime, state)
        items = await load_domain_items(domain, runtime.repo.root)
    except TreeforkError as error:
        return _failed("map", error)
    await record_setup(runtime, domain.name, base_commit, items, {})
    return {"base_commit": base_commit, "items": items, "variables": {}}


async def _head(runtime: JobRuntime, state: DomainState) -> str:
    """The domain branch's tip (read in its worktree when it has one)."""
    if state.get("worktree"):
        return await runtime.worktrees.head(_worktree(state))
    head = await runtime.worktrees.branch_head(state["branch"])
    if head is None:
        raise WorktreeError(state["branch"], "the domain branch is gone")
    return head


async def _record_head(runtime: JobRuntime, state: DomainState, phase: str, **facts: Any) -> None:
    if state.get("worktree"):
        await record_phase_head(runtime, state["domain"], phase, _worktree(state), **facts)
    elif runtime.recorder.enabled:
        head = await _head(runtime, state)
        await runtime.recorder.phase_done(state["domain"], phase, {"head": head, **facts})


async def map_phase(state: DomainState, config: RunnableConfig) -> dict[str, Any]:
    """Run one agent per item; then bring the domain worktree up to the merged work."""
    runtime = runtime_from(config)
    domain = runtime.settings.domain(state["domain"])
    assert domain.map is not None
    items = state.get("items") or []
    retry = frozenset(state.get("retry_items") or ())
    recorded = await resume_map(runtime, domain.name, retry=bool(retry))
    if recorded is not None:
        return {
            "agents": recorded,
            "variables": {**(state.get("variables") or {}), "map": map_summary(recorded)},
        }
    _phase(runtime, state, "map", "phase_start", items=len(items))
    # A DLQ retry starts from a synced worktree at the branch tip; a first run (or a resumed
    # one) from a worktree whose files still match the post-setup commit.
    has_worktree = bool(state.get("worktree"))
    checked_out = await _head(runtime, state) if retry else state["base_commit"]
    run = MapRun(
        runtime=runtime,
        domain=domain,
        map=domain.map,
        branch=state["branch"],
        worktree=_worktree(state) if has_worktree else runtime.repo.root,
        base_commit=state["base_commit"],
        variables=dict(state.get("variables") or {}),
        retry=retry,
    )
    results = await run_map_phase(run, items)
    summary = map_summary(results)
    _phase(
        runtime,
        state,
        "map",
        "phase_end",
        **{k: summary[k] for k in ("successful", "failed", "skipped", "total")},
    )
    variables = {**(state.get("variables") or {}), "map": summary}
    if has_worktree:
        try:
            await runtime.worktrees.sync_worktree(_worktree(state), checked_out)
        except TreeforkError as error:
            return {"agents": results, "variables": variables, **_failed("map", error)}
    await _record_head(runtime, state, "map")
    return {"agents": results, "variables": variables}


async def reduce(state: DomainState, config: RunnableConfig) -> dict[str, Any]:
    """Run the reduce steps with the map results in scope."""
    runtime = runtime_from(config)
    domain = runtime.settings.domain(state["domain"])
    variables = dict(state.get("variables") or {})
    if not state.get("worktree"):  # no reduce steps
        await _record_head(runtime, state, "reduce", variables=variables)
        return {"variables": variables}
    rerun = bool(state.get("retry_items"))
    recorded = await resume_reduce(runtime, domain.name, _worktree(state), rerun=rerun)
    if recorded is not None:
        return {"variables": recorded}
    _phase(runtime, state, "reduce", "phase_start")
    outcome = await run_reduce(runtime, domain, _worktree(state), variables)
    _phase(runtime, state, "reduce", "phase_end", ok=outcome.ok)
    if not outcome.ok:
        return {"variables": variables, **_failed("reduce", outcome.error or "reduce failed")}
    await record_phase_head(runtime, domain.name, "reduce", _worktree(state), variables=variables)
    return {"variables": variables}


async def tests(state: DomainState, config: RunnableConfig) -> dict[str, Any]:
    """Run the domain's tests command (if any): it decides ``tests_passed``."""
    runtime = runtime_from(config)
    domain = runtime.settings.domain(state["domain"])
    if domain.tests_step is None:
        return {"tests_passed": None}
    recorded = await resume_tests(runtime, domain.name, rerun=bool(state.get("retry_items")))
    if recorded is None:
        _phase(runtime, state, "tests", "phase_start")
        outcome = await run_tests(
            runtime, domain, _worktree(state), dict(state.get("variables") or {})
        )
        assert outcome is not None
        _phase(runtime, state, "tests", "phase_end", ok=outcome.ok)
        error = None if outcome.ok else str(outcome.error or "tests failed")
        recorded = {"passed": outcome.ok, "output": outcome.output_tail[-_TAIL:], "error": error}
        await runtime.recorder.phase_done(domain.name, "tests", recorded)
    update: dict[str, Any] = {
        "tests_passed": recorded["passed"],
        "tests_output": recorded["output"],
    }
    if not recorded["passed"]:
        update.update(_failed("tests", recorded["error"] or "tests failed"))
    return update


def _counts(state: DomainState) -> dict[str, int]:
    agents = (state.get("agents") or {}).values()
    return {
        "total": len(agents),
        "succeeded": sum(agent["status"] == "succeeded" for agent in agents),
        "failed": sum(agent["status"] == "failed" for agent in agents),
        "skipped": sum(agent["status"] == "skipped" for agent in agents),
    }


async def integrate(state: DomainState, config: RunnableConfig) -> dict[str, Any]:
    """Merge the domain into the session branch, unless the domain failed."""
    runtime = runtime_from(config)
    if domain_status(failed_phase=None, **_counts(state)) == "failed":
        return {"merged_into_session": False}
    head = await _head(runtime, state)
    try:
        merged = await merge_domain_into_session(runtime, state["domain"], head)
    except MergeConflictError as conflict:
        runtime.emitter.emit(
            "conflict",
            domain=state["domain"],
            paths=list(conflict.paths),
            into=runtime.session_branch,
        )
        return {"merged_into_session": False, **_failed("integrate", conflict)}
    await runtime.recorder.phase_done(state["domain"], "integrate", {"commit": merged.commit})
    return {"merged_into_session": True}


async def finish(state: DomainState, config: RunnableConfig) -> dict[str, Any]:
    """Turn the domain state into its result; retire the worktree of a merged domain."""
    runtime = runtime_from(config)
    domain = runtime.settings.domain(state["domain"])
    counts = _counts(state)
    status = domain_status(failed_phase=state.get("failed_phase"), **counts)
    files: list[str] = []
    kept: list[str] = []
    worktree = state.get("worktree") or None
    head: str | None = None
    if worktree:
        head = await runtime.worktrees.head(_worktree(state))
    elif state.get("branch"):  # a domain without a worktree
        head = await runtime.worktrees.branch_head(state["branch"])
    if head is not None:
        files = await changed_files(runtime.repo.root, runtime.base_commit, head)
    if worktree:
        if state.get("merged_into_session"):
            kept_path = await retire_domain_worktree(runtime, _worktree(state))
            kept = [kept_path] if kept_path else []
            if not kept_path:
                await runtime.recorder.resource_removed("worktree", worktree)
        else:
            kept = [worktree]
    agents = sorted((state.get("agents") or {}).values(), key=lambda agent: agent["item_index"])
    result: DomainResult = {
        "name": domain.name,
        "status": status,
        "critical": domain.critical,
        "branch": state.get("branch") or "",
        "worktree": worktree,
        "error": state.get("error"),
        "failed_phase": state.get("failed_phase"),
        **counts,  # type: ignore[typeddict-item]
        "agents": agents,
        "files_modified": files,
        "has_tests": domain.tests_step is not None,
        "tests_passed": state.get("tests_passed"),
        "tests_output": state.get("tests_output", ""),
        "merged_into_session": bool(state.get("merged_into_session")),
        "kept_worktrees": kept,
        "tokens": sum(agent["tokens"] for agent in agents),
        "cost": sum(agent["cost"] for agent in agents),
        "agent_runs": sum(agent["attempts"] for agent in agents),
        "started_at": state.get("started_at", time.time()),
        "finished_at": time.time(),
    }
    await runtime.recorder.phase_done(domain.name, "result", result, status=status)
    runtime.emitter.emit(
        "domain_end",
        domain=domain.name,
        status=status,
        error=result["error"],
        **counts,
        files=files,
        tests_passed=result["tests_passed"],
    )
    return {"result": result}


def _worktree(state: DomainState) -> Path:
    return Path(state["worktree"])


def _next(target: str) -> Any:
    def route(state: DomainState) -> str:
        return "finish" if state.get("failed_phase") else target

    route.__name__ = f"to_{target}"
    return route


def build_domain_graph(name: str) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The compiled sub-graph of one domain.

    It is compiled with ``checkpointer=False``: it runs inside the dispatcher node, whose
    durability comes from the job store and git, and several domains run concurrently
    inside that one node.
    """
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(DomainState)
    order = ["prepare", "setup", "map", "reduce", "tests", "integrate"]
    functions = [prepare, setup, map_phase, reduce, tests, integrate]
    for node, function in zip(order, functions, strict=True):
        builder.add_node(node, function)
    builder.add_node("finish", finish)
    builder.add_edge(START, "prepare")
    for current, following in zip(order, [*order[1:], "finish"], strict=True):
        builder.add_conditional_edges(
            current,
            _next(following),
            [following, "finish"] if following != "finish" else ["finish"],
        )
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=False, name=f"domain:{name}")
