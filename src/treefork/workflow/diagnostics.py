"""Schema errors as problems a person can act on: ``file.yml:LINE:COL: map.max_items: ...``.

pydantic reports locations as tuples through its models (``("setup", "commands", 0,
"shell")``), including parts that are not in the file (``commands`` when setup is a list,
union member names such as ``bool``). :func:`schema_problems` maps each location back onto
the document, points at the key (unknown keys) or the value (everything else), suggests
the closest allowed key for a misspelt one, and merges the alternatives of a union into one
problem.
"""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from treefork.errors import Problem
from treefork.workflow.layout import has_child
from treefork.workflow.schema import (
    ON_FAILURE_OPTIONS,
    REFUSED_STEP_KINDS,
    OnFailureSpec,
    PhaseSpec,
    StepSpec,
)
from treefork.workflow.source import DataPath, SourceMap, dotted

__all__ = ("allowed_keys", "schema_problems")

_MISPLACED: dict[str, str] = {
    "setup": "in treefork's format setup belongs inside a domain: domains.<name>.setup",
    "map": "in treefork's format map belongs inside a domain: domains.<name>.map",
    "reduce": "in treefork's format reduce belongs inside a domain: domains.<name>.reduce",
    "commands": "treefork runs MapReduce workflows: use setup, map and reduce",
}
_MISSING_AT_TOP: dict[str, str] = {
    "mode": "a Prodigy workflow needs mode: mapreduce (a treefork workflow has domains instead)",
    "map": "a Prodigy workflow needs a map phase (a treefork workflow has domains instead)",
}
_MAPPING_ERRORS = frozenset({"model_type", "model_attributes_type", "dict_type"})


def _data_path(data: Any, location: tuple[str | int, ...]) -> DataPath:
    """The part of a pydantic location that exists in the document (others are skipped)."""
    path: list[str | int] = []
    node = data
    for part in location:
        if has_child(node, part):
            node = node[part]
            path.append(part)
    return tuple(path)


def _alternatives(annotation: Any) -> list[Any]:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _alternatives(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [option for arg in get_args(annotation) for option in _alternatives(arg)]
    return [annotation]


def _field_annotation(model: type[BaseModel], name: str) -> Any:
    for field_name, info in model.model_fields.items():
        if name in (field_name, info.alias):
            return info.annotation
    return None


def _inside(annotation: Any, part: str | int) -> list[Any]:
    found = []
    for option in _alternatives(annotation):
        origin = get_origin(option)
        if isinstance(option, type) and issubclass(option, BaseModel) and isinstance(part, str):
            inner = _field_annotation(option, part)
            found += [] if inner is None else [inner]
        elif origin in (tuple, list) and isinstance(part, int):
            found.append(get_args(option)[0])
        elif origin is dict and isinstance(part, str):
            found.append(get_args(option)[1])
    return found


def _models_at(root: type[BaseModel], location: tuple[str | int, ...]) -> list[type[BaseModel]]:
    current: list[Any] = [root]
    for part in location:
        inner = [found for annotation in current for found in _inside(annotation, part)]
        current = inner or current  # a union member's name: stay where we are
    return [
        option
        for annotation in current
        for option in _alternatives(annotation)
        if isinstance(option, type) and issubclass(option, BaseModel)
    ]


def allowed_keys(root: type[BaseModel], location: tuple[str | int, ...]) -> list[str]:
    """The keys a mapping at ``location`` (a pydantic location) may have."""
    names: set[str] = set()
    for model in _models_at(root, location):
        names.update(info.alias or name for name, info in model.model_fields.items())
        if model is OnFailureSpec:
            names.update(info.alias or name for name, info in StepSpec.model_fields.items())
    if location[-3:-1] == ("on_failure", "steps"):  # Prodigy's {claude, max_attempts} form
        names.update(ON_FAILURE_OPTIONS)
    names.discard("steps")
    return sorted(names)


def _unknown_key_message(root: type[BaseModel], location: tuple[str | int, ...]) -> str:
    key = str(location[-1])
    allowed = allowed_keys(root, location[:-1])
    if key in REFUSED_STEP_KINDS and "shell" in allowed:
        return REFUSED_STEP_KINDS[key]
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key {key!r}; did you mean {close[0]!r}?"
    if key in _MISPLACED and len(location) == 1:
        return f"unknown key {key!r}: {_MISPLACED[key]}"
    return f"unknown key {key!r}; allowed: {', '.join(allowed)}"


def _expected_mapping(root: type[BaseModel], location: tuple[str | int, ...]) -> str:
    models = _models_at(root, location)
    if any(issubclass(model, PhaseSpec) for model in models):
        return "expected a list of steps (or a mapping with commands)"
    if StepSpec in models or OnFailureSpec in models:
        return "expected a step: a mapping with one of shell, claude or write_file"
    return "expected a mapping"


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _message(root: type[BaseModel], error: Any) -> str:
    kind, location = error["type"], tuple(error["loc"])
    if kind == "extra_forbidden":
        return _unknown_key_message(root, location)
    if kind == "missing":
        hint = _MISSING_AT_TOP.get(str(location[-1])) if len(location) == 1 else None
        return f"missing required key {location[-1]!r}" + (f": {hint}" if hint else "")
    if kind in _MAPPING_ERRORS:
        return _expected_mapping(root, location)
    if kind in ("tuple_type", "list_type"):
        return "expected a list"
    return str(error["msg"]).replace("Value error, ", "").replace("Input should be", "must be")


def schema_problems(
    error: ValidationError, root: type[BaseModel], data: Any, source: SourceMap
) -> list[Problem]:
    """Every schema error as a problem at its key or value.

    Args:
        error: What pydantic raised for ``root.model_validate(data)``.
        root: The model the document was validated against.
        data: The document.
        source: Positions in the file.

    Returns:
        One problem per location (alternatives of a union joined with "or").
    """
    merged: dict[tuple[DataPath, bool], tuple[list[str], str]] = {}
    for entry in error.errors(include_url=False):
        path = _data_path(data, tuple(entry["loc"]))
        at_key = entry["type"] in ("extra_forbidden", "missing")
        message = _message(root, entry)
        got = "" if at_key or ", got " in message else f", got {_describe(entry['input'])}"
        messages, _ = merged.setdefault((path, at_key), ([], got))
        if message not in messages:
            messages.append(message)
    return [
        Problem(source.where(path, key=at_key), f"{dotted(path)}: {' or '.join(messages)}{got}")
        for (path, at_key), (messages, got) in merged.items()
    ]
