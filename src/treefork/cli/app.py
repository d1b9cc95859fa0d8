"""The typer application and the entry point; each command lives in its own module."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Sequence

import typer

from treefork.home import treefork_home

__all__ = ("app", "main", "registered_commands")

app = typer.Typer(
    name="treefork",
    help="Run many agents in parallel on one git repository, each in its own worktree.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


_COMMAND_MODULES = {
    "demo": "demo",
    "discard": "jobs",
    "dlq": "dlq",
    "events": "events",
    "graph": "run",
    "jobs": "jobs",
    "merge": "merge",
    "report": "report",
    "resume": "resume",
    "run": "run",
    "validate": "run",
    "worktree": "worktree",
}
"""Which module of ``treefork.cli`` defines each command."""

_MODULES = ("demo", "run", "report", "dlq", "events", "jobs", "merge", "resume", "worktree")
"""Every command module, in the order commands are listed in ``--help``."""


def _register(argv: Sequence[str] | None = None) -> None:
    """Import the command modules (they register themselves on import).

    With ``argv``, only the module of the command named there is imported, so a quick
    command such as ``treefork validate`` does not pay for the others' imports. If that
    module does not register the command (or registers only one command, which typer
    would run without its name), every module is imported.
    """
    name = next((arg for arg in argv or () if not arg.startswith("-")), None)
    module = _COMMAND_MODULES.get(name or "")
    if module is not None:
        importlib.import_module(f"treefork.cli.{module}")
        if name in registered_commands() and len(registered_commands()) > 1:
            return
    for module in _MODULES:
        importlib.import_module(f"treefork.cli.{module}")


def registered_commands() -> set[str]:
    """The names of the commands and command groups registered so far."""
    commands = {
        info.name or (info.callback.__name__.replace("_", "-") if info.callback else "")
        for info in app.registered_commands
    }
    groups = {info.name or "" for info in app.registered_groups}
    return (commands | groups) - {""}


def main() -> None:
    """Entry point of the ``treefork`` command."""
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    _register(sys.argv[1:])
    debug = "--debug" in sys.argv[1:] or bool(os.environ.get("TREEFORK_DEBUG"))
    if not debug:
        threading.excepthook = _thread_failed
    try:
        app()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as error:
        # The boundary: a user sees a short message, never a traceback, unless they ask.
        if debug:
            raise
        where = _write_crash_report(error)
        print(
            f"error: unexpected {type(error).__name__}: {error}\n"
            f"  the traceback is in {where}; run again with --debug to see it here",
            file=sys.stderr,
        )
        sys.exit(1)


def _thread_failed(args: threading.ExceptHookArgs) -> None:
    # A library's worker thread failing (e.g. a database driver racing the event loop's
    # shutdown after an error) is kept in the crash log, not printed as a traceback.
    if args.exc_value is None or isinstance(args.exc_value, SystemExit):
        return
    where = _write_crash_report(args.exc_value)
    print(f"warning: a background thread failed; details in {where}", file=sys.stderr)


def _write_crash_report(error: BaseException) -> str:
    """Keep the traceback of an unexpected error in the treefork home; returns where."""
    text = "".join(traceback.format_exception(error))
    try:
        folder = treefork_home() / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        with path.open("a", encoding="utf-8") as log:  # a failing thread may add to it
            log.write(text)
    except OSError:
        return "(nowhere: the treefork home is not writable)"
    return str(path)
