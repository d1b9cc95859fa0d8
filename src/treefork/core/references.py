"""References (``${...}``): finding them, resolving them against a scope, and
turning values into text.

Which references are interpolated
---------------------------------

A reference is ``${name}``, ``${name.field}``, ``${name.list[0]}``, ``${name['a key']}``,
optionally with a default: ``${name:-default}`` or Prodigy's ``${name|default:value}``.

1. Its root is in scope (the scope is what the engine passes: see :func:`item_scope`,
   ``map``, ``shell``, captured variables, workflow and domain env names): the value is
   looked up (:func:`resolve`); a missing field is an error unless there is a default.
2. Its root is reserved (``item``, ``item_json``, ``item_id``, ``item_index``,
   ``item_total``, ``map``, ``shell``) but not in scope: the default, else an error.
3. Shell scripts only: a root that the script assigns itself (``name=``, ``for name in``,
   ``read name``, ``local``/``export``/``declare name``, ...) or that is all upper case
   (environment convention: ``${HOME}``) is the shell's, and stays exactly as written, its
   default included.
4. Otherwise the default, else an error naming the closest known name
   ("unknown variable ${nme}; did you mean ${name}?").

What the user wrote for the shell stays as written: ``$1`` in awk, ``$count``, ``$(...)``,
``$((...))``, ``${#list[@]}``, ``${var//a/b}`` and ``\\${...}`` (escaped). Unbraced
``$name`` is never interpolated in shell scripts: write ``$name`` to reach a shell or
environment variable that rule 1 would otherwise claim. References inside shell comments
are left alone. In :func:`render_text`, ``$${`` writes a literal ``${`` and an unbraced
``$NAME`` (upper case) is replaced when ``NAME`` is in scope (Prodigy's ``$PROJECT_NAME``).

Where bash evaluates text as an arithmetic expression, text can run commands
(``x[$(cmd)]``), so a value placed there must be an integer: inside ``$((...))``,
``((...))`` and ``$[...]``, in the subscript of an indexed array (``a[${i}]=``,
``${a[${i}]}``; keys of arrays the script declares with ``declare -A`` take any value), and
beside ``-eq``, ``-ne``, ``-lt``, ``-le``, ``-gt``, ``-ge`` inside ``[[ ... ]]``. What the
script itself later does with a value (``let``, ``declare -i``, ``$((var))`` of a variable
holding it, ``eval``) is the script's own business.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from treefork.errors import InterpolationError

__all__ = (
    "RESERVED_ROOTS",
    "Reference",
    "item_scope",
    "references",
    "resolve",
    "stringify",
    "value_of",
)


RESERVED_ROOTS: Final = frozenset(
    {"item", "item_json", "item_id", "item_index", "item_total", "map", "shell"}
)
"""Roots that always belong to treefork: a reference to them must resolve (or have a default)."""


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_ACCESSOR = r"(?:\.[A-Za-z0-9_-]+|\[(?:-?[0-9]+|'[^'\]]*'|\"[^\"\]]*\")\])"
_DEFAULT = r"(?:[^}$]|\$(?!\{))*"
_REFERENCE = re.compile(
    rf"\$\{{(?P<expression>{_NAME}{_ACCESSOR}*)"
    rf"(?::-(?P<default>{_DEFAULT})|\|default:(?P<prodigy_default>{_DEFAULT}))?\}}"
)
_ROOT = re.compile(_NAME)
_ACCESSOR_TOKEN = re.compile(
    r"\.(?P<field>[A-Za-z0-9_-]+)"
    r"|\[(?:(?P<index>-?[0-9]+)|'(?P<single>[^'\]]*)'|\"(?P<double>[^\"\]]*)\")\]"
)
_ENVIRONMENT_STYLE = re.compile(r"[A-Z_][A-Z0-9_]*")
_INTEGER = re.compile(r"[+-]?[0-9]+")

_SCOPE_HINTS: Final = {
    "item": "only map agents have an item",
    "item_json": "only map agents have an item",
    "item_id": "only map agents have an item",
    "item_index": "only map agents have an item",
    "item_total": "only map agents have an item",
    "map": "map results exist only in reduce",
    "shell": "no shell step has run yet",
}


@dataclass(frozen=True, slots=True)
class Reference:
    """One ``${...}`` reference in a template."""

    expression: str
    """What is looked up: ``item.a.b[0]``, ``map.successful``, ``name``."""
    start: int
    """Offset of the ``$`` in the template."""
    end: int
    """Offset just past the closing ``}``."""
    default: str | None
    """The default (``${name:-default}`` or ``${name|default:value}``), if any."""

    @property
    def root(self) -> str:
        """The variable the expression starts from (``item`` for ``item.a[0]``)."""
        match = _ROOT.match(self.expression)
        return match.group(0) if match else self.expression


def _reference_from(match: re.Match[str]) -> Reference:
    default = match.group("default")
    if default is None:
        default = match.group("prodigy_default")
    return Reference(match.group("expression"), match.start(), match.end(), default)


def references(template: str) -> tuple[Reference, ...]:
    """Every ``${...}`` reference in a template, read as text (``$${`` is an escape).

    Args:
        template: A shell script, prompt or any other template.

    Returns:
        The references in order; shell syntax such as ``${#x}`` or ``${x//a/b}`` is not one.
    """
    return tuple(
        _reference_from(match)
        for match in _REFERENCE.finditer(template)
        if template[max(0, match.start() - 1) : match.start()] != "$"
    )


def item_scope(
    item: Any, *, item_id: str | None, item_index: int | None, item_total: int | None
) -> dict[str, Any]:
    """The scope entries of one work item (``item``, ``item_json``, ``item_id``, ...).

    Args:
        item: The work item as loaded (string, number or JSON object).
        item_id: Its stable id.
        item_index: Its position among the selected items.
        item_total: How many items were selected.

    Returns:
        ``item`` and ``item_json`` always; the others when given.
    """
    scope: dict[str, Any] = {
        "item": item,
        "item_json": json.dumps(item, ensure_ascii=False, separators=(",", ":"), default=str),
    }
    for name, value in (
        ("item_id", item_id),
        ("item_index", item_index),
        ("item_total", item_total),
    ):
        if value is not None:
            scope[name] = value
    return scope


def stringify(value: Any) -> str:
    """The text a value is interpolated as.

    Strings as they are; dicts, lists and tuples as compact JSON (``{"a":1}``, non-ASCII
    kept); booleans as ``true``/``false``; numbers as JSON writes them (``3``, ``2.5``);
    None as the empty string; anything else as ``str(value)``.
    """
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    if isinstance(value, Mapping):
        return stringify(dict(value))
    return str(value)


# --- resolution ------------------------------------------------------------------------


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"


def _as_container(value: Any) -> Any:
    """A JSON text is looked into as the value it encodes (``${shell.output.key}``)."""
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _field(value: Any, key: str, path: str, expression: str) -> Any:
    if isinstance(value, Mapping):
        if key in value:
            return value[key]
        fields = ", ".join(str(name) for name in value) or "(none)"
        raise InterpolationError(expression, f"{path} has no field {key!r}; fields: {fields}")
    if isinstance(value, Sequence) and not isinstance(value, str) and _INTEGER.fullmatch(key):
        return _index(value, int(key), path, expression)
    raise InterpolationError(
        expression, f"{path} is {_describe(value)}, not an object with field {key!r}"
    )


def _index(value: Any, index: int, path: str, expression: str) -> Any:
    if isinstance(value, Mapping):
        return _field(value, str(index), path, expression)
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise InterpolationError(expression, f"{path} is {_describe(value)}, not a list")
    if -len(value) <= index < len(value):
        return value[index]
    raise InterpolationError(
        expression, f"{path} has no index {index} (it has {len(value)} elements)"
    )


def _unknown_variable(
    root: str, scope: Mapping[str, Any], expression: str | None = None
) -> InterpolationError:
    """``root`` is not in scope; the message names the whole ``expression``
    (``${workflow.name}``, not ``${workflow}``)."""
    if root in RESERVED_ROOTS:
        return InterpolationError(root, f"${{{root}}} is not in scope here ({_SCOPE_HINTS[root]})")
    close = difflib.get_close_matches(root, [str(name) for name in scope], n=1, cutoff=0.6)
    hint = f"; did you mean ${{{close[0]}}}?" if close else ""
    return InterpolationError(root, f"unknown variable ${{{expression or root}}}{hint}")


def resolve(expression: str, scope: Mapping[str, Any]) -> Any:
    """Look an expression up in a scope.

    Args:
        expression: ``name``, ``item.a.b[0]``, ``map.results``, ``metadata.commit``;
            ``.0`` indexes a list like ``[0]`` does, and a JSON text is looked into.
        scope: Variables by name.

    Returns:
        The value, not stringified.

    Raises:
        InterpolationError: The expression is malformed or something on its path is
            missing; the message names what was missing and what exists.
    """
    root_match = _ROOT.match(expression)
    if root_match is None:
        raise InterpolationError(expression, "not a valid reference")
    root = root_match.group(0)
    if root not in scope:
        raise _unknown_variable(root, scope, expression)
    value, path, position = scope[root], root, root_match.end()
    while position < len(expression):
        token = _ACCESSOR_TOKEN.match(expression, position)
        if token is None:
            raise InterpolationError(expression, f"not a valid reference after {path!r}")
        value = _as_container(value)
        if token.group("index") is not None:
            value = _index(value, int(token.group("index")), path, expression)
        else:
            key = token.group("field") or token.group("single") or token.group("double") or ""
            value = _field(value, key, path, expression)
        path, position = expression[: token.end()], token.end()
    return value


def _belongs_to_shell(reference: Reference, shell_names: frozenset[str] | None) -> bool:
    """Rule 3: a name the script assigns, or an environment-style name, is the shell's."""
    root = reference.root
    if shell_names is None or root in RESERVED_ROOTS:
        return False
    if root in shell_names:
        return "." not in reference.expression  # ${list[0]} of the script's own array
    return reference.expression == root and _ENVIRONMENT_STYLE.fullmatch(root) is not None


def value_of(
    reference: Reference, scope: Mapping[str, Any], shell_names: frozenset[str] | None
) -> str | None:
    """The text for a reference, or None when it is the shell's (see the module doc)."""
    if reference.root in scope:
        try:
            return stringify(resolve(reference.expression, scope))
        except InterpolationError:
            if reference.default is None:
                raise
            return reference.default
    if _belongs_to_shell(reference, shell_names):
        return None
    if reference.default is not None:
        return reference.default
    raise _unknown_variable(reference.root, scope, reference.expression)
