"""``treefork demo``: a real multi-domain run on a scratch copy of the sample project."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from treefork.cli.app import app
from treefork.cli.console import make_console
from treefork.cli.lifecycle import run_async
from treefork.cli.progress import make_progress
from treefork.cli.render import print_summary
from treefork.environment import scrubbed_environment

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

__all__ = ("demo",)

_DEMO = Path(__file__).resolve().parent.parent / "_demo"
_IDENTITY = {"user.name": "treefork demo", "user.email": "demo@treefork.invalid"}


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "treefork_demo_domains", _DEMO / "multi_domain.py"
    )
    if spec is None or spec.loader is None:
        raise typer.Exit(1)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args], cwd=repo, env=scrubbed_environment(), check=True, capture_output=True
    )


def make_sample_repository(parent: Path) -> Path:
    """Copy the sample project into ``parent/calc`` and commit it on branch main."""
    repo = parent / "calc"
    shutil.copytree(_DEMO / "sample-project", repo)
    _git(repo, "init", "-q", "-b", "main")
    # The demo repository gets its own identity, so the demo runs without any git setup.
    for key, value in _IDENTITY.items():
        _git(repo, "config", key, value)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "Sample project")
    return repo


async def _run(
    repo: Path, home: Path, task: str, live: bool | None, console: Console
) -> dict[str, Any]:
    # langgraph loads only when the demo runs, not for every treefork command.
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.types import Command

    from treefork.graph import build_graph

    example = _load_example()
    with make_progress(live=live) as progress:
        graph = build_graph(
            example.DOMAINS,
            max_parallel=4,
            checkpointer=InMemorySaver(),
            home=home,
            event_sinks=[progress],
        )
        config: RunnableConfig = {"configurable": {"thread_id": "demo"}}
        state = await graph.ainvoke({"task": task, "repo": str(repo)}, config)
    interrupts = state.get("__interrupt__") or []
    if interrupts:
        summary = interrupts[0].value
        console.print(
            f"\nmerge review: {summary['status']} job, {len(summary['files'])} files, "
            f"{len(summary['failures'])} failures — approving the merge into "
            f"{summary['target_branch']}"
        )
        state = await graph.ainvoke(Command(resume="approve"), config)
    return dict(state)


@app.command()
def demo(
    task: str = typer.Option(None, help="The task (default: the example's task)."),
    keep: bool = typer.Option(True, help="Keep the scratch repository to look at."),
    live: bool = typer.Option(
        None, "--live/--plain", help="Live display (default: on a terminal)."
    ),
) -> None:
    """Run a 2-domain task on a scratch copy of the sample project and merge it."""
    console = make_console()
    scratch = Path(tempfile.mkdtemp(prefix="treefork-demo-"))
    repo = make_sample_repository(scratch)
    home = Path(os.environ.get("TREEFORK_HOME") or scratch / "treefork-home")
    example_task = task or _load_example().TASK
    console.print(f"[bold]treefork demo[/] — repository {repo}\ntask: {example_task}\n")
    state = run_async(_run(repo, home, example_task, live, console))
    console.print()
    print_summary(state, console)
    log = subprocess.run(
        ["git", "log", "--oneline", "--graph", "-12"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=scrubbed_environment(),
        check=False,
    ).stdout
    console.print(f"\n[bold]{repo}[/] after the merge (git log --graph):\n{log}")
    if not keep:
        shutil.rmtree(scratch, ignore_errors=True)
    merged = (state.get("merge") or {}).get("status") == "merged"
    raise typer.Exit(0 if merged else 1)
