"""``treefork run``, ``validate`` and ``graph``: workflow files from the command line.

Exit codes: 0 the job succeeded; 1 it ran but failed (or only partly succeeded); 2 invalid
input (nothing executed, no worktree or branch created); 3 the job is running in another
process (its lock is held; nothing was changed); 130 interrupted.

Every run is recorded in the job store of the treefork home (the workflow file and the
options too, so that ``treefork resume JOB`` rebuilds the same graph) and holds the job's
lock until it ends.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.prompt import Confirm

from treefork.cli.app import app
from treefork.cli.console import make_console
from treefork.cli.lifecycle import run_async
from treefork.cli.progress import make_progress
from treefork.cli.render import print_summary
from treefork.errors import JobLockedError, TreeforkError, WorkflowError
from treefork.home import free_space, treefork_home

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

    from treefork.domain import Domain

# langgraph and the graph are imported only once a job runs: a bad workflow file is
# reported without loading them.

__all__ = (
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_LOCKED",
    "EXIT_OK",
    "compile_workflow",
    "job_report",
    "job_row",
    "settle_review",
)

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_LOCKED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

_err = make_console(stderr=True)


def _say(message: str) -> None:
    """A message on stderr, as plain text: never wrapped, so ``file:line:col`` stays whole."""
    print(message, file=sys.stderr, flush=True)


def _load(file: Path, profile: str | None = None) -> Any:
    from treefork.workflow import load_workflow

    try:
        return load_workflow(file, env=dict(os.environ), profile=profile)
    except WorkflowError as error:
        _say(str(error))
        raise typer.Exit(EXIT_INVALID) from None
    except (OSError, ValueError) as error:
        _say(f"cannot read workflow {file}: {getattr(error, 'strerror', None) or error}")
        raise typer.Exit(EXIT_INVALID) from None


_PROFILE_HELP = "The workflow's profile to use (default: $TREEFORK_PROFILE, else active_profile)."


@app.command()
def validate(
    files: list[Path] = typer.Argument(..., help="Workflow files (Prodigy or treefork format)."),
    profile: str = typer.Option(None, "--profile", help=_PROFILE_HELP),
) -> None:
    """Check workflow files and report every problem with file:line:column (exit 2 if any)."""
    invalid = 0
    for file in files:
        try:
            workflow = _load(file, profile)
        except typer.Exit:
            invalid += 1
            continue
        for warning in workflow.warnings:
            _say(f"warning: {warning}")
        names = ", ".join(domain.name for domain in workflow.domains)
        active = f", profile: {workflow.profile}" if workflow.profile else ""
        print(f"{file}: valid {workflow.format} workflow, domains: {names}{active}")
    if invalid:
        raise typer.Exit(EXIT_INVALID)


@app.command()
def graph(
    file: Path = typer.Argument(None, help="Workflow file; without it, the graph's shape alone."),
    mermaid: bool = typer.Option(False, "--mermaid", help="A Mermaid flowchart, not text."),
    profile: str = typer.Option(None, "--profile", help=_PROFILE_HELP),
) -> None:
    """Draw a workflow's graph: domains, phases and steps (text, or Mermaid)."""
    if file is not None:
        from treefork.cli.outline import workflow_mermaid, workflow_outline

        workflow = _load(file, profile)
        print(workflow_mermaid(workflow) if mermaid else workflow_outline(workflow))
        return
    from treefork.domain import Domain, Map
    from treefork.graph import build_graph
    from treefork.steps import Shell

    shape = build_graph([Domain("domain", map=Map(input=[], agent=[Shell("true")]))]).get_graph()
    if mermaid:
        print(shape.draw_mermaid())
        return
    for edge in shape.edges:
        arrow = "-.->" if edge.conditional else "-->"
        print(f"{edge.source} {arrow} {edge.target}")


def _is_postgres(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("postgres://", "postgresql://"))


def check_checkpointer(url: str | None) -> None:
    """Before anything is recorded: the checkpointer ``url`` names can be used here.

    Exits with 2 and one line naming the ``pip install`` command when its extra is missing.
    """
    from treefork.errors import MissingExtraError
    from treefork.extras import require

    if _is_postgres(url):
        try:
            require("postgres", "--checkpointer postgres://...")
        except MissingExtraError as error:
            _say(f"error: {error}")
            raise typer.Exit(EXIT_INVALID) from None


@contextlib.asynccontextmanager
async def _checkpointer(url: str | None, home: Path) -> AsyncIterator[Any]:
    if url is not None and _is_postgres(url):
        from treefork.extras import require

        require("postgres", "--checkpointer postgres://...")
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        async with AsyncPostgresSaver.from_conn_string(url) as saver:
            await saver.setup()
            yield saver
        return
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = url.removeprefix("sqlite:///") if url else str(home / "checkpoints.sqlite")
    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        yield saver


def _dlq_count(state: dict[str, Any], domains: Sequence[Domain]) -> int:
    """Failed items that went to the dead letter queue (``on_item_failure: skip`` sends
    none there: its failed items are only listed in ``failures``)."""
    skipping = {domain.name for domain in domains if domain.error_policy.on_item_failure == "skip"}
    return sum(
        1
        for failure in state.get("failures") or []
        if failure.get("item") is not None and failure.get("domain") not in skipping
    )


def job_report(state: dict[str, Any], domains: Sequence[Domain] = ()) -> dict[str, Any]:
    """The ``--json`` object: one line a script can rely on.

    Args:
        state: The job's final state.
        domains: The job's domains (their error policies decide what counts in ``dlq``).
    """
    dlq = _dlq_count(state, domains)
    per_domain = {
        name: {
            "status": result["status"],
            "succeeded": result["succeeded"],
            "failed": result["failed"],
            "skipped": result["skipped"],
            "files_modified": result["files_modified"],
            "tests_passed": result["tests_passed"],
            "merged_into_session": result["merged_into_session"],
            "error": result["error"],
        }
        for name, result in (state.get("domain_results") or {}).items()
    }
    merge = state.get("merge") or {}
    return {
        "job_id": state.get("job_id"),
        "status": state.get("status"),
        "session_branch": state.get("session_branch"),
        "merged": merge.get("status") == "merged",
        "merge": merge,
        "domains": per_domain,
        "aggregated_files": state.get("aggregated_files", []),
        "all_tests_passed": state.get("all_tests_passed"),
        "budget": state.get("budget"),
        "failures": state.get("failures", []),
        "dlq": dlq,
        "routing_message": state.get("routing_message"),
    }


def _decide_interactively(summary: dict[str, Any], console: Console) -> Any:
    console.print(
        f"\nmerge review: job {summary['job_id']} is [bold]{summary['status']}[/]; "
        f"{len(summary['files'])} files; review the result in {summary.get('session_worktree')}"
    )
    if summary["status"] == "failed":
        if Confirm.ask("The job failed. Merge anyway (override)?", default=False, console=console):
            return {"approve": True, "override": True}
        return "reject"
    return (
        "approve"
        if Confirm.ask(f"Merge into {summary['target_branch']}?", default=True, console=console)
        else "reject"
    )


def compile_workflow(
    workflow: Any, options: dict[str, Any], saver: Any, sinks: Sequence[Any], store: Any
) -> Any:
    """The graph of a workflow run (``run``, ``resume`` and ``dlq retry`` build the same one)."""
    from treefork.graph import build_graph

    return build_graph(
        workflow.domains,
        max_parallel=options["max_parallel"] or workflow.max_parallel or 8,
        budget=workflow.budget,
        auto_approve=options["yes"],
        checkpointer=saver,
        event_sinks=list(sinks),
        merge_steps=workflow.merge,
        merge_env=workflow.env,
        secrets=workflow.secrets,
        name=workflow.name,
        history=workflow.history,
        job_store=store,
        executor=options.get("executor_object"),
    )


def check_executor(options: dict[str, Any]) -> None:
    """Make the run's executor and connect it before anything is recorded; exits with 2 when
    it cannot be used (the extra missing, no cluster address, the cluster unreachable)."""
    kind = options.get("executor") or "local"
    if kind not in ("local", "ray"):
        _say(f"error: --executor {kind!r}: expected local or ray")
        raise typer.Exit(EXIT_INVALID)
    if kind == "local":
        options["executor_object"] = None
        return
    from treefork.errors import ExecutorError, MissingExtraError
    from treefork.extras import require

    try:
        require("ray", "--executor ray")
        from treefork.executors.ray import RayExecutor

        executor = RayExecutor(address=options.get("ray_address"))
        executor.connect_now(quiet=True)
    except (MissingExtraError, ExecutorError) as error:
        _say(f"error: {error}")
        raise typer.Exit(EXIT_INVALID) from None
    options["executor_object"] = executor


async def settle_review(
    compiled: Any,
    state: dict[str, Any],
    config: RunnableConfig,
    options: dict[str, Any],
    console: Console,
) -> dict[str, Any]:
    """Answer a merge review interrupt on a terminal, or report the merge as pending."""
    from langgraph.types import Command

    interrupts = state.get("__interrupt__") or []
    if interrupts and not options["no_merge"] and sys.stdin.isatty() and not options["json"]:
        decision = _decide_interactively(interrupts[0].value, console)
        return dict(await compiled.ainvoke(Command(resume=decision), config))
    if not interrupts:
        return state
    snapshot = await compiled.aget_state(config)
    state = dict(snapshot.values)
    state["merge"] = {
        "status": "pending",
        "target_branch": state.get("base_branch"),
        "session_branch": state.get("session_branch"),
        "commit": None,
        "message": f"not merged yet: run `treefork merge {state.get('job_id')}`, "
        f"`treefork resume {state.get('job_id')}` or `git merge {state.get('session_branch')}`",
    }
    return state


def job_row(workflow: Any, options: dict[str, Any]) -> dict[str, Any]:
    """What the job store keeps of a CLI run, so that ``resume`` rebuilds the same graph."""
    kept = (
        "max_parallel", "yes", "no_merge", "checkpointer", "executor", "ray_address", "profile",
    )  # fmt: skip
    return {
        "repo": str(options["repo"]),
        "task": options["task"],
        "workflow": workflow.name,
        "workflow_path": options.get("workflow_path"),
        "options": {key: options.get(key) for key in kept},
        "pid": os.getpid(),
    }


async def _execute(workflow: Any, options: dict[str, Any], console: Console) -> dict[str, Any]:
    import anyio

    from treefork.git.repository import check_checkout_ready, open_repository
    from treefork.nodes.supervisor import new_job_id
    from treefork.store import JobLock, shared_store

    # A repository the job cannot use is refused before anything is recorded or created.
    await check_checkout_ready(await open_repository(options["repo"]))
    home = treefork_home()
    options["job_id"] = options["job_id"] or new_job_id()
    # The job lock is held for the whole run: a second run or resume of it fails at once.
    live = None if not options["json"] else False
    with JobLock(home, options["job_id"]), make_progress(live=live) as progress:
        store = shared_store(home)
        row = job_row(workflow, options)
        await anyio.to_thread.run_sync(lambda: store.start_job(options["job_id"], **row))
        async with _checkpointer(options["checkpointer"], home) as saver:
            compiled = compile_workflow(workflow, options, saver, [progress], store)
            state_in: dict[str, Any] = {"task": options["task"], "repo": str(options["repo"])}
            state_in["job_id"] = options["job_id"]
            config: RunnableConfig = {"configurable": {"thread_id": options["job_id"]}}
            state = await _start(compiled, state_in, config)
            state = await settle_review(compiled, state, config, options, console)
    return dict(state)


async def _start(compiled: Any, state_in: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
    # The job id is the thread id, so `treefork resume JOB` finds the checkpoint. A job id
    # chosen by the supervisor is not known before it runs: pick it here instead.
    from treefork.nodes.supervisor import new_job_id

    job_id = state_in.setdefault("job_id", new_job_id())
    config["configurable"]["thread_id"] = job_id
    return dict(await compiled.ainvoke(state_in, config))


def _exit_code(state: dict[str, Any]) -> int:
    if state.get("status") not in ("succeeded", "skipped"):
        return EXIT_FAILED
    # Asked to merge, but the merge did not happen (a merge step failed, a conflict).
    merge_status = (state.get("merge") or {}).get("status")
    return EXIT_FAILED if merge_status in ("refused", "conflict") else EXIT_OK


@app.command()
def run(
    file: Path = typer.Argument(..., help="Workflow file (Prodigy MapReduce or treefork format)."),
    repo: Path = typer.Option(Path("."), "--repo", help="The git repository to work on."),
    task: str = typer.Option(
        None, "--task", help="The task (default: the workflow's task or name)."
    ),
    max_parallel: int = typer.Option(
        None, "--max-parallel", min=1, help="Agents at once, all domains."
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Merge without asking (never a failed job)."
    ),
    no_merge: bool = typer.Option(False, "--no-merge", help="Stop before merging; merge later."),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object on stdout at the end."
    ),
    job_id: str = typer.Option(None, "--job-id", help="Job id (default: generated)."),
    checkpointer: str = typer.Option(
        None, "--checkpointer", help="postgres://... or sqlite:///path."
    ),
    executor: str = typer.Option(
        "local",
        "--executor",
        help="Where map agents run: local (this machine) or ray (a Ray cluster).",
    ),
    ray_address: str = typer.Option(
        None, "--ray-address", help="The Ray cluster (default: $RAY_ADDRESS)."
    ),
    profile: str = typer.Option(None, "--profile", help=_PROFILE_HELP),
    debug: bool = typer.Option(False, "--debug", help="Log every command and show tracebacks."),
) -> None:
    """Run a workflow file on a repository."""
    if debug:
        logging.getLogger("treefork").setLevel(logging.DEBUG)
    if yes and no_merge:
        _say("--yes and --no-merge exclude each other")
        raise typer.Exit(EXIT_INVALID)
    workflow = _load(file, profile)
    check_checkpointer(checkpointer)
    console = make_console(stderr=as_json)
    options = {
        "repo": _repository_path(repo),
        "task": task or workflow.task or workflow.name,
        "max_parallel": max_parallel,
        "yes": yes,
        "no_merge": no_merge,
        "json": as_json,
        "job_id": job_id,
        "checkpointer": checkpointer,
        "workflow_path": str(file.resolve()),
        "executor": executor,
        "ray_address": ray_address,
        "profile": workflow.profile,
    }
    check_executor(options)
    state = _run_job(workflow, options, console)
    if as_json:
        print(json.dumps(job_report(state, workflow.domains), default=str))
    else:
        print_summary(state, console)
    raise typer.Exit(_exit_code(state))


def _repository_path(repo: Path) -> Path:
    try:
        path = repo.expanduser().resolve(strict=True)
    except (OSError, RuntimeError) as error:
        _say(f"error: repository {repo}: {getattr(error, 'strerror', None) or error}")
        raise typer.Exit(EXIT_INVALID) from None
    if not path.is_dir():
        _say(f"error: repository {repo}: not a directory")
        raise typer.Exit(EXIT_INVALID)
    return path


def _run_job(workflow: Any, options: dict[str, Any], console: Console) -> dict[str, Any]:
    """Run the job; every way it can end without a final state becomes an exit code."""
    try:
        return run_async(_execute(workflow, options, console))
    except KeyboardInterrupt:
        job = options.get("job_id") or "JOB"
        record_interruption(options.get("job_id"))
        _say(f"interrupted: finished agents are recorded; resume with `treefork resume {job}`")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except JobLockedError as error:
        _say(f"error: {error}")
        raise typer.Exit(EXIT_LOCKED) from None
    except TreeforkError as error:
        stop_if_disk_full(error, options.get("job_id"))
        _say(f"error: {error}")
        raise typer.Exit(EXIT_INVALID if _is_input_error(error) else EXIT_FAILED) from None
    except Exception as error:
        stop_if_disk_full(error, options.get("job_id"))
        raise


def record_interruption(job_id: str | None) -> None:
    """Note in the job store when an interrupted job stopped, so that its duration in
    ``treefork jobs`` runs to the interruption, not to the last thing it recorded."""
    from treefork.store import shared_store

    if job_id:
        with contextlib.suppress(Exception):  # the job may not be recorded, or the disk full
            shared_store(treefork_home()).update_job(job_id, pid=None)


def stop_if_disk_full(error: BaseException, job_id: str | None) -> None:
    """When ``error`` comes from a full disk, say so in one line and exit 1; else return.

    The job stays as the full disk left it: what was recorded is kept (SQLite's writes are
    atomic, as are treefork's ref updates), so ``treefork resume`` finishes it.
    """
    from treefork.errors import disk_full_in
    from treefork.store import shared_store

    home = treefork_home()
    full = disk_full_in(error, default=home)
    if full is None:
        return
    recorded = False
    if job_id:
        with contextlib.suppress(Exception):  # the store may be what cannot be read
            recorded = shared_store(home).job(job_id) is not None
    then = (
        f"then finish the job with `treefork resume {job_id}`"
        if recorded
        else "then run it again (nothing of this job was recorded)"
    )
    _say(f"error: {full.describe(free_space(full.path))}; {then}")
    raise typer.Exit(EXIT_FAILED) from None


def _is_input_error(error: TreeforkError) -> bool:
    from treefork.errors import DefinitionError, InputError, RepositoryError

    return isinstance(error, InputError | RepositoryError | DefinitionError)
