"""Consoles for the command line: wrapped for a person at a terminal, never for a pipe."""

from __future__ import annotations

import sys

from rich.console import Console

__all__ = ("PIPE_WIDTH", "make_console")

PIPE_WIDTH = 1000
"""Columns a console writing to a pipe or file lays out in: wide enough that no command,
path or table row is ever broken in two."""


def make_console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr).

    At a terminal it wraps at the terminal's width. Written to a pipe or file it never
    wraps: text is printed as one line however long (``soft_wrap``), and tables are laid
    out in :data:`PIPE_WIDTH` columns, so a suggested ``git merge ...`` can be copied whole.
    """
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=PIPE_WIDTH, soft_wrap=True)
