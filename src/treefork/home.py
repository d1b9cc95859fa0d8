"""Where treefork keeps its own files: worktrees, the job store, checkpoints, locks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ("free_space", "treefork_home")


def treefork_home(override: str | Path | None = None) -> Path:
    """The treefork home: ``override``, else ``$TREEFORK_HOME``, else ``~/.treefork``.

    The folder is created if missing. It must lie outside any repository treefork works on.
    """
    raw = override if override is not None else os.environ.get("TREEFORK_HOME")
    home = Path(raw).expanduser() if raw else Path.home() / ".treefork"
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def free_space(path: Path) -> int | None:
    """Bytes free on the file system of ``path`` (or of its closest existing parent); None
    when it cannot be told (blocking: call it from a worker thread in async code)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None
