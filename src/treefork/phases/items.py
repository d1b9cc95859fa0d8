"""Loading a domain's work items: from a literal list, a JSON file or a command."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from treefork.core.items import WorkItem, select_items
from treefork.domain import CommandItems, JsonFile, Map
from treefork.environment import scrubbed_environment
from treefork.errors import WorkItemError
from treefork.runners.process import run_process
from treefork.workitems import load_items_file, parse_items_text

__all__ = ("classify_input", "load_work_items")


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
        return select_items(
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
