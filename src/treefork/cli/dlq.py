"""``treefork dlq list|show|retry``: the dead letter queue of failed items.

Every item whose agent failed (after its retries; not with ``on_item_failure: skip``) keeps
its item data, every attempt's error and output tail, and its agent branch (with its
worktree) for inspection. ``retry`` runs them again (see :mod:`treefork.phases.retry`):
successes merge into the job's domain branch, that domain's reduce and tests run again, the
domain merges into the same session branch, and the job's status and merge review are
brought up to date (``treefork resume JOB`` asks again; ``treefork merge JOB`` merges).

Exit codes: 0 done (``retry``: every retried item succeeded); 1 a retried item failed
again; 2 unknown job or item; 3 the job is running in another process.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from treefork.cli.app import app
from treefork.cli.console import make_console
from treefork.cli.lifecycle import run_async
from treefork.cli.progress import make_progress
from treefork.cli.resume import checkpoint_action, job_options, job_workflow, open_job
from treefork.cli.run import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_LOCKED,
    EXIT_OK,
    _checkpointer,
    _say,
    check_executor,
    compile_workflow,
)
from treefork.errors import JobLockedError, TreeforkError
from treefork.home import treefork_home
from treefork.store import EventLog, JobLock, JobStore, StoreRef, shared_store

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

    from treefork.state import DomainResult

__all__ = ("dlq_app", "select_entries")

_ITEM_OPTION = typer.Option(None, "--item", help="Only this item (repeatable; DOMAIN/ITEM).")

dlq_app = typer.Typer(help="The dead letter queue: failed items, kept for inspection and retry.")
app.add_typer(dlq_app, name="dlq")


def select_entries(
    entries: list[dict[str, Any]], wanted: list[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The entries named by ``ITEM`` or ``DOMAIN/ITEM`` (all when none is named).

    Returns:
        The entries, and the names that matched nothing or more than one domain.
    """
    if not wanted:
        return entries, []
    chosen: list[dict[str, Any]] = []
    problems: list[str] = []
    for name in wanted:
        found = [e for e in entries if name in (e["item_id"], f"{e['domain']}/{e['item_id']}")]
        if len(found) == 1:
            chosen.append(found[0])
        elif found:
            problems.append(f"{name} is in several domains; name it DOMAIN/{name}")
        else:
            problems.append(f"{name} is not in the dead letter queue")
    return chosen, problems


@dlq_app.command("list")
def list_items(
    job_id: str = typer.Argument(None, help="Only this job's items."),
    all_items: bool = typer.Option(False, "--all", help="Include items a retry resolved."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per item."),
) -> None:
    """List failed items: job, domain, item, attempts, error, branch."""
    store = shared_store(treefork_home())
    if job_id is not None and store.job(job_id) is None:
        _say(f"error: no job {job_id!r}")
        raise typer.Exit(EXIT_INVALID)
    entries = store.dlq(job_id, include_resolved=all_items)
    if as_json:
        for entry in entries:
            print(json.dumps(entry, default=str))
        return
    table = Table(title="dead letter queue", title_justify="left")
    for column in ("job", "domain", "item", "attempts", "error", "branch", "resolved"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        error = (entry["error"] or "").splitlines()[0][:80] if entry["error"] else ""
        table.add_row(
            entry["job_id"],
            entry["domain"],
            entry["item_id"],
            str(entry["attempts"]),
            error,
            entry["branch"] or "-",
            "yes" if entry["resolved_at"] else "no",
        )
    make_console().print(table)


@dlq_app.command("show")
def show(
    job_id: str = typer.Argument(..., help="The job."),
    item: str = typer.Argument(..., help="The item id (DOMAIN/ITEM when ambiguous)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object."),
) -> None:
    """Show one failed item: its data, branch and every attempt's error and output tail."""
    _, store, _ = open_job(job_id)
    chosen, problems = select_entries(store.dlq(job_id, include_resolved=True), [item])
    if problems:
        _say(f"error: {problems[0]}")
        raise typer.Exit(EXIT_INVALID)
    entry = chosen[0]
    detail = {**entry, "attempt_history": store.attempts(job_id, entry["domain"], entry["item_id"])}
    if as_json:
        print(json.dumps(detail, default=str))
        return
    print(
        f"job {job_id}  domain {entry['domain']}  item {entry['item_id']}  "
        f"attempts {entry['attempts']}"
    )
    print(f"item: {json.dumps(entry['item'], default=str)}")
    print(
        f"branch: {entry['branch'] or '-'}"
        + ("  (resolved by a retry)" if entry["resolved_at"] else "")
    )
    for attempt in detail["attempt_history"]:
        print(
            f"\n--- attempt {attempt['attempt']}: {attempt['status']} on {attempt['branch'] or '-'}"
        )
        if attempt["error"]:
            print(f"error: {attempt['error']}")
        if attempt["output_tail"]:
            print("output (tail):")
            print(attempt["output_tail"].rstrip())


def _by_domain(entries: list[dict[str, Any]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        grouped[entry["domain"]].append(entry["item_id"])
    return dict(grouped)


async def _update_checkpoint(
    workflow: Any, options: dict[str, Any], store: JobStore, home: Path, job_id: str
) -> None:
    """Put the job's fresh aggregate into its checkpoint so that merge review asks again."""
    from langgraph.types import Overwrite

    from treefork.nodes.aggregator import aggregate

    async with _checkpointer(options["checkpointer"], home) as saver:
        compiled = compile_workflow(workflow, {**options, "yes": False}, saver, [], store)
        config: RunnableConfig = {"configurable": {"thread_id": job_id}}
        if await checkpoint_action(compiled, config) not in ("review", "finished"):
            return
        snapshot = await compiled.aget_state(config)
        results = {row["domain"]: row["result"] for row in store.domains(job_id) if row["result"]}
        update = aggregate({**snapshot.values, "domain_results": results})  # type: ignore[typeddict-item]
        values = {**update, "domain_results": results, "failures": Overwrite(update["failures"])}
        await compiled.aupdate_state(config, values, as_node="aggregator")


def _record_aggregate(store: JobStore, job: dict[str, Any]) -> dict[str, Any]:
    from treefork.nodes.aggregator import aggregate

    results = {
        row["domain"]: row["result"] for row in store.domains(job["job_id"]) if row["result"]
    }
    state = {
        "domains": [{"name": name, "reason": ""} for name in results],
        "domain_results": results,
    }
    update = aggregate(state)  # type: ignore[arg-type]
    summary = {
        **(job.get("summary") or {}),
        "files": update["aggregated_files"],
        "all_tests_passed": update["all_tests_passed"],
        "failures": update["failures"],
    }
    merge_status = (
        "pending" if job.get("merge_status") not in (None, "skipped") else job.get("merge_status")
    )
    store.update_job(
        job["job_id"], status=update["status"], summary=summary, merge_status=merge_status
    )
    return update


async def _retry(
    workflow: Any, options: dict[str, Any], job: dict[str, Any], items: dict[str, list[str]]
) -> dict[str, DomainResult]:
    from treefork.core.routing import RuleAnalyzer
    from treefork.nodes import build_domain_graph
    from treefork.phases.retry import retry_dead_letters
    from treefork.settings import GraphSettings

    home = treefork_home()
    job_id = job["job_id"]
    with JobLock(home, job_id), make_progress(live=False) as progress:
        store = shared_store(home)
        ref = StoreRef(store)
        settings = GraphSettings(
            domains=tuple(workflow.domains),
            analyzer=RuleAnalyzer(),
            max_parallel=options["max_parallel"] or workflow.max_parallel or 8,
            event_sinks=(EventLog(ref), progress),
            store=ref,
        )
        graphs = {name: build_domain_graph(settings.domain(name), settings) for name in items}
        results = await retry_dead_letters(
            settings, graphs, job, items, max_parallel=settings.max_parallel
        )
        _record_aggregate(store, job)
        await _update_checkpoint(workflow, options, store, home, job_id)
    return results


@dlq_app.command("retry")
def retry(
    job_id: str = typer.Argument(..., help="The job whose failed items to run again."),
    max_parallel: int = typer.Option(None, "--max-parallel", min=1, help="Agents at once."),
    item: list[str] = _ITEM_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object at the end."),
) -> None:
    """Retry failed items; successes merge into the same session branch."""
    _, store, job = open_job(job_id)
    chosen, problems = select_entries(store.dlq(job_id), list(item or []))
    if problems:
        for problem in problems:
            _say(f"error: {problem}")
        raise typer.Exit(EXIT_INVALID)
    if not chosen:
        print(f"job {job_id}: the dead letter queue is empty; nothing to retry")
        raise typer.Exit(EXIT_OK)
    workflow = job_workflow(job)
    options = job_options(job, max_parallel=max_parallel)
    check_executor(options)  # a job run on a cluster retries there too
    items = _by_domain(chosen)
    try:
        results = run_async(_retry(workflow, options, job, items))
    except JobLockedError as error:
        _say(f"error: {error}")
        raise typer.Exit(EXIT_LOCKED) from None
    except TreeforkError as error:
        _say(f"error: {error}")
        raise typer.Exit(EXIT_FAILED) from None
    outcome = _outcome(results, items)
    if as_json:
        print(json.dumps({"job_id": job_id, **outcome, "remaining": len(store.dlq(job_id))}))
    else:
        for name in outcome["succeeded"]:
            print(f"retried {name}: succeeded, merged into the session branch")
        for name in outcome["failed"]:
            print(f"retried {name}: failed again; still in the dead letter queue")
        print(
            f"merge it with `treefork merge {job_id}` "
            f"(or review again with `treefork resume {job_id}`)"
        )
    raise typer.Exit(EXIT_OK if not outcome["failed"] else EXIT_FAILED)


def _outcome(results: dict[str, DomainResult], items: dict[str, list[str]]) -> dict[str, Any]:
    succeeded: list[str] = []
    failed: list[str] = []
    for domain, ids in items.items():
        statuses = {agent["item_id"]: agent["status"] for agent in results[domain]["agents"]}
        for item_id in ids:
            status = statuses.get(item_id)
            (succeeded if status == "succeeded" else failed).append(f"{domain}/{item_id}")
    domains = {domain: results[domain]["status"] for domain in items}
    return {"succeeded": succeeded, "failed": failed, "domains": domains}
