"""Loading a workflow file: read, parse, validate everything at once, compile.

:func:`parse_workflow` does all of it on text (reading only the env files and secret
files the workflow names) and is what the tests exercise;
:func:`load_workflow` reads the file and calls it; :func:`validate_workflow` returns the
problems instead of raising. A workflow that cannot be used always ends in one
:class:`treefork.errors.WorkflowError` listing every problem with its ``file:line:col``,
sorted by position; never in another exception.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from treefork.core.validation import validate_definition
from treefork.errors import Problem, WorkflowError
from treefork.workflow.checks import Findings, check_document
from treefork.workflow.compile import compile_workflow
from treefork.workflow.diagnostics import schema_problems
from treefork.workflow.layout import workflow_format
from treefork.workflow.model import Workflow
from treefork.workflow.schema import ProdigyWorkflowSpec, TreeforkWorkflowSpec
from treefork.workflow.source import SourceDocument, SourceMap, parse_yaml
from treefork.workflow.sources import load_env_sources, workflow_folder
from treefork.workflow.typed_env import resolve_typed_settings

__all__ = ("load_workflow", "parse_workflow", "validate_workflow")


def _sort_key(problem: Problem) -> tuple[int, int, str]:
    parts = problem.where.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return int(parts[1]), int(parts[2]), problem.message
    return 0, 0, problem.message


def _schema(data: Any) -> type[ProdigyWorkflowSpec | TreeforkWorkflowSpec]:
    return TreeforkWorkflowSpec if workflow_format(data) == "treefork" else ProdigyWorkflowSpec


def _validate_schema(
    data: Any, source: SourceMap
) -> tuple[ProdigyWorkflowSpec | TreeforkWorkflowSpec | None, list[Problem]]:
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        message = "a workflow file is a mapping with name, mode and map (or domains); this one is"
        return None, [Problem(source.where(()), f"{message} {kind}")]
    model: type[BaseModel] = _schema(data)
    try:
        return _schema(data).model_validate(data), []
    except ValidationError as error:
        return None, schema_problems(error, model, data, source)


def _definition_problems(workflow: Workflow, source: SourceMap) -> list[Problem]:
    """Problems the engine's own validation still finds (a safety net: normally none)."""
    problems = validate_definition(
        workflow.domains, max_parallel=workflow.max_parallel or 1, budget=workflow.budget
    )
    return [
        Problem(source.where(()), f"{problem.where}: {problem.message}") for problem in problems
    ]


def _compile(
    spec: ProdigyWorkflowSpec | TreeforkWorkflowSpec,
    path: Path | str,
    document: SourceDocument,
    findings: Findings,
) -> Workflow:
    source = document.source
    if findings.resolved is None:
        raise WorkflowError(str(path), [Problem(source.where(()), "not a workflow mapping")])
    try:
        return compile_workflow(
            spec,
            path=Path(path),
            data=document.data,
            source=source,
            resolved=findings.resolved,
            warnings=[*document.repairs, *findings.warnings],
        )
    except (ValueError, TypeError, KeyError, IndexError) as error:
        # The checks are meant to make this unreachable; if one is missing, the user still
        # gets a WorkflowError rather than a traceback.
        problem = Problem(source.where(()), f"cannot compile this workflow: {error}")
        raise WorkflowError(str(path), [problem]) from error


def parse_workflow(
    text: str,
    *,
    path: Path | str,
    env: Mapping[str, str] | None = None,
    profile: str | None = None,
) -> Workflow:
    """Parse, check and compile workflow text.

    Args:
        text: The YAML.
        path: The file it came from (named in problems and kept in the result).
        env: The process environment for ``${NAME}`` references in ``env`` values and
            ``max_parallel`` (none when omitted).
        profile: The profile to use (see :mod:`treefork.workflow.sources`); None for
            ``$TREEFORK_PROFILE`` or the workflow's ``active_profile``, if any.

    Returns:
        The compiled workflow.

    Raises:
        WorkflowError: Every problem in the file, each at ``file:line:col``.
    """
    document = parse_yaml(text, name=str(path))
    if (
        isinstance(document.data, dict)
        and "name" not in document.data
        and workflow_format(document.data) != "treefork"
    ):
        # Prodigy's name is optional: the file's stem, as for treefork's own format.
        document.data["name"] = Path(path).stem
    sources = load_env_sources(
        document.data, document.source, env or {}, base=workflow_folder(path), profile=profile
    )
    # ${NAME} in numeric and boolean settings is resolved before their types are checked.
    typed = resolve_typed_settings(
        document.data, document.source, sources.process, sources.profile_env
    )
    spec, problems = _validate_schema(document.data, document.source)
    findings = check_document(document.data, document.source, sources)
    problems = typed.explain(problems)
    problems = sorted(
        [*sources.problems, *typed.problems, *problems, *findings.problems], key=_sort_key
    )
    if spec is None or problems:
        raise WorkflowError(str(path), problems)
    workflow = _compile(spec, path, document, findings)
    safety_net = _definition_problems(workflow, document.source)
    if safety_net:
        raise WorkflowError(str(path), safety_net)
    return workflow


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise WorkflowError(path, [Problem(str(path), "no such file")]) from error
    except IsADirectoryError as error:
        raise WorkflowError(path, [Problem(str(path), "is a directory, not a file")]) from error
    except UnicodeDecodeError as error:
        message = f"not UTF-8 text (byte {error.start}: {error.reason})"
        raise WorkflowError(path, [Problem(str(path), message)]) from error
    except OSError as error:
        message = f"cannot read: {error.strerror or error}"
        raise WorkflowError(path, [Problem(str(path), message)]) from error


def load_workflow(
    path: Path | str, *, env: Mapping[str, str] | None = None, profile: str | None = None
) -> Workflow:
    """Load a workflow file (Prodigy's MapReduce format or treefork's).

    Args:
        path: The YAML file.
        env: The process environment used for ``max_parallel: ${NAME}`` and ``${NAME}``
            in env values; ``os.environ`` when omitted.
        profile: The profile to use (``profiles``); see :func:`parse_workflow`.

    Returns:
        The compiled workflow; :attr:`Workflow.warnings` lists features it does not honour.

    Raises:
        WorkflowError: The file cannot be read or is invalid; lists every problem.
    """
    file = Path(path)
    process = dict(os.environ) if env is None else env
    return parse_workflow(_read(file), path=path, env=process, profile=profile)


def validate_workflow(
    path: Path | str, *, env: Mapping[str, str] | None = None, profile: str | None = None
) -> list[Problem]:
    """The problems of a workflow file (empty when it loads).

    Args:
        path: The YAML file.
        env: As for :func:`load_workflow`.
    """
    try:
        load_workflow(path, env=env, profile=profile)
    except WorkflowError as error:
        return list(error.problems)
    return []
