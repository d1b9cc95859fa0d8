"""Where things are in a workflow document, in either format, read defensively.

The semantic checks run on the raw document (so they can report problems even where the
schema failed), and the compiler needs the position of every step; both find domains,
phases and steps through these functions. Nothing here assumes the document is valid: a
value of the wrong shape simply yields nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from treefork.core.naming import is_valid_name
from treefork.workflow.schema import (
    ON_FAILURE_OPTIONS,
    command_step,
    handler_steps_of,
    success_steps_of,
)
from treefork.workflow.source import DataPath

__all__ = (
    "COMMAND_KEYS",
    "DomainLayout",
    "Format",
    "PhaseKind",
    "StepAt",
    "domain_layouts",
    "domain_name_for",
    "get",
    "handler_steps",
    "has_child",
    "phase_steps",
    "step_kind",
    "success_steps",
    "walk_steps",
    "workflow_format",
)

Format: TypeAlias = Literal["prodigy", "treefork"]
PhaseKind: TypeAlias = Literal["setup", "agent", "reduce", "merge"]
COMMAND_KEYS = ("shell", "claude", "write_file")
"""The keys that say what a step does; a step has exactly one."""
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class StepAt:
    """A raw step and where it is."""

    path: DataPath
    step: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DomainLayout:
    """Where one domain's parts are: ``()`` for a Prodigy file, ``("domains", name)``."""

    name: str
    path: DataPath

    def at(self, *parts: str | int) -> DataPath:
        """The path of something inside the domain (``at("map", "filter")``)."""
        return (*self.path, *parts)


def workflow_format(data: Any) -> Format:
    """treefork's format when the document has ``domains``, else Prodigy's."""
    return "treefork" if isinstance(data, dict) and "domains" in data else "prodigy"


def has_child(value: Any, part: str | int) -> bool:
    """Whether ``value[part]`` exists: a key of a mapping or an index of a list."""
    if isinstance(value, dict):
        return part in value
    return isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value)


def get(data: Any, path: DataPath) -> Any:
    """The value at ``path``, or None when any part of it is missing or of another shape."""
    value = data
    for part in path:
        if not has_child(value, part):
            return None
        value = value[part]
    return value


def domain_name_for(name: str) -> str:
    """A usable domain name for a Prodigy workflow's ``name`` (unsafe characters → ``-``)."""
    if is_valid_name(name):
        return name
    cleaned = _UNSAFE_NAME.sub("-", name).replace("..", "-").strip("-.")[:64].rstrip(".-")
    return cleaned.removesuffix(".lock") or "workflow"


def domain_layouts(data: Any) -> list[DomainLayout]:
    """The domains of the document (one for a Prodigy file, named after ``name``)."""
    if workflow_format(data) == "prodigy":
        name = get(data, ("name",))
        return [DomainLayout(name if isinstance(name, str) else "workflow", ())]
    domains = get(data, ("domains",))
    if not isinstance(domains, dict):
        return []
    return [DomainLayout(str(name), ("domains", name)) for name in domains]


def phase_steps(data: Any, path: DataPath) -> list[StepAt]:
    """The steps of the phase at ``path``: a list, or a mapping with ``commands``."""
    node = get(data, path)
    if isinstance(node, dict):
        path, node = (*path, "commands"), node.get("commands")
    if not isinstance(node, list):
        return []
    return [
        StepAt((*path, index), step) for index, step in enumerate(node) if isinstance(step, dict)
    ]


def handler_steps(at: StepAt) -> list[StepAt]:
    """The ``on_failure`` steps of a step, in any of the forms Prodigy allows: a step, a
    list (of steps or command strings), one command string, ``{commands: [...]}``, a mapping
    of options with a command (or a shell and a Claude command), ``true``/``false``."""
    node = at.step.get("on_failure")
    path = (*at.path, "on_failure")
    if isinstance(node, str):  # one handler command
        return [StepAt(path, command_step(node))]
    if isinstance(node, dict) and isinstance(node.get("commands"), list):
        node, path = node["commands"], (*path, "commands")
    if isinstance(node, list):
        return [
            StepAt((*path, i), command_step(step) if isinstance(step, str) else step)
            for i, step in enumerate(node)
            if isinstance(step, dict | str)
        ]
    if not isinstance(node, dict):
        return []
    step = {k: v for k, v in node.items() if k not in ON_FAILURE_OPTIONS}
    return [StepAt(path, handler) for handler in handler_steps_of(step)]


def success_steps(at: StepAt) -> list[StepAt]:
    """The ``on_success`` steps of a step: a step, one command string, or a list."""
    written = at.step.get("on_success")
    node, path = success_steps_of(written), (*at.path, "on_success")
    if not isinstance(node, list):
        return []
    listed = isinstance(written, list)
    paths = [(*path, i) if listed else path for i in range(len(node))]
    pairs = zip(paths, node, strict=True)
    return [StepAt(where, step) for where, step in pairs if isinstance(step, dict)]


def step_kind(step: dict[str, Any]) -> str | None:
    """``shell``, ``claude`` or ``write_file`` when the step has exactly one of them."""
    kinds = [key for key in COMMAND_KEYS if key in step]
    return kinds[0] if len(kinds) == 1 else None


def walk_steps(steps: list[StepAt]) -> Iterator[StepAt]:
    """Every step and, after each, its ``on_failure`` and ``on_success`` steps
    (recursively)."""
    for at in steps:
        yield at
        yield from walk_steps(handler_steps(at))
        yield from walk_steps(success_steps(at))
