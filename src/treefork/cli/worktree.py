"""``treefork worktree list`` and ``treefork worktree gc``: what treefork left on disk.

``gc`` removes the worktrees and branches of jobs whose work is merged or that you
discarded (``treefork discard JOB``), and orphans: folders no job knows, worktrees of
interrupted jobs, stale ``git worktree`` entries. It never removes a worktree with
uncommitted changes or a branch with commits none of your branches has unless ``--force``,
and never anything of a running job or of a finished job awaiting its merge
(:mod:`treefork.core.hygiene` has the rules). ``--dry-run`` changes nothing and says what it
would do and why.

Exit codes: 0 done; 1 some removal failed; 2 invalid ``--older-than``.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Sequence

import typer
from rich.table import Table

from treefork.cli.app import app
from treefork.cli.console import make_console
from treefork.cli.run import EXIT_FAILED, EXIT_INVALID, EXIT_OK, _say
from treefork.core.hygiene import GcAction, job_state, parse_duration
from treefork.git.hygiene import collect_garbage, describe, take_inventory
from treefork.home import treefork_home
from treefork.store import shared_store

__all__ = ("worktree_app",)

worktree_app = typer.Typer(
    help="The worktrees and branches treefork made: list them, collect garbage."
)
app.add_typer(worktree_app, name="worktree")


@worktree_app.command("list")
def list_worktrees(
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """List treefork's worktrees and orphan folders, with their job and its state."""
    home = treefork_home()
    inventory = asyncio.run(take_inventory(shared_store(home), home))
    rows = []
    for scan in inventory.repositories:
        for worktree in scan.worktrees:
            state = job_state(inventory.jobs.get(worktree.job_id))
            rows.append(
                {
                    "path": worktree.path,
                    "repo": str(scan.root),
                    "job_id": worktree.job_id,
                    "job_state": state,
                    "branch": worktree.branch,
                    "status": (
                        "missing (stale entry)"
                        if not worktree.exists
                        else f"{len(worktree.dirty)} uncommitted"
                        if worktree.dirty
                        else "clean"
                    ),
                }
            )
    for folder in inventory.folders:
        rows.append(
            {
                "path": folder.path,
                "repo": None,
                "job_id": folder.job_id,
                "job_state": job_state(inventory.jobs.get(folder.job_id)),
                "branch": None,
                "status": "orphan folder" + (" (holds files)" if folder.has_files else " (empty)"),
            }
        )
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return
    table = Table(title=f"treefork worktrees under {home}", title_justify="left")
    for column in ("job", "job state", "branch", "status", "path"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row["job_id"], row["job_state"], row["branch"] or "-", row["status"], row["path"]
        )
    make_console().print(table)


@worktree_app.command("gc")
def gc(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Change nothing; say what would be done and why."
    ),
    older_than: str = typer.Option(
        None, "--older-than", help="Only jobs idle this long: 30m, 12h, 7d."
    ),
    force: bool = typer.Option(
        False, "--force", help="Also remove uncommitted work and unmerged branches."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per decision."),
) -> None:
    """Remove worktrees and branches of merged or discarded jobs, and orphans.

    Prints a line for everything removed and everything kept, with the reason (and, for
    kept work, the command that acts on it), then a count of each.
    """
    try:
        seconds = parse_duration(older_than) if older_than else None
    except ValueError as error:
        _say(f"error: --older-than: {error}")
        raise typer.Exit(EXIT_INVALID) from None
    home = treefork_home()
    report = asyncio.run(
        collect_garbage(shared_store(home), home, dry_run=dry_run, force=force, older_than=seconds)
    )
    failed = {id(action): reason for action, reason in report.failed}
    for action in report.actions:
        if as_json:
            print(
                json.dumps({**describe(action, dry_run=dry_run), "error": failed.get(id(action))})
            )
            continue
        verb = {
            "keep": "keep",
            "remove_worktree": "remove worktree",
            "prune": "prune stale entry",
            "remove_folder": "remove folder",
            "delete_branch": "delete branch",
        }[action.kind]
        prefix = "would " if dry_run and action.kind != "keep" else ""
        suffix = f"  FAILED: {failed[id(action)]}" if id(action) in failed else ""
        print(
            f"{prefix}{verb} {action.target} ({action.job_id or 'no job'}): {action.reason}{suffix}"
        )
    if not as_json:
        print(_gc_totals(report.actions, dry_run=dry_run))
    raise typer.Exit(EXIT_FAILED if report.failed else EXIT_OK)


_PLURAL = {"worktree": "worktrees", "folder": "folders", "branch": "branches"}


def _gc_totals(actions: Sequence[GcAction], *, dry_run: bool) -> str:
    """``removed 2 worktrees, 3 branches; kept 1 worktree`` (or that nothing was found)."""
    if not actions:
        return "nothing to collect"
    removed: Counter[str] = Counter(action.what for action in actions if action.kind != "keep")
    kept: Counter[str] = Counter(action.what for action in actions if action.kind == "keep")

    def counts(counter: Counter[str]) -> str:
        return ", ".join(
            f"{n} {what if n == 1 else _PLURAL[what]}" for what, n in sorted(counter.items())
        )

    verb = "would remove" if dry_run else "removed"
    return f"{verb} {counts(removed) or 'nothing'}" + (f"; kept {counts(kept)}" if kept else "")
