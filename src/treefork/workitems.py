"""Reading work-item input: a JSON file, or the text a command printed.

Choosing and ordering items is :func:`treefork.core.items.select_items`; this module only turns
bytes into a document. Running input commands is the map phase's job, not this module's.

- :func:`parse_items_text` reads command output: a JSON list or object when the text is one,
  otherwise one item (a string) per non-empty line, with surrounding whitespace removed. A
  command printing a lone JSON scalar such as ``42`` therefore yields the item ``"42"``.
- :func:`load_items_file` reads a file: a ``.json`` file must hold valid JSON (an error names
  the file, line and column); any other file is read like command output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from treefork.errors import WorkItemError

__all__ = ("load_items_file", "parse_items_text")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


_TOO_DEEP = "hundreds of levels of lists or objects; work items are flat records"


def parse_items_text(text: str, *, source: str) -> Any:
    """The document in ``text``: JSON when it is a JSON list or object, else its lines.

    Args:
        text: Output of an input command (or contents of a file).
        source: Names the input (the command) in the one error there can be.

    Returns:
        The parsed JSON list or object, or the list of non-empty lines.

    Raises:
        WorkItemError: The text is JSON nested too deeply for Python's parser.
    """
    try:
        document = json.loads(text)
    except ValueError:
        return _lines(text)
    except RecursionError:
        raise WorkItemError(source, f"JSON nests too deeply ({_TOO_DEEP})") from None
    if isinstance(document, list | dict):
        return document
    return _lines(text)


def _read_text(path: Path, source: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise WorkItemError(source, f"{path}: no such file") from error
    except IsADirectoryError as error:
        raise WorkItemError(source, f"{path}: is a directory, not a file") from error
    except UnicodeDecodeError as error:
        raise WorkItemError(
            source, f"{path}: not UTF-8 text (byte {error.start}: {error.reason})"
        ) from error
    except OSError as error:
        raise WorkItemError(source, f"{path}: cannot read: {error.strerror or error}") from error


def load_items_file(path: Path, *, source: str) -> Any:
    """Read the work-item document in ``path``.

    Args:
        path: The file; ``.json`` files must be valid JSON.
        source: Names the input in error messages (the workflow's ``map.input``).

    Returns:
        The parsed document (see :func:`parse_items_text` for files that are not ``.json``).

    Raises:
        WorkItemError: The file is missing, unreadable, or (``.json``) not valid JSON; the
            reason names the file, and for JSON the line and column.
    """
    text = _read_text(path, source)
    if path.suffix.lower() != ".json":
        return parse_items_text(text, source=source)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise WorkItemError(
            source, f"{path}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}"
        ) from error
    except RecursionError:
        raise WorkItemError(source, f"{path}: JSON nests too deeply ({_TOO_DEEP})") from None
