"""The typer application and the entry point; each command lives in its own module."""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback

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
    try:
        app()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as error:
        # The boundary: a user sees a short message, never a traceback, unless they ask.
        if "--debug" in sys.argv[1:] or os.environ.get("TREEFORK_DEBUG"):
            raise
        where = _write_crash_report(error)
        print(
            f"error: unexpected {type(error).__name__}: {error}\n"
            f"  the traceback is in {where}; run again with --debug to see it here",
            file=sys.stderr,
        )
        sys.exit(1)


def _write_crash_report(error: BaseException) -> str:
    """Keep the traceback of an unexpected error in the treefork home; returns where."""
    from treefork.home import treefork_home

    text = "".join(traceback.format_exception(error))
    try:
        folder = treefork_home() / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        path.write_text(text, encoding="utf-8")
    except OSError:
        return "(nowhere: the treefork home is not writable)"
    return str(path)
