"""``treefork resume JOB``: continue a job after a crash, a reboot or Ctrl-C.

The job store keeps the workflow file and options of every ``treefork run``; resume rebuilds
the same graph and invokes it again on the job's thread (the job id), with the checkpointer
the job used. LangGraph continues from the last checkpoint; inside the dispatcher, agents
whose results were recorded are not run again, a finished agent whose commit was not merged
is merged, and a phase cut off halfway runs again from its recorded start
(:mod:`treefork.core.resume`). A job waiting at merge review is asked again (or merged with
``--yes``); a job that already finished is only reported.

Exit codes, as for ``treefork run``: 0 the job succeeded; 1 it failed or only partly
succeeded; 2 unknown job, or a job not started from a workflow file; 3 the job is running in
another process (nothing is touched); 130 interrupted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from treefork.cli.app import app
from treefork.cli.console import make_console
from treefork.cli.lifecycle import run_async
from treefork.cli.progress import make_progress
from treefork.cli.render import print_summary
from treefork.cli.run import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_LOCKED,
    EXIT_OK,
    _checkpointer,
    _exit_code,
    _load,
    _say,
    check_checkpointer,
    check_executor,
    compile_workflow,
    job_report,
    record_interruption,
    settle_review,
    stop_if_disk_full,
)
from treefork.core.resume import JobResumeAction, plan_job_resume
from treefork.errors import JobLockedError, TreeforkError
from treefork.home import treefork_home
from treefork.store import JobLock, JobStore, shared_store

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

__all__ = ("checkpoint_action", "job_options", "open_job", "resume")


def open_job(job_id: str) -> tuple[Path, JobStore, dict[str, Any]]:
    """The treefork home, its store and the job's row; exits with 2 for an unknown job."""
    home = treefork_home()
    store = shared_store(home)
    job = store.job(job_id)
    if job is None:
        _say(f"error: no job {job_id!r} in {store.path}; `treefork jobs` lists them")
        raise typer.Exit(EXIT_INVALID)
    return home, store, job


def job_workflow(job: dict[str, Any]) -> Any:
    """The job's workflow, loaded again from its file (with the profile it ran with);
    exits with 2 without one."""
    path = job.get("workflow_path")
    if not path:
        _say(
            f"error: job {job['job_id']} was not started from a workflow file; resume it from "
            "Python by invoking its graph again with the same thread id (or job_id)"
        )
        raise typer.Exit(EXIT_INVALID)
    return _load(Path(path), (job.get("options") or {}).get("profile"))


def job_options(job: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The options of the job's run, with the ones given on this command line on top."""
    options: dict[str, Any] = {
        "max_parallel": None,
        "yes": False,
        "no_merge": False,
        "checkpointer": None,
        **(job.get("options") or {}),
    }
    options.update({key: value for key, value in overrides.items() if value not in (None, False)})
    options.update(
        repo=job["repo"],
        task=job["task"],
        job_id=job["job_id"],
        json=bool(overrides.get("json")),
        workflow_path=job.get("workflow_path"),
    )
    return options


async def checkpoint_action(compiled: Any, config: RunnableConfig) -> JobResumeAction:
    """How to continue the job's graph from its checkpoint."""
    snapshot = await compiled.aget_state(config)
    interrupted = any(task.interrupts for task in snapshot.tasks)
    return plan_job_resume(
        has_checkpoint=snapshot.created_at is not None,
        next_nodes=tuple(snapshot.next),
        interrupted=interrupted,
    )


async def _resume(workflow: Any, options: dict[str, Any], console: Console) -> dict[str, Any]:
    home = treefork_home()
    job_id = options["job_id"]
    with (
        JobLock(home, job_id),
        make_progress(live=None if not options["json"] else False) as progress,
    ):
        store = shared_store(home)
        async with _checkpointer(options["checkpointer"], home) as saver:
            compiled = compile_workflow(workflow, options, saver, [progress], store)
            config: RunnableConfig = {"configurable": {"thread_id": job_id}}
            action = await checkpoint_action(compiled, config)
            if action == "finished":
                _say(f"job {job_id} has already finished; nothing to resume")
                return dict((await compiled.aget_state(config)).values)
            store.update_job(job_id, pid=os.getpid())
            if action == "start":
                state_in = {"task": options["task"], "repo": options["repo"], "job_id": job_id}
                state = dict(await compiled.ainvoke(state_in, config))
            else:
                state = dict(await compiled.ainvoke(None, config))
            return await settle_review(compiled, state, config, options, console)


@app.command()
def resume(
    job_id: str = typer.Argument(..., help="The job to resume (`treefork jobs` lists them)."),
    *,
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Merge without asking (never a failed job)."
    ),
    no_merge: bool = typer.Option(False, "--no-merge", help="Stop before merging; merge later."),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object on stdout at the end."
    ),
    checkpointer: str = typer.Option(
        None, "--checkpointer", help="Override the recorded checkpointer."
    ),
    max_parallel: int = typer.Option(
        None, "--max-parallel", min=1, help="Agents at once, all domains."
    ),
    ray_address: str = typer.Option(
        None, "--ray-address", help="The Ray cluster, for a job run with --executor ray."
    ),
) -> None:
    """Resume a job after a crash, reboot or Ctrl-C, without re-running finished agents."""
    _, _, job = open_job(job_id)
    workflow = job_workflow(job)
    options = job_options(
        job,
        yes=yes,
        no_merge=no_merge,
        json=as_json,
        checkpointer=checkpointer,
        max_parallel=max_parallel,
        ray_address=ray_address,
    )
    check_checkpointer(options["checkpointer"])
    check_executor(options)
    console = make_console(stderr=as_json)
    try:
        state = run_async(_resume(workflow, options, console))
    except KeyboardInterrupt:
        record_interruption(job_id)
        _say(f"interrupted: finished agents are recorded; resume with `treefork resume {job_id}`")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except JobLockedError as error:
        _say(f"error: {error}")
        raise typer.Exit(EXIT_LOCKED) from None
    except TreeforkError as error:
        stop_if_disk_full(error, job_id)
        _say(f"error: {error}")
        raise typer.Exit(EXIT_FAILED) from None
    except Exception as error:
        stop_if_disk_full(error, job_id)
        raise
    if as_json:
        print(json.dumps(job_report(state, workflow.domains), default=str))
    else:
        print_summary(state, console)
    raise typer.Exit(_exit_code(state) if state else EXIT_OK)
