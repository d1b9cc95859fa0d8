"""The environment every command treefork starts runs with.

Variables that point git at another repository, worktree or index (``GIT_DIR``,
``GIT_WORK_TREE``, ``GIT_INDEX_FILE``, ...) are removed: a caller running inside a git hook or
a script that exports them must never make a step act on the wrong checkout. Automatic
``git gc`` is switched off for commands treefork runs, so parallel agents never race a
background gc for the repository's lock files.

Read-only agents (``isolation: none``) share their domain's worktree: their commands run with
``core.hooksPath`` set to a folder whose ``reference-transaction`` hook refuses any update of
``HEAD`` or a branch, so an agent that tries to commit (or reset, or create a branch) fails
alone, with a message saying why, and the agents beside it never see HEAD move. The user's
own hooks do not run for these agents.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

__all__ = (
    "LEAKY_GIT_VARIABLES",
    "READ_ONLY_REFUSAL",
    "REDIRECTING_GIT_VARIABLES",
    "read_only_hooks",
    "scrubbed_environment",
)

LEAKY_GIT_VARIABLES = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_COMMON_DIR",
        "GIT_NAMESPACE",
        "GIT_PREFIX",
        "GIT_CEILING_DIRECTORIES",
        "GIT_DISCOVERY_ACROSS_FILESYSTEM",
        "GIT_QUARANTINE_PATH",
        "GIT_CONFIG_PARAMETERS",
        "GIT_CONFIG_COUNT",
    }
)
"""Variables that would redirect git away from the command's own worktree, or carry the
caller's command-line git configuration (replaced by treefork's own)."""

REDIRECTING_GIT_VARIABLES = LEAKY_GIT_VARIABLES - {"GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT"}
"""The redirections alone: dropped from every command's environment, whoever built it."""

_NO_AUTO_GC = {"gc.auto": "0", "maintenance.auto": "false"}


READ_ONLY_REFUSAL = "read-only agents (isolation none) may not commit"
"""What a read-only agent's git says when it refuses to move HEAD or a branch."""

_REFERENCE_TRANSACTION = f"""#!/bin/sh
# treefork: this command belongs to a read-only agent (isolation: none), which shares the
# domain worktree with other agents. Updates of HEAD and branches are refused.
[ "$1" = prepared ] || exit 0
while read -r old new ref; do
    case "$ref" in
        HEAD|refs/heads/*)
            echo "treefork: {READ_ONLY_REFUSAL} (refused to update $ref)" >&2
            exit 1;;
    esac
done
exit 0
"""

_hooks_lock = threading.Lock()
_hooks: list[Path] = []


def read_only_hooks() -> Path:
    """The hooks folder of read-only agents (made once per process, removed at exit).

    Making it creates a folder: async callers run this in a worker thread first (the
    LangGraph dev server refuses folder creation on its event loop), after which
    :func:`scrubbed_environment` only checks that it is still there.
    """
    with _hooks_lock:
        if _hooks and (_hooks[0] / "reference-transaction").is_file():
            return _hooks[0]
        folder = Path(tempfile.mkdtemp(prefix="treefork-read-only-hooks-"))
        hook = folder / "reference-transaction"
        hook.write_text(_REFERENCE_TRANSACTION)
        hook.chmod(0o755)
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _hooks[:] = [folder]
        return folder


def scrubbed_environment(
    extra: Mapping[str, str] | None = None,
    *,
    base: Mapping[str, str] | None = None,
    read_only: bool = False,
) -> dict[str, str]:
    """The environment for a command: ``base`` (default ``os.environ``) without git redirections.

    Args:
        extra: Variables to add on top (step env, interpolated values).
        base: The starting environment; ``os.environ`` when omitted.
        read_only: The command belongs to a read-only agent: its git may not update HEAD
            or a branch (see the module's documentation).

    Returns:
        A new dict; ``base`` is not modified.
    """
    source = os.environ if base is None else base
    environment = {
        name: value
        for name, value in source.items()
        if name not in LEAKY_GIT_VARIABLES
        and not name.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))
    }
    config = dict(_NO_AUTO_GC)
    if read_only:
        config["core.hooksPath"] = str(read_only_hooks())
    environment["GIT_CONFIG_COUNT"] = str(len(config))
    for index, (key, value) in enumerate(config.items()):
        environment[f"GIT_CONFIG_KEY_{index}"] = key
        environment[f"GIT_CONFIG_VALUE_{index}"] = value
    if extra:
        environment.update(extra)
    return environment
