"""The environment every command treefork starts runs with.

Variables that point git at another repository, worktree or index (``GIT_DIR``,
``GIT_WORK_TREE``, ``GIT_INDEX_FILE``, ...) are removed: a caller running inside a git hook or
a script that exports them must never make a step act on the wrong checkout. Automatic
``git gc`` is switched off for commands treefork runs, so parallel agents never race a
background gc for the repository's lock files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ("LEAKY_GIT_VARIABLES", "scrubbed_environment")

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
"""Variables that would redirect git away from the command's own worktree."""

_NO_AUTO_GC = {"gc.auto": "0", "maintenance.auto": "false"}


def scrubbed_environment(
    extra: Mapping[str, str] | None = None, *, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for a command: ``base`` (default ``os.environ``) without git redirections.

    Args:
        extra: Variables to add on top (step env, interpolated values).
        base: The starting environment; ``os.environ`` when omitted.

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
    environment["GIT_CONFIG_COUNT"] = str(len(_NO_AUTO_GC))
    for index, (key, value) in enumerate(_NO_AUTO_GC.items()):
        environment[f"GIT_CONFIG_KEY_{index}"] = key
        environment[f"GIT_CONFIG_VALUE_{index}"] = value
    if extra:
        environment.update(extra)
    return environment
