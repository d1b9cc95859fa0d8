"""Workflow env: values that refer to other env values, and settings taken from the env.

- An env value may use ``${NAME}`` (or ``${NAME:-default}``) to refer to another entry of
  the same ``env``, of the enclosing one (a domain's env sees the workflow's), or of the
  process environment, looked up in that order when the workflow loads. An entry that names
  itself (``ENVIRONMENT: "${ENVIRONMENT:-dev}"``) takes the outer value, else its default.
  A reference to a name defined nowhere keeps its text and gets a warning; entries that
  refer to each other in a cycle are a problem.
- ``max_parallel`` may be a number or ``"${NAME}"`` / ``"$NAME"``: the named env value
  (domain, then workflow, then process environment) must be a whole number of at least 1.
- ``map.input`` gets its ``${NAME}`` env references replaced when the workflow loads (the
  engine reads the input as written), so ``"${ANALYSIS_DIR}/items.json"`` names the file.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from treefork.core.interpolate import Reference, references

__all__ = (
    "EnvResolution",
    "env_text",
    "resolve_count",
    "resolve_env",
    "substitute_env",
)

_ENV_REFERENCE = re.compile(r"\$\{?(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}?")
_DEFAULTED_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):-(?P<default>[^}]*)\}")
"""``${NAME:-default}``: the default when NAME is unset or empty, as in the shell."""


def env_text(value: Any) -> str:
    """An env value as text: ``true``/``false`` for booleans, the ``value`` of a secret."""
    secret_value = getattr(value, "value", None)
    if isinstance(secret_value, str):
        return secret_value
    if isinstance(value, dict) and isinstance(value.get("value"), str):
        return str(value["value"])
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class EnvResolution:
    """The resolved values of an env block and what went wrong."""

    values: dict[str, str]
    problems: list[tuple[str, str]] = field(default_factory=list)
    """(entry name, message): cycles."""
    warnings: list[tuple[str, str]] = field(default_factory=list)
    """(entry name, message): references to names defined nowhere."""


def _plain(reference: Reference) -> bool:
    return reference.expression == reference.root


def _lookup(name: str, chain: Sequence[Mapping[str, str]]) -> str | None:
    for scope in chain:
        if name in scope:
            return scope[name]
    return None


@dataclass
class _Resolver:
    raw: Mapping[str, str]
    chain: Sequence[Mapping[str, str]]
    resolved: dict[str, str] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)

    def value(self, name: str, visiting: tuple[str, ...]) -> str:
        if name in self.resolved:
            return self.resolved[name]
        if name in visiting:
            cycle = " -> ".join((*visiting[visiting.index(name) :], name))
            self.problems.append((visiting[-1], f"env entries refer to each other: {cycle}"))
            return ""
        text = self.raw[name]
        pieces, last = [], 0
        for reference in references(text):
            replacement = self.replacement(reference, (*visiting, name))
            if replacement is not None:
                pieces += [text[last : reference.start], replacement]
                last = reference.end
        self.resolved[name] = "".join([*pieces, text[last:]])
        return self.resolved[name]

    def replacement(self, reference: Reference, visiting: tuple[str, ...]) -> str | None:
        if not _plain(reference):
            return None
        # An entry that names itself (ENVIRONMENT: "${ENVIRONMENT:-dev}") means the outer
        # value, as in the shell: the process environment's, else its default.
        if reference.root in self.raw and reference.root != visiting[-1]:
            return self.value(reference.root, visiting)
        found = _lookup(reference.root, self.chain)
        if found is not None and (found or reference.default is None):
            return found
        if reference.default is not None:  # unset or empty, as in the shell
            return reference.default
        self.warnings.append(
            (
                visiting[-1],
                f"refers to ${{{reference.root}}}, which neither the workflow env nor the "
                "process environment defines; the text is kept as written",
            )
        )
        return None


def resolve_env(
    raw: Mapping[str, str], *, outer: Sequence[Mapping[str, str]] = ()
) -> EnvResolution:
    """Resolve the references between env values.

    Args:
        raw: The env block, values as text.
        outer: Scopes to look names up in after ``raw``, in order (the workflow's resolved
            env for a domain env, then the process environment).

    Returns:
        Every entry's resolved value, and problems (cycles) and warnings (unknown names).
    """
    resolver = _Resolver(raw, outer)
    for name in raw:
        resolver.value(name, ())
    return EnvResolution(resolver.resolved, resolver.problems, resolver.warnings)


def resolve_count(
    value: int | str | None, chain: Sequence[Mapping[str, str]]
) -> tuple[int | None, str | None]:
    """A whole number of at least 1, given directly or as ``${NAME}``, ``$NAME`` or
    ``${NAME:-default}``.

    Args:
        value: The setting as written (None when absent).
        chain: Scopes to look a name up in, in order.

    Returns:
        (the number, None), or (None, what is wrong).
    """
    if value is None:
        return None, None
    text = str(value).strip()
    reference = _ENV_REFERENCE.fullmatch(text) or _DEFAULTED_REFERENCE.fullmatch(text)
    source = ""
    if isinstance(value, str) and reference is not None:
        name = reference.group("name")
        found = _lookup(name, chain)
        default = reference.groupdict().get("default")
        if found is None and default is None:
            return None, _undefined(name, chain)
        if found is None or (found == "" and default is not None):
            source, text = f" (${{{name}}} is unset: its default {default!r})", str(default)
        else:
            source, text = f" (${{{name}}} is {found!r})", found.strip()
    if not re.fullmatch(r"[+-]?\d+", text):
        return None, f"must be a whole number of at least 1, got {value!r}{source}"
    number = int(text)
    if number < 1:
        return None, f"must be at least 1, got {number}{source}"
    return number, None


def _undefined(name: str, chain: Sequence[Mapping[str, str]]) -> str:
    known = [key for scope in chain[:-1] for key in scope] if len(chain) > 1 else []
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
    hint = f"; did you mean ${{{close[0]}}}?" if close else ""
    return (
        f"refers to ${{{name}}}, which neither the workflow env nor the process environment "
        f"defines{hint}"
    )


def substitute_env(text: str, chain: Sequence[Mapping[str, str]]) -> tuple[str, list[Reference]]:
    """Replace plain ``${NAME}`` references found in ``chain``.

    Returns:
        The text, and the references left in it (names found nowhere, or with fields).
    """
    pieces, last, left = [], 0, []
    for reference in references(text):
        found = _lookup(reference.root, chain) if _plain(reference) else None
        if found is None:
            left.append(reference)
            continue
        pieces += [text[last : reference.start], found]
        last = reference.end
    return "".join([*pieces, text[last:]]), left
