"""The merge_review node: asks (``interrupt``) and merges into the user's branch if approved.

The user's repository is changed here and nowhere else. Approving merges the session branch
into the original branch; rejecting keeps the session branch and says how to merge it
later. A failed job is never merged without an explicit override.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import anyio
from langgraph.types import interrupt

from treefork.context import run_settings
from treefork.core.review import ACCEPTED_ANSWERS, Decision, merge_block_reason, parse_decision
from treefork.errors import InputError, MergeRefusedError, TreeforkError, UnmergedWorkError
from treefork.git.command import git
from treefork.git.repository import RepositoryInfo, open_repository
from treefork.git.worktrees import WorktreeManager
from treefork.home import treefork_home
from treefork.phases.integrate import merge_session_into_base, refusal_status
from treefork.phases.merge import MergeSteps
from treefork.runtime import job_emitter
from treefork.settings import GraphSettings
from treefork.state import MergeState, ParallelState
from treefork.store.recorder import EventLog, JobRecorder

__all__ = ("ask_for_decision", "cleanup_merged_job", "merge_review", "review_summary")


def review_summary(state: ParallelState) -> dict[str, Any]:
    """What the reviewer is shown at the interrupt."""
    return {
        "question": f"Merge {state['session_branch']} into {state['base_branch']}?",
        "how_to_answer": (
            "resume with 'approve' or 'reject' (or {'approve': True, 'override': True})"
        ),
        "accepted_answers": list(ACCEPTED_ANSWERS),
        "job_id": state["job_id"],
        "status": state.get("status"),
        "target_branch": state["base_branch"],
        "session_branch": state["session_branch"],
        "session_worktree": state.get("session_worktree"),
        "files": state.get("aggregated_files", []),
        "all_tests_passed": state.get("all_tests_passed"),
        "failures": state.get("failures", []),
    }


def _merge_state(
    state: ParallelState, status: str, message: str, commit: str | None = None
) -> MergeState:
    return {
        "status": status,  # type: ignore[typeddict-item]
        "target_branch": state.get("base_branch", ""),
        "session_branch": state.get("session_branch", ""),
        "commit": commit,
        "message": message,
    }


def _later_hint(state: ParallelState) -> str:
    return (
        f"the session branch {state['session_branch']} is kept; merge it later with "
        f"`treefork merge {state['job_id']}` or `git merge {state['session_branch']}`"
    )


async def cleanup_merged_job(manager: WorktreeManager, state: ParallelState) -> None:
    """Remove the session worktree and every job branch contained in the base branch."""
    session = state.get("session_worktree")
    registered = await manager.registered_worktrees()
    if session and Path(await anyio.Path(session).resolve()) in registered:
        with contextlib.suppress(UnmergedWorkError):
            await manager.remove_worktree(Path(session))
        registered = await manager.registered_worktrees()
    refs = await git(
        "for-each-ref",
        "--format=%(refname:strip=2)",
        f"refs/heads/treefork/{state['job_id']}/",
        cwd=manager.repo.root,
    )
    checked_out = set(registered.values())
    for branch in refs.lines:
        if branch in checked_out:
            continue  # still checked out somewhere (a kept worktree)
        # Unmerged work (a failed agent's branch) is never deleted.
        with contextlib.suppress(UnmergedWorkError):
            await manager.delete_branch(branch, merged_into=state["base_branch"])
    await manager.remove_job_folder_if_empty()


async def _has_work(repo: RepositoryInfo, state: ParallelState) -> bool:
    session_head = await git(
        "rev-parse",
        "--verify",
        "-q",
        f"refs/heads/{state['session_branch']}",
        cwd=repo.root,
        check=False,
    )
    if session_head.returncode != 0:
        return False
    contained = await git(
        "merge-base",
        "--is-ancestor",
        session_head.stdout.strip(),
        f"refs/heads/{state['base_branch']}",
        cwd=repo.root,
        check=False,
    )
    return contained.returncode != 0


async def _decide(state: ParallelState, settings: GraphSettings) -> Decision | str:
    auto = settings.auto_approve
    if auto and state.get("status") == "failed":
        return "the job failed; auto-approve never merges a failed job"
    if auto:
        return Decision(True)
    return ask_for_decision(review_summary(state))


def ask_for_decision(summary: dict[str, Any]) -> Decision:
    """Stop at ``interrupt()`` until the answer is a merge decision.

    An answer that is none (``"maybe"``) asks again, saying why and listing the accepted
    answers: LangGraph matches each ``interrupt()`` of a node to one resume value in turn.
    """
    question = summary
    while True:
        try:
            return parse_decision(interrupt(question))
        except InputError as error:
            answers = list(ACCEPTED_ANSWERS)
            question = {**summary, "error": error.reason, "accepted_answers": answers}


async def merge_review(state: ParallelState, *, settings: GraphSettings) -> dict[str, Any]:
    """Ask for approval (unless auto-approved) and merge into the original branch.

    Writes ``merge``: merged (with the commit), rejected, refused (failed job, dirty
    checkout), conflict, nothing_to_merge or skipped (no domain chosen).
    """
    if state.get("status") == "skipped" or not state.get("domains"):
        return {
            "merge": _merge_state(
                state, "skipped", state.get("routing_message") or "no domain was chosen"
            )
        }
    settings = run_settings(settings)
    repo = await open_repository(state["repo"], state["base_branch"])
    home = await anyio.to_thread.run_sync(treefork_home, settings.home)
    manager = WorktreeManager(repo, state["job_id"], home)
    emitter = job_emitter(settings, state["job_id"])
    merge_steps = MergeSteps(state, settings, emitter)
    store = None
    if settings.store is not None:
        store = await anyio.to_thread.run_sync(settings.store.get, manager.home)
    recorder = JobRecorder(store, state["job_id"])
    already = await _recorded_merge(recorder, repo, state)
    if already is not None:
        # A replay (or resume) of a job whose merge happened: report it, change nothing.
        emitter.emit("merge_review", **already)
        return {"merge": already}
    await recorder.record_job(**_job_record(state), merge_status="pending")
    session_tip = await manager.branch_head(state["session_branch"])
    merge = await _review(state, settings, repo, manager, merge_steps)
    merge = _merged_before(state, merge, session_tip)
    await recorder.record_job(
        merge_status=merge["status"],
        merge_commit=merge["commit"],
        merge_message=merge["message"],
        finished_at=time.time(),
    )
    emitter.emit("merge_review", **merge)
    emitter.emit("job_end", status=state.get("status"), merge=merge["status"])
    for sink in settings.event_sinks:
        if isinstance(sink, EventLog):  # the job's log is complete when the graph returns
            await anyio.to_thread.run_sync(sink.flush)
    budget = merge_steps.budget_after(state)
    return {"merge": merge, "budget": budget} if budget else {"merge": merge}


async def _recorded_merge(
    recorder: JobRecorder, repo: RepositoryInfo, state: ParallelState
) -> MergeState | None:
    """The merge the job store recorded for this job, if it is in the base branch."""
    job = await recorder.job()
    commit = (job or {}).get("merge_commit")
    if not job or job.get("merge_status") != "merged" or not commit:
        return None
    contained = await git(
        "merge-base",
        "--is-ancestor",
        str(commit),
        f"refs/heads/{state['base_branch']}",
        cwd=repo.root,
        check=False,
    )
    if contained.returncode != 0:
        return None
    message = f"already merged into {state['base_branch']} as {str(commit)[:12]}"
    return _merge_state(state, "merged", message, str(commit))


def _job_record(state: ParallelState) -> dict[str, Any]:
    """The job's aggregate, as the job store keeps it."""
    summary = {
        "files": state.get("aggregated_files", []),
        "all_tests_passed": state.get("all_tests_passed"),
        "failures": state.get("failures", []),
        "budget": state.get("budget"),
    }
    return {
        "status": state.get("status") or "running",
        "summary": summary,
        "repo": state.get("repo"),
        "task": state.get("task"),
        "base_branch": state.get("base_branch"),
        "base_commit": state.get("base_commit"),
        "session_branch": state.get("session_branch"),
    }


def _merged_before(state: ParallelState, merge: MergeState, session_tip: str | None) -> MergeState:
    # Resumed after a crash that came right after the merge: the session branch made
    # commits and the base branch holds them all, so the merge happened.
    made_commits = session_tip is not None and session_tip != state.get("base_commit")
    if merge["status"] != "nothing_to_merge" or not made_commits:
        return merge
    assert session_tip is not None
    message = f"already merged into {state['base_branch']} (session {session_tip[:12]})"
    return _merge_state(state, "merged", message, session_tip)


async def _review(
    state: ParallelState,
    settings: GraphSettings,
    repo: RepositoryInfo,
    manager: WorktreeManager,
    merge_steps: MergeSteps,
) -> MergeState:
    if not await _has_work(repo, state):
        await cleanup_merged_job(manager, state)
        return _merge_state(state, "nothing_to_merge", _nothing_to_merge_message(state))
    stop = _why_not_merge(state, await _decide(state, settings))
    if stop is not None:
        return stop
    failed_step = await merge_steps()
    if failed_step:
        return _merge_state(state, "refused", f"{failed_step}; {_later_hint(state)}")
    return await _merge(state, repo, manager)


def _nothing_to_merge_message(state: ParallelState) -> str:
    """Why nothing is merged: naming the domains whose changes stayed out of the session."""
    left_out = [
        f"{name} ({result['status']}; {len(result['files_modified'])} changed files stay on "
        f"{result['branch']})"
        for name, result in sorted((state.get("domain_results") or {}).items())
        if result["files_modified"] and not result["merged_into_session"]
    ]
    if left_out:
        return "no domain's changes reached the session: " + ", ".join(left_out)
    return "the job changed nothing that the base branch lacks"


def _why_not_merge(state: ParallelState, decision: Decision | str) -> MergeState | None:
    """The outcome when the reviewer's answer (or the job) rules the merge out, else None."""
    if isinstance(decision, str):
        return _merge_state(state, "refused", f"{decision}; {_later_hint(state)}")
    if not decision.approve:
        return _merge_state(state, "rejected", f"not merged: {_later_hint(state)}")
    blocked = merge_block_reason(str(state.get("status")), decision)
    if blocked:
        return _merge_state(state, "refused", f"{blocked}; {_later_hint(state)}")
    return None


async def _merge(
    state: ParallelState, repo: RepositoryInfo, manager: WorktreeManager
) -> MergeState:
    try:
        result = await merge_session_into_base(
            manager,
            base_branch=state["base_branch"],
            session_branch=state["session_branch"],
            task=state.get("task", ""),
        )
    except MergeRefusedError as refused:
        return _merge_state(state, refusal_status(refused), f"{refused}; {_later_hint(state)}")
    # The merge happened; leftovers are for `treefork worktree gc`.
    with contextlib.suppress(TreeforkError):
        await cleanup_merged_job(manager, state)
    return _merge_state(
        state,
        "merged",
        f"merged into {state['base_branch']} as {result.commit[:12]}",
        result.commit,
    )
