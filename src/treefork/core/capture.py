"""Turning a step's captured output into a variable's value.

Formats (``capture_format``):

- ``string``: the output without its trailing line breaks.
- ``number``: an integer when the trimmed output is one (``42``), else a finite float.
- ``json``: the output parsed as JSON (any JSON value).
- ``lines``: a list of the output's lines, without their line breaks (trailing empty
  lines dropped, empty lines in between kept).
- ``boolean``: ``true``/``yes``/``on``/``1`` or ``false``/``no``/``off``/``0``/empty, any
  case, surrounding white space ignored.

Errors are ``ValueError`` naming the variable and the format.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final, get_args

from treefork.steps import CaptureFormat

__all__ = ("CAPTURE_FORMATS", "parse_capture")

CAPTURE_FORMATS: Final = frozenset(get_args(CaptureFormat))
"""The formats :func:`parse_capture` accepts."""

_INTEGER = re.compile(r"[+-]?[0-9]+")
_TRUE: Final = frozenset({"true", "yes", "on", "1"})
_FALSE: Final = frozenset({"false", "no", "off", "0", ""})


def _problem(variable: str, capture_format: str, reason: str) -> ValueError:
    return ValueError(f"cannot capture {variable!r} as {capture_format}: {reason}")


def _preview(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _number(output: str, variable: str) -> int | float:
    text = output.strip()
    if _INTEGER.fullmatch(text):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise _problem(variable, "number", f"{_preview(text)} is not a number")
    return value


def _json(output: str, variable: str) -> Any:
    try:
        return json.loads(output)
    except ValueError as error:
        raise _problem(variable, "json", f"{error} in {_preview(output.strip())}") from error


def _boolean(output: str, variable: str) -> bool:
    word = output.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise _problem(variable, "boolean", f"{_preview(output.strip())} is not true or false")


def parse_capture(output: str, capture_format: str, *, variable: str) -> Any:
    """The value of a captured variable.

    Args:
        output: The captured text.
        capture_format: One of :data:`CAPTURE_FORMATS`.
        variable: The variable's name, for error messages.

    Returns:
        A str, int or float, any JSON value, a list of str, or a bool.

    Raises:
        ValueError: The output does not fit the format, or the format is unknown.
    """
    if capture_format == "string":
        return output.rstrip("\r\n")
    if capture_format == "number":
        return _number(output, variable)
    if capture_format == "json":
        return _json(output, variable)
    if capture_format == "lines":
        return output.rstrip("\r\n").splitlines() if output.strip("\r\n") else []
    if capture_format == "boolean":
        return _boolean(output, variable)
    known = ", ".join(sorted(CAPTURE_FORMATS))
    raise _problem(variable, capture_format, f"unknown format (known: {known})")
