"""The typer application and the entry point; each command lives in its own module."""

from __future__ import annotations

import logging
import sys

import typer

__all__ = ("app", "main")

app = typer.Typer(
    name="treefork",
    help="Run many agents in parallel on one git repository, each in its own worktree.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Command modules register themselves on import.
    from treefork.cli import demo, run  # noqa: F401
    from treefork.cli import report  # noqa: F401


def main() -> None:
    """Entry point of the ``treefork`` command."""
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    _register()
    app()
