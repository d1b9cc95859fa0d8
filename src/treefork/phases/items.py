"""Loading a domain's work items: from a literal list, a JSON file or a command."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

from treefork.core.interpolate import references, resolve
from treefork.core.items import WorkItem, select_items
from treefork.domain import CommandItems, JsonFile, Map
from treefork.environment import scrubbed_environment
from treefork.errors import InterpolationError, WorkItemError
from treefork.runners.process import run_process
from treefork.steps import AgentStep, Claude, Shell, Step, WriteFile
from treefork.workitems import load_items_file, parse_items_text

__all__ = ("classify_input", "item_field_problems", "load_work_items")


def classify_input(source: str, worktree: Path) -> JsonFile | CommandItems:
    """Read a plain ``map.input`` string the way Prodigy does.

    An existing file, or a single word ending in ``.json``, is a JSON file; anything else is
    a command whose stdout gives the items.
    """
    candidate = source.strip()
    is_single_word = candidate and not any(character.isspace() for character in candidate)
    if is_single_word and ((worktree / candidate).is_file() or candidate.endswith(".json")):
        return JsonFile(candidate)
    return CommandItems(source)


async def _document(
    source: Any, worktree: Path, env: Mapping[str, str], domain: str
) -> tuple[Any, str]:
    if isinstance(source, str):
        source = await anyio.to_thread.run_sync(classify_input, source, worktree)
    if isinstance(source, JsonFile):
        path = worktree / source.path
        document = await anyio.to_thread.run_sync(
            functools.partial(load_items_file, path, source=source.path)
        )
        return document, source.path
    if isinstance(source, CommandItems):
        result = await run_process(
            ["bash", "-c", source.command],
            cwd=worktree,
            env=scrubbed_environment(dict(env)),
            timeout=source.timeout or 600.0,
        )
        label = f"command `{source.command.strip()}`"
        if result.timed_out:
            raise WorkItemError(label, "the input command timed out", domain=domain)
        if result.exit_code != 0:
            tail = (result.stderr or result.stdout).strip()[-500:]
            raise WorkItemError(label, f"exit code {result.exit_code}: {tail}", domain=domain)
        return parse_items_text(result.stdout, source=label), label
    return list(source), "the literal list"


async def load_work_items(
    map_: Map, *, worktree: Path, env: Mapping[str, str], domain: str
) -> list[WorkItem]:
    """The selected work items of a domain's map phase.

    Raises:
        WorkItemError: The input is missing, fails, is not valid, or selection fails.
    """
    try:
        document, label = await _document(map_.input, worktree, env, domain)
    except WorkItemError as error:
        if error.domain is not None:
            raise
        raise WorkItemError(error.source, error.reason, domain=domain) from error
    try:
        items = select_items(
            document,
            json_path=map_.json_path,
            filter=map_.filter,
            sort_by=map_.sort_by,
            offset=map_.offset,
            max_items=map_.max_items,
            distinct=map_.distinct,
            source=label,
        )
    except WorkItemError as error:
        raise WorkItemError(label, error.reason, domain=domain) from error
    problems = item_field_problems(map_.agent, items)
    if problems:
        # Before any agent starts: every one of them would fail on it.
        raise WorkItemError(label, "; ".join(problems), domain=domain)
    return items


def _texts(step: Step) -> list[str]:
    if isinstance(step, Shell):
        return [step.command]
    if isinstance(step, Claude):
        return [step.prompt]
    if isinstance(step, WriteFile):
        return [step.path, step.content]
    if isinstance(step, AgentStep):
        return [step.prompt or ""]
    return []


def _templates(step: Step) -> Iterator[tuple[str, str]]:
    for text in (*_texts(step), step.when, step.working_dir, *step.env.values()):
        if text:
            yield step.label, text
    for inner in (*step.on_failure, *step.on_success):
        yield from _templates(inner)


def item_field_problems(steps: Sequence[Step], items: Sequence[WorkItem]) -> list[str]:
    """``${item.field}`` references (without a default) that no item can satisfy.

    A field some items have is fine (the others fail on their own); one that none has is a
    typo, reported with the closest field the items do have.
    """
    if not items:
        return []
    problems: dict[str, str] = {}
    for label, text in (pair for step in steps for pair in _templates(step)):
        for reference in references(text):
            expression = reference.expression
            if reference.root != "item" or expression == "item" or reference.default is not None:
                continue
            if expression in problems or any(_resolves(expression, item) for item in items):
                continue
            problems[expression] = _no_item_has(expression, label, items)
    return list(problems.values())


def _resolves(expression: str, item: WorkItem) -> bool:
    try:
        resolve(expression, {"item": item.value})
    except InterpolationError:
        return False
    return True


def _no_item_has(expression: str, label: str, items: Sequence[WorkItem]) -> str:
    objects = [item.value for item in items if isinstance(item.value, dict)]
    keys = sorted({str(key) for value in objects for key in value})
    wanted = expression.removeprefix("item.").split(".")[0].split("[")[0]
    close = difflib.get_close_matches(wanted, keys, n=1, cutoff=0.6)
    hint = f"; did you mean ${{item.{close[0]}}}?" if close else ""
    fields = f" (their fields: {', '.join(keys)})" if keys else " (the items are not objects)"
    return f"step {label!r} uses ${{{expression}}}, which no item has{hint}{fields}"
