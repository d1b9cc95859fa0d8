"""The ``treefork`` command line (typer + rich)."""

from __future__ import annotations

from treefork.cli.app import app, main

__all__ = ("app", "main")
