"""Optional parts of treefork and the extras that install them.

The core install runs jobs, the command line, the demo, the HTML report (its charts are
inline SVG) and SQLite checkpoints. Heavier
parts come with an extra:

==========  ==========================================  ================================
extra       what it adds                                what needs it
==========  ==========================================  ================================
postgres    LangGraph's PostgreSQL checkpointer          ``--checkpointer postgres://…``
ray         Ray, to run map agents on a cluster          ``--executor ray``, ``RayExecutor``
all         every extra above
==========  ==========================================  ================================

:func:`require` turns a missing extra into one line that names the ``pip install`` command.
"""

from __future__ import annotations

import importlib.util

from treefork.errors import MissingExtraError

__all__ = ("EXTRAS", "require")

EXTRAS = {
    "postgres": ("langgraph.checkpoint.postgres", "psycopg"),
    "ray": ("ray",),
}
"""The modules each extra installs."""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing
        return False


def require(extra: str, feature: str) -> None:
    """Make sure the modules of ``extra`` are installed.

    Raises:
        MissingExtraError: One is not; the message names ``feature`` and the command.
    """
    missing = [module for module in EXTRAS[extra] if not _installed(module)]
    if missing:
        raise MissingExtraError(feature, extra, missing)
