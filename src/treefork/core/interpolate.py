"""``${...}`` interpolation, compatible with Prodigy's workflows and safe for shell scripts.

Two renderers share one set of resolution rules:

- :func:`render_text` substitutes values as text: prompts, file paths and contents, env
  values, ``when`` conditions. No shell is involved.
- :func:`render_shell` prepares a bash script. A value never becomes shell code: it is not
  pasted into the script; it is bound to a fresh environment variable (``TREEFORK_V1``, ...)
  and the script gets a reference to that variable written for the quoting context at that
  point (bare, ``"..."``, ``'...'``, ``$'...'``, a heredoc body, ``$(...)``, backticks,
  ``$((...))``). Whatever the value holds (quotes, ``$(...)``, backticks, ``;``, newlines,
  a heredoc's delimiter line) the script receives exactly those characters as data.

The rules for which references are interpolated are in :mod:`treefork.core.references`;
the shell renderer is :mod:`treefork.core.shell_render`. This module is the entry point.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from treefork.core.references import (
    _REFERENCE,
    RESERVED_ROOTS,
    Reference,
    _reference_from,
    item_scope,
    references,
    resolve,
    stringify,
    value_of,
)
from treefork.core.shell_render import (
    MAX_ENVIRONMENT_TOTAL,
    MAX_ENVIRONMENT_VALUE,
    VALUES_DIR_VARIABLE,
    RenderedShell,
    render_shell,
)
from treefork.errors import InterpolationError

__all__ = (
    "MAX_ENVIRONMENT_TOTAL",
    "MAX_ENVIRONMENT_VALUE",
    "RESERVED_ROOTS",
    "VALUES_DIR_VARIABLE",
    "Reference",
    "RenderedShell",
    "item_scope",
    "references",
    "render_shell",
    "render_text",
    "resolve",
    "stringify",
)

_TEXT_TOKEN = re.compile(r"\$\$\{|\$\{|\$(?P<bare>[A-Z_][A-Z0-9_]*)")


def render_text(template: str, scope: Mapping[str, Any]) -> str:
    """Substitute references as plain text (prompts, paths, file contents, env values).

    Args:
        template: Text with ``${...}`` references; ``$${`` stands for a literal ``${``.
        scope: Variables by name.

    Returns:
        The text with every reference replaced by :func:`stringify` of its value.

    Raises:
        InterpolationError: A reference cannot be resolved (there is no shell to leave
            ``${HOME}`` to: upper-case names must be in scope too).
    """
    pieces: list[str] = []
    position = 0
    for token in _TEXT_TOKEN.finditer(template):
        if token.start() < position:
            continue
        pieces.append(template[position : token.start()])
        position = token.end()
        if token.group(0) == "$${":
            pieces.append("${")
        elif token.group("bare") is not None:
            name = token.group("bare")
            pieces.append(stringify(scope[name]) if name in scope else token.group(0))
        else:
            match = _REFERENCE.match(template, token.start())
            if match is None:
                snippet = template[token.start() : token.start() + 30].split("}", maxsplit=1)[0]
                raise InterpolationError(
                    snippet[2:], "not a valid reference (write $${ for a literal ${)"
                )
            pieces.append(value_of(_reference_from(match), scope, None) or "")
            position = match.end()
    pieces.append(template[position:])
    return "".join(pieces)
