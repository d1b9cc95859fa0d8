"""The domain sub-graph: prepare -> setup -> map <-> agent -> reduce -> tests -> integrate
-> finish.

Each domain's compiled sub-graph *is* that domain's node in the treefork graph: LangGraph
runs the domains the dispatcher sends concurrently, checkpoints each under a namespace that
names it (``docs:<task id>``), and Studio draws, inspects, resumes and forks it.

The map phase is a loop: the ``map`` node sends one ``agent`` task per work item, in waves
(:func:`wave_size`), and runs again once a wave is done; each finished agent task's result
is in LangGraph's checkpoint the moment it finishes, so a resumed job never runs it again.

Every node takes the domain state and returns an update. A node that fails sets
``failed_phase`` and the graph goes straight to ``finish``, which turns the state into a
:class:`~treefork.state.DomainResult` for the parent graph (``domain_results``). An
unexpected error in a node fails the domain, never its siblings.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Send

from treefork.context import TreeforkContext, run_settings
from treefork.core.aggregate import domain_status
from treefork.core.items import WorkItem, item_label
from treefork.core.naming import domain_branch
from treefork.core.policy import ItemCounts
from treefork.domain import CommandItems, Domain, JsonFile
from treefork.errors import (
    DiskFullError,
    JobLockedError,
    MergeConflictError,
    TreeforkError,
    WorktreeError,
    disk_full_in,
)
from treefork.git.merge import changed_files
from treefork.home import treefork_home
from treefork.phases.integrate import merge_domain_into_session, retire_domain_worktree
from treefork.phases.map import (
    MapRun,
    close_map_run,
    failed_result,
    open_map_run,
    run_agent_task,
)
from treefork.phases.reduce import map_summary, run_reduce, run_tests
from treefork.phases.resume import (
    decode_items,
    encode_items,
    record_phase_head,
    record_setup,
    resume_reduce,
    resume_setup,
    resume_tests,
)
from treefork.phases.setup import load_domain_items, run_setup
from treefork.runtime import JobRuntime, open_job_runtime
from treefork.settings import GraphSettings
from treefork.state import (
    AgentResult,
    AgentTask,
    DomainInput,
    DomainOutput,
    DomainResult,
    DomainState,
    JobIdentity,
)
from treefork.steps import Usage

__all__ = ("build_domain_graph", "crashed_domain_result", "route_map", "wave_size")

logger = logging.getLogger(__name__)

_TAIL = 4000
_WAVE = 500
_MAX_WAVES = 8
_JOB_KEYS = tuple(JobIdentity.__annotations__)


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
        and not isinstance(map_.input, str | JsonFile | CommandItems)
        and map_.isolation == "worktree"
        and not domain.setup
        and not domain.reduce
        and domain.tests_step is None
        and not settings.keep_worktrees
    )


async def _job(
    state: Mapping[str, Any], settings: GraphSettings, *, worktree_needed: bool = True
) -> tuple[JobRuntime, Domain]:
    """The open job (opened here after a crash) and this domain's definition."""
    current = run_settings(settings)
    runtime = await open_job_runtime(state, settings, current)
    domain = runtime.settings.domain(str(state["domain"]))
    worktree = state.get("worktree")
    if worktree_needed and worktree and not await anyio.Path(worktree).exists():
        # Removed since the domain was prepared (``worktree gc`` after a crash): its
        # branch holds the work, so the worktree is made again on it (once, though the
        # domain's agent tasks all find it missing at once).
        async with runtime.opening(f"worktree:{domain.name}"):
            if not await anyio.Path(worktree).exists():
                await runtime.worktrees.domain_worktree(domain.name, runtime.base_commit)
    return runtime, domain


async def prepare(state: DomainState, settings: GraphSettings) -> dict[str, Any]:
    """Create the domain branch, and its worktree when the domain uses one."""
    runtime, domain = await _job(state, settings)
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


async def setup(state: DomainState, settings: GraphSettings) -> dict[str, Any]:
    """Run setup steps, then load and select the work items."""
    runtime, domain = await _job(state, settings)
    if not state.get("worktree"):
        return await _listed_items(runtime, domain, state)
    worktree = _worktree(state)
    variables = dict(state.get("variables") or {})
    recorded = await resume_setup(runtime, domain.name, worktree)
    if recorded is not None:
        return _setup_update(recorded["base_commit"], recorded["items"], recorded["variables"])
    _phase(runtime, state, "setup", "phase_start")
    outcome = await run_setup(runtime, domain, worktree, variables)
    _phase(runtime, state, "setup", "phase_end", ok=outcome.ok)
    usage = _phase_usage(state, outcome.usage)
    if not outcome.ok:
        return {**usage, **_failed("setup", outcome.error or "setup failed")}
    try:
        setup_commit = await runtime.worktrees.head(worktree)
        items = await load_domain_items(domain, worktree)
    except TreeforkError as error:
        return {**usage, **_failed("map", error)}
    await record_setup(runtime, domain.name, setup_commit, items, variables)
    return {**usage, **_setup_update(setup_commit, items, variables)}


def _phase_usage(state: DomainState, usage: Usage) -> dict[str, Any]:
    """The state update adding what a setup, reduce or tests step spent (Claude steps)."""
    before = state.get("phase_usage") or {}
    return {
        "phase_usage": {
            "tokens": int(before.get("tokens", 0)) + usage.tokens,
            "cost": float(before.get("cost", 0.0)) + usage.cost,
        }
    }


def _setup_update(
    setup_commit: str, items: Sequence[WorkItem], variables: dict[str, Any]
) -> dict[str, Any]:
    return {"setup_commit": setup_commit, "items": encode_items(items), "variables": variables}


async def _listed_items(
    runtime: JobRuntime, domain: Domain, state: DomainState
) -> dict[str, Any]:
    """Setup of a domain without a worktree: no steps, items listed in the definition."""
    recorded = await runtime.recorder.domain(domain.name)
    facts = (recorded or {}).get("setup")
    if facts:
        items = decode_items(facts["items"])
        return _setup_update(facts["base_commit"], items, dict(facts["variables"]))
    try:
        setup_commit = await _head(runtime, state)
        items = await load_domain_items(domain, runtime.repo.root)
    except TreeforkError as error:
        return _failed("map", error)
    await record_setup(runtime, domain.name, setup_commit, items, {})
    return _setup_update(setup_commit, items, {})


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


def wave_size(total: int) -> int:
    """Agent tasks sent at once: 500, or more for large maps so that a map takes at most
    eight waves (each wave is two steps of the domain's recursion limit). A wave of Sends
    costs LangGraph time that grows faster than its size; bounded waves keep it linear."""
    return max(_WAVE, -(-total // _MAX_WAVES))


async def _map_run(
    runtime: JobRuntime, domain: Domain, state: Mapping[str, Any], counts: tuple[int, int]
) -> MapRun:
    worktree = str(state.get("worktree") or "")
    assert domain.map is not None
    fresh = MapRun(
        runtime=runtime,
        domain=domain,
        map=domain.map,
        branch=state["branch"],
        worktree=Path(worktree) if worktree else runtime.repo.root,
        base_commit=state["setup_commit"],
        variables=dict(state.get("variables") or {}),
        retry=frozenset(state.get("retry_items") or ()),
        counts=ItemCounts(*counts),
    )
    return await open_map_run(fresh)


def _counts_of(agents: Mapping[str, AgentResult]) -> tuple[int, int]:
    succeeded = sum(agent["status"] == "succeeded" for agent in agents.values())
    failed = sum(agent["status"] == "failed" for agent in agents.values())
    return succeeded, failed


async def map_phase(state: DomainState, settings: GraphSettings) -> dict[str, Any]:
    """Send the next wave of agent tasks; once every wave is done, end the map phase."""
    runtime, domain = await _job(state, settings)
    items = state.get("items") or []
    wave = state.get("wave") or 0
    if domain.map is None:
        return {"map_done": True}
    update: dict[str, Any] = {}
    if wave == 0:
        _phase(runtime, state, "map", "phase_start", items=len(items))
        if state.get("retry_items") and state.get("worktree"):
            # A DLQ retry starts from the worktree as synced to the branch tip.
            update["map_checked_out"] = await _head(runtime, state)
    size = wave_size(len(items))
    if wave * size < len(items):
        run = await _map_run(runtime, domain, state, _counts_of(state.get("agents") or {}))
        if (wave + 1) * size >= len(items):  # the last wave
            run.unprepared = len(items) - wave * size
        return {**update, "wave": wave + 1}
    return {**update, **await _end_map(runtime, domain, {**state, **update})}  # type: ignore[typeddict-item]


async def _end_map(runtime: JobRuntime, domain: Domain, state: DomainState) -> dict[str, Any]:
    run = runtime.map_runs.get(domain.name)
    if run is not None:
        await close_map_run(run)
    results = state.get("agents") or {}
    summary = map_summary(results)
    _phase(
        runtime,
        state,
        "map",
        "phase_end",
        **{k: summary[k] for k in ("successful", "failed", "skipped", "total")},
    )
    variables = {**(state.get("variables") or {}), "map": summary}
    update: dict[str, Any] = {"map_done": True, "variables": variables}
    if state.get("worktree"):
        # A DLQ retry started from a synced worktree at the branch tip; a first run (or a
        # resumed one) from a worktree whose files still match the post-setup commit.
        checked_out = state.get("map_checked_out") or state["setup_commit"]
        try:
            await runtime.worktrees.sync_worktree(_worktree(state), checked_out)
        except TreeforkError as error:
            return {**update, **_failed("map", error)}
    await _record_head(runtime, state, "map")
    return update


def route_map(state: DomainState) -> list[Send] | str:
    """After ``map``: the next wave of agent tasks, or on to reduce (finish on failure)."""
    if state.get("failed_phase"):
        return "finish"
    if state.get("map_done"):
        return "reduce"
    items = state.get("items") or []
    size = wave_size(len(items))
    wave = state["wave"]
    start = (wave - 1) * size
    counts = list(_counts_of(state.get("agents") or {}))
    last = wave * size >= len(items)
    job = {key: state[key] for key in _JOB_KEYS}  # type: ignore[literal-required]
    common = {
        **job,
        "setup_commit": state["setup_commit"],
        "branch": state["branch"],
        "worktree": state.get("worktree") or "",
        "total": len(items),
        "counts": counts,
        "last_wave": last,
        "variables": state.get("variables") or {},
        "retry_items": state.get("retry_items") or [],
    }
    return [Send("agent", {**common, "item": item}) for item in items[start : wave * size]]


async def agent(task: AgentTask, settings: GraphSettings) -> dict[str, Any]:
    """One map agent: its item's steps in its own worktree, merged into the domain branch."""
    runtime, domain = await _job(task, settings)
    run = await _map_run(runtime, domain, task, (task["counts"][0], task["counts"][1]))
    (work,) = decode_items([task["item"]])
    result = await run_agent_task(run, work, task["total"])
    return {"agents": {work.item_id: result}}


async def reduce(state: DomainState, settings: GraphSettings) -> dict[str, Any]:
    """Run the reduce steps with the map results in scope."""
    runtime, domain = await _job(state, settings)
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
    usage = _phase_usage(state, outcome.usage)
    if not outcome.ok:
        failed = _failed("reduce", outcome.error or "reduce failed")
        return {"variables": variables, **usage, **failed}
    await record_phase_head(runtime, domain.name, "reduce", _worktree(state), variables=variables)
    return {"variables": variables, **usage}


async def tests(state: DomainState, settings: GraphSettings) -> dict[str, Any]:
    """Run the domain's tests command (if any): it decides ``tests_passed``."""
    runtime, domain = await _job(state, settings)
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


def _merged_items(state: DomainState) -> list[str]:
    """Labels of the items whose commits the domain merged, in item order."""
    agents = sorted((state.get("agents") or {}).values(), key=lambda agent: agent["item_index"])
    return [
        item_label(WorkItem(agent["item"], agent["item_id"], agent["item_index"]))
        for agent in agents
        if agent["status"] == "succeeded" and agent["commits"]
    ]


async def integrate(state: DomainState, settings: GraphSettings) -> dict[str, Any]:
    """Merge the domain into the session branch, unless the domain failed."""
    runtime, _ = await _job(state, settings)
    if domain_status(failed_phase=None, **_counts(state)) == "failed":
        return {"merged_into_session": False}
    head = await _head(runtime, state)
    try:
        merged = await merge_domain_into_session(
            runtime, state["domain"], head, _merged_items(state)
        )
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


async def finish(state: DomainState, settings: GraphSettings) -> dict[str, Any]:
    """Turn the domain state into its result; retire the worktree of a merged domain."""
    # A finish cut off after retiring the worktree must not make it again.
    runtime, domain = await _job(state, settings, worktree_needed=False)
    run = runtime.map_runs.get(domain.name)
    if run is not None:  # the map phase failed before it ended
        await close_map_run(run)
    recorded = await _recorded_result(runtime, state)
    if recorded is not None:
        # finish ran to its end before a crash cut the checkpoint off: the same result
        # (its worktree may be retired already).
        return {"domain_results": {domain.name: recorded}}
    counts = _counts(state)
    status = domain_status(failed_phase=state.get("failed_phase"), **counts)
    files, kept = await _files_and_kept(runtime, state)
    phase = state.get("phase_usage") or {}
    agents = sorted((state.get("agents") or {}).values(), key=lambda agent: agent["item_index"])
    result: DomainResult = {
        "name": domain.name,
        "status": status,
        "critical": domain.critical,
        "branch": state.get("branch") or "",
        "worktree": state.get("worktree") or None,
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
        # Agents' use, and what setup and reduce steps spent.
        "tokens": sum(agent["tokens"] for agent in agents) + int(phase.get("tokens", 0)),
        "cost": sum(agent["cost"] for agent in agents) + float(phase.get("cost", 0.0)),
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
    return {"domain_results": {domain.name: result}}


async def _recorded_result(runtime: JobRuntime, state: DomainState) -> DomainResult | None:
    if state.get("retry_items"):
        return None
    recorded = await runtime.recorder.domain(state["domain"])
    result = (recorded or {}).get("result")
    return result if isinstance(result, dict) else None  # type: ignore[return-value]


async def _files_and_kept(runtime: JobRuntime, state: DomainState) -> tuple[list[str], list[str]]:
    """The files the domain changed, and the worktrees it keeps."""
    worktree = state.get("worktree") or None
    head: str | None = None
    if worktree:
        head = await runtime.worktrees.head(_worktree(state))
    elif state.get("branch"):  # a domain without a worktree
        head = await runtime.worktrees.branch_head(state["branch"])
    files = await changed_files(runtime.repo.root, runtime.base_commit, head) if head else []
    if not worktree:
        return files, []
    if not state.get("merged_into_session"):
        return files, [worktree]
    kept_path = await retire_domain_worktree(runtime, state["domain"], _worktree(state))
    if not kept_path:
        await runtime.recorder.resource_removed("worktree", worktree)
    return files, [kept_path] if kept_path else []


def crashed_domain_result(
    name: str, critical: bool, error: BaseException | str, started: float
) -> DomainResult:
    """The result of a domain whose sub-graph could not even finish."""
    return {
        "name": name,
        "status": "failed",
        "critical": critical,
        "branch": "",
        "worktree": None,
        "error": error if isinstance(error, str) else f"{type(error).__name__}: {error}",
        "failed_phase": "domain",
        "total": 0,
        "succeeded": 0,
        "failed": 0,
        "skipped": 0,
        "agents": [],
        "files_modified": [],
        "has_tests": False,
        "tests_passed": None,
        "tests_output": "",
        "merged_into_session": False,
        "kept_worktrees": [],
        "tokens": 0,
        "cost": 0.0,
        "agent_runs": 0,
        "started_at": started,
        "finished_at": time.time(),
    }


def _worktree(state: Mapping[str, Any]) -> Path:
    return Path(state["worktree"])


def _next(target: str) -> Any:
    def route(state: DomainState) -> str:
        return "finish" if state.get("failed_phase") else target

    route.__name__ = f"to_{target}"
    return route


def _unexpected(phase: str, error: Exception) -> str:
    logger.error("unexpected error in %s", phase, exc_info=error)
    return f"unexpected {type(error).__name__} in {phase}: {error}"


def _guarded(name: str, function: Any, on_error: Any) -> Any:
    """A node that turns an unexpected error into a failure (``on_error(input, message)``
    gives the update), so one domain's crash never cancels the domains beside it."""

    async def node(state: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = await function(state)
        except (GraphBubbleUp, JobLockedError, DiskFullError):
            raise
        except Exception as error:
            # A full disk stops the job as it is, to be resumed: it is nobody's failure.
            full = disk_full_in(error, default=treefork_home())
            if full is not None:
                raise full from error
            update: dict[str, Any] = on_error(state, _unexpected(name, error))
            return update
        return result

    node.__name__ = name
    return node


def _phase_failed(phase: str) -> Any:
    return lambda state, message: _failed(phase, message)


def _agent_failed(task: AgentTask, message: str) -> dict[str, Any]:
    (work,) = decode_items([task["item"]])
    return {"agents": {work.item_id: failed_result(work, message)}}


def _finish_failed(settings: GraphSettings) -> Any:
    def update(state: DomainState, message: str) -> dict[str, Any]:
        name = state["domain"]
        critical = settings.domain(name).critical
        started = state.get("started_at") or time.time()
        return {"domain_results": {name: crashed_domain_result(name, critical, message, started)}}

    return update


def build_domain_graph(
    domain: Domain, settings: GraphSettings
) -> CompiledStateGraph[DomainState, Any, DomainInput, DomainOutput]:
    """The compiled sub-graph of one domain, named after it.

    As a node of the treefork graph it inherits the caller's checkpointer (it is compiled
    without one of its own), so each domain has its own checkpoints under its namespace.
    Invoked on its own (``treefork dlq retry``) it runs without checkpoints.
    """
    builder: StateGraph[DomainState, Any, DomainInput, DomainOutput] = StateGraph(
        DomainState,
        context_schema=TreeforkContext,
        input_schema=DomainInput,
        output_schema=DomainOutput,
    )
    phases = {
        "prepare": prepare,
        "setup": setup,
        "map": map_phase,
        "reduce": reduce,
        "tests": tests,
        "integrate": integrate,
    }
    for name, function in phases.items():
        bound = functools.partial(function, settings=settings)
        builder.add_node(name, _guarded(name, bound, _phase_failed(name)))
    agent_node = _guarded("agent", functools.partial(agent, settings=settings), _agent_failed)
    builder.add_node("agent", agent_node, input_schema=AgentTask)  # type: ignore[call-overload]
    finish_node = functools.partial(finish, settings=settings)
    builder.add_node("finish", _guarded("finish", finish_node, _finish_failed(settings)))
    builder.add_edge(START, "prepare")
    builder.add_conditional_edges("prepare", _next("setup"), ["setup", "finish"])
    builder.add_conditional_edges("setup", _next("map"), ["map", "finish"])
    builder.add_conditional_edges("map", route_map, ["agent", "reduce", "finish"])
    builder.add_edge("agent", "map")
    builder.add_conditional_edges("reduce", _next("tests"), ["tests", "finish"])
    builder.add_conditional_edges("tests", _next("integrate"), ["integrate", "finish"])
    builder.add_edge("integrate", "finish")
    builder.add_edge("finish", END)
    return builder.compile(name=domain.name)
