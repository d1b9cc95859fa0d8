"""``treefork merge JOB``: merge a finished job's session branch into its original branch.

For a job run from a workflow file this answers the job's merge review on its own thread
(asking it again if review already ended, e.g. rejected or refused): the merge_review node
applies the same rules as at the end of the run (a failed job only with ``--override``; a
conflict or uncommitted changes that overlap refuse, changing nothing; the workflow's merge
steps run first), then removes the job's merged worktrees and branches. A job run from
Python without a workflow file is merged directly with the same rules (no merge steps).

Exit codes: 0 merged (or nothing left to merge); 1 refused (failed job without override,
conflict, overlapping changes, a merge step failed) or the job has not finished; 2 unknown
job; 3 the job is running in another process.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import anyio
import typer

from treefork.cli.app import app
from treefork.cli.lifecycle import run_async
from treefork.cli.resume import job_options, job_workflow, open_job
from treefork.cli.run import (
    EXIT_FAILED,
    EXIT_LOCKED,
    EXIT_OK,
    _checkpointer,
    _say,
    compile_workflow,
)
from treefork.core.review import Decision, merge_block_reason
from treefork.errors import JobError, JobLockedError, MergeRefusedError, TreeforkError
from treefork.home import treefork_home
from treefork.store import JobLock, JobStore, shared_store

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

__all__ = ("merge",)


async def _merge_through_review(job: dict[str, Any], override: bool) -> dict[str, Any]:
    from langgraph.types import Command

    workflow = job_workflow(job)
    options = job_options(job)
    home = treefork_home()
    store = shared_store(home)
    async with _checkpointer(options["checkpointer"], home) as saver:
        compiled = compile_workflow(workflow, {**options, "yes": False}, saver, [], store)
        config: RunnableConfig = {"configurable": {"thread_id": job["job_id"]}}
        snapshot = await compiled.aget_state(config)
        at_review = "merge_review" in snapshot.next
        if snapshot.created_at is None or (snapshot.next and not at_review):
            raise JobError(
                job["job_id"], f"has not finished; `treefork resume {job['job_id']}` first"
            )
        if not snapshot.next:
            # Review already ended (rejected, refused, pending): queue it again.
            await compiled.aupdate_state(config, None, as_node="aggregator")
        state = await compiled.ainvoke(None, config)
        if state.get("__interrupt__"):
            state = await compiled.ainvoke(
                Command(resume={"approve": True, "override": override}), config
            )
        return dict(state.get("merge") or {})


async def _merge_directly(store: JobStore, job: dict[str, Any], override: bool) -> dict[str, Any]:
    from treefork.git.repository import open_repository
    from treefork.git.worktrees import WorktreeManager
    from treefork.nodes.merge_review import cleanup_merged_job
    from treefork.phases.integrate import merge_session_into_base, refusal_status

    if job["status"] == "running":
        raise JobError(job["job_id"], "has not finished; resume it first")
    merge: dict[str, Any] = {
        "target_branch": job["base_branch"],
        "session_branch": job["session_branch"],
    }
    blocked = merge_block_reason(str(job["status"]), Decision(True, override))
    if blocked:
        return {**merge, "status": "refused", "commit": None, "message": blocked}
    repo = await open_repository(job["repo"], job["base_branch"])
    manager = WorktreeManager(repo, job["job_id"], treefork_home())
    try:
        result = await merge_session_into_base(
            manager,
            base_branch=job["base_branch"],
            session_branch=job["session_branch"],
            task=job.get("task") or "",
        )
    except MergeRefusedError as refused:
        return {**merge, "status": refusal_status(refused), "commit": None, "message": str(refused)}
    session = str(manager.root / "session")
    await cleanup_merged_job(manager, {**job, "session_worktree": session})  # type: ignore[typeddict-item]
    message = f"merged into {job['base_branch']} as {result.commit[:12]}"
    return {
        **merge,
        "status": "merged" if result.merged else "nothing_to_merge",
        "commit": result.commit,
        "message": message if result.merged else "already merged",
    }


async def _merge(job_id: str, override: bool) -> dict[str, Any]:
    home = treefork_home()
    store = shared_store(home)
    with JobLock(home, job_id):
        job = store.job(job_id)
        assert job is not None
        workflow = job.get("workflow_path")
        if workflow and await anyio.Path(workflow).exists():
            merge = await _merge_through_review(job, override)
        else:
            merge = await _merge_directly(store, job, override)
        store.update_job(
            job_id,
            merge_status=merge.get("status"),
            merge_commit=merge.get("commit"),
            merge_message=merge.get("message"),
            finished_at=time.time(),
        )
        return merge


@app.command()
def merge(
    job_id: str = typer.Argument(..., help="The finished job to merge into its original branch."),
    override: bool = typer.Option(False, "--override", help="Merge even though the job failed."),
    as_json: bool = typer.Option(False, "--json", help="Print the merge outcome as JSON."),
) -> None:
    """Merge a finished job's session branch into the branch it started from."""
    open_job(job_id)
    try:
        outcome = run_async(_merge(job_id, override))
    except JobLockedError as error:
        _say(f"error: {error}")
        raise typer.Exit(EXIT_LOCKED) from None
    except TreeforkError as error:
        _say(f"error: {error}")
        raise typer.Exit(EXIT_FAILED) from None
    if as_json:
        print(json.dumps(outcome, default=str))
    else:
        print(f"merge: {outcome.get('status')} — {outcome.get('message')}")
    raise typer.Exit(
        EXIT_OK if outcome.get("status") in ("merged", "nothing_to_merge") else EXIT_FAILED
    )
