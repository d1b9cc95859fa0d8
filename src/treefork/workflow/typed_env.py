"""``${NAME}`` in numeric and boolean settings, resolved before their types are checked.

Prodigy's documentation writes ``agent_timeout_secs: ${AGENT_TIMEOUT}`` and
``continue_on_failure: ${CONTINUE:-false}``. A setting whose whole value is ``${NAME}``,
``$NAME`` or ``${NAME:-default}`` takes the named value (the workflow's ``env``, then the
process environment; the default when it is unset or empty), read as YAML reads a scalar
(``30`` a number, ``true`` a boolean), before the schema checks its type: a bad value is
then named with the variable it came from. A name set nowhere and without a default is a
problem naming the variable. ``max_parallel`` keeps its own check (it also names the value
it found).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from treefork.errors import Problem
from treefork.workflow.env import env_text, resolve_env
from treefork.workflow.source import DataPath, SourceMap

__all__ = ("TYPED_SETTINGS", "TypedSettings", "resolve_typed_settings")

TYPED_SETTINGS = frozenset(
    {
        # numbers
        "agent_timeout_secs", "timeout", "max_items", "offset", "max_attempts", "attempts",
        "max_failures", "failure_threshold", "max_retries", "tokens", "cost", "agent_runs",
        "initial_delay", "max_delay", "backoff_multiplier", "delay",
        # booleans
        "commit_required", "continue_on_failure", "fail_workflow", "critical", "stdout",
        "stderr", "exit_code", "success", "duration", "create_dirs", "enable_monitoring",
        "auto_commit", "required",
    }
)  # fmt: skip
"""Keys whose values are numbers or booleans wherever they appear."""

_WHOLE_REFERENCE = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)
_SCALARS = YAML(typ="safe", pure=True)
_NOT_SETTINGS = frozenset({"env", "profiles", "secrets", "env_files"})
"""Top-level blocks of variables, not settings."""


def _scalar(text: str) -> Any:
    """Text read as the workflow file's own values are (YAML): a number or a boolean, else
    the text as it is."""
    try:
        value = _SCALARS.load(text)
    except YAMLError:
        return text
    return value if isinstance(value, int | float | bool) else text


def _env_chain(
    data: Mapping[str, Any], process: Mapping[str, str], profile: Mapping[str, str]
) -> list[Mapping[str, str]]:
    raw = data.get("env") if isinstance(data.get("env"), dict) else None
    texts = {str(key): env_text(value) for key, value in (raw or {}).items()}
    texts.update(profile)
    if not texts:
        return [process]
    return [resolve_env(texts, outer=[process]).values, process]


@dataclass
class TypedSettings:
    """What resolving the references found."""

    problems: list[Problem] = field(default_factory=list)
    """Names set nowhere that have no default."""
    origins: dict[str, str] = field(default_factory=dict)
    """``file:line:col`` of each replaced value: the reference it came from."""

    def explain(self, problems: Sequence[Problem]) -> list[Problem]:
        """``problems`` with those about a replaced value naming where it came from."""
        return [
            Problem(p.where, f"{p.message} (from {self.origins[p.where]})")
            if p.where in self.origins
            else p
            for p in problems
        ]


def resolve_typed_settings(
    data: Any,
    source: SourceMap,
    process: Mapping[str, str],
    profile: Mapping[str, str] | None = None,
) -> TypedSettings:
    """Replace whole-value references in numeric and boolean settings (in place).

    Args:
        data: The document.
        source: Positions in the file.
        process: The process environment (with the env files over it).
        profile: The active profile's variables (over the workflow's ``env``).
    """
    found = TypedSettings()
    if isinstance(data, dict):
        _Resolver(_env_chain(data, process, profile or {}), source, found).walk(data, ())
    return found


@dataclass
class _Resolver:
    chain: Sequence[Mapping[str, str]]
    source: SourceMap
    settings: TypedSettings

    def walk(self, node: Any, path: DataPath) -> None:
        if isinstance(node, list):
            for index, child in enumerate(node):
                self.walk(child, (*path, index))
            return
        if not isinstance(node, dict):
            return
        for key in list(node):
            value = node[key]
            if key in TYPED_SETTINGS and isinstance(value, str):
                match = _WHOLE_REFERENCE.fullmatch(value.strip())
                if match is not None:
                    self.replace(node, key, match, (*path, key))
                    continue
            if key != "env" and (path or key not in _NOT_SETTINGS):
                self.walk(value, (*path, key))

    def replace(
        self, node: dict[str, Any], key: str, match: re.Match[str], path: DataPath
    ) -> None:
        name = match.group("name") or match.group("bare")
        default = match.group("default")
        found = next((scope[name] for scope in self.chain if name in scope), None)
        origin = f"${{{name}}} = {found!r}"
        if found is None or (found == "" and default is not None):
            if default is None:
                self.settings.problems.append(
                    self.source.problem(
                        path,
                        f"refers to ${{{name}}}, which neither the workflow env nor the "
                        f"process environment defines (give it a default: ${{{name}:-VALUE}})",
                    )
                )
                del node[key]  # its type is not checked too: one problem, naming the variable
                return
            origin = f"${{{name}}} unset: its default {default!r}"
            found = default
        self.settings.origins[self.source.where(path)] = origin
        node[key] = _scalar(found)
