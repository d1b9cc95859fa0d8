"""Rendering bash scripts whose ``${...}`` references the shell receives as data.

A value never becomes shell code: it is not pasted into the script; it is bound to a fresh
environment variable (``TREEFORK_V1``, ...) and the script gets a reference to that variable
written for the quoting context at that point (bare, ``"..."``, ``'...'``, ``$'...'``, a
heredoc body, ``$(...)``, backticks, ``$((...))``). The rules for which references are
interpolated are in :mod:`treefork.core.references`.

Large values
------------

Environment strings are limited (128 KiB each, and all of them together share the limit of
the command line). A value over :data:`MAX_ENVIRONMENT_VALUE` bytes, or once the values
together pass :data:`MAX_ENVIRONMENT_TOTAL`, goes to :attr:`RenderedShell.files` instead:
the runner writes each entry as a file named by its key into a private directory and passes
that directory in :data:`VALUES_DIR_VARIABLE`; a first line the renderer adds to the script
reads the files into the variables (``IFS= read -r -d ''``, exact to the byte).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from treefork.core.references import (
    _INTEGER,
    _NAME,
    _REFERENCE,
    _ROOT,
    RESERVED_ROOTS,
    _reference_from,
    value_of,
)
from treefork.errors import InterpolationError

__all__ = (
    "MAX_ENVIRONMENT_TOTAL",
    "MAX_ENVIRONMENT_VALUE",
    "VALUES_DIR_VARIABLE",
    "RenderedShell",
    "render_shell",
)

VALUE_PREFIX: Final = "TREEFORK_V"
VALUES_DIR_VARIABLE: Final = "TREEFORK_VALUES_DIR"
"""The variable naming the directory that holds :attr:`RenderedShell.files`."""
MAX_ENVIRONMENT_VALUE: Final = 64 * 1024
"""Values larger than this many bytes (UTF-8) are passed through a file."""
MAX_ENVIRONMENT_TOTAL: Final = 512 * 1024
"""Once values in the environment reach this many bytes, further ones go through files."""


@dataclass(frozen=True, slots=True)
class RenderedShell:
    """A script ready for ``bash -c``, and the values it reads."""

    script: str
    """The script; values appear only as references to the variables below."""
    env: dict[str, str] = field(default_factory=dict)
    """Variables to add to the command's environment."""
    files: dict[str, str] = field(default_factory=dict)
    """Large values: file name to content, to write into a private directory whose path is
    passed in :data:`VALUES_DIR_VARIABLE`; the script reads them first."""


Context = Literal["bare", "double", "single", "ansi", "heredoc", "arithmetic"]

_ASSIGNMENT = re.compile(rf"(?<![\w$.\-])({_NAME})(?:\[[^\]\n]*\])?\+?=")
_LOOP = re.compile(rf"\b(?:for|select)\s+({_NAME})\b")
_DECLARING = re.compile(
    r"\b(?:read|local|export|declare|typeset|readonly|mapfile|readarray|getopts|printf)\b"
    r"([^;&|\n<>]*)"
)
_ASSOCIATIVE = re.compile(
    rf"\b(?:declare|local|typeset|readonly)((?:\s+-[A-Za-z]+)*\s+-[a-zA-Z]*A[a-zA-Z]*"
    rf"(?:\s+-[A-Za-z]+)*)\s+({_NAME}(?:\s+{_NAME})*)"
)
_ARITHMETIC_TEST = r"-(?:eq|ne|lt|le|gt|ge)"
_ARITHMETIC_TEST_BEFORE = re.compile(rf"\s{_ARITHMETIC_TEST}\s+[\"']?$")
_ARITHMETIC_TEST_AFTER = re.compile(rf"[\"']?\s+{_ARITHMETIC_TEST}\s")
_WORD_NAME = re.compile(rf"(?<![\w$\-]){_NAME}")
_BLANKS = " \t"
_METACHARACTERS = " \t\n;&|<>()"
_WORD_START_AFTER = " \t\n;&|()<>"


def _associative_arrays(template: str) -> frozenset[str]:
    return frozenset(
        name for match in _ASSOCIATIVE.finditer(template) for name in match.group(2).split()
    )


def _shell_names(template: str) -> frozenset[str]:
    """Names the script assigns itself (a generous over-approximation: it only decides
    whether an unknown ``${name}`` is left to the shell or reported)."""
    names = {match.group(1) for match in _ASSIGNMENT.finditer(template)}
    names.update(match.group(1) for match in _LOOP.finditer(template))
    for match in _DECLARING.finditer(template):
        names.update(_WORD_NAME.findall(match.group(1)))
    return frozenset(names)


@dataclass(slots=True)
class _Heredoc:
    delimiter: str
    quoted: bool
    strip_tabs: bool
    word_piece: int
    """Index in the output of the piece holding the delimiter word (rewritten if needed)."""


@dataclass(slots=True)
class _ShellRenderer:
    """A recursive-descent scanner over the script that tracks bash's quoting state.

    Each ``_scan_*`` method consumes the template from ``position`` up to its closer and
    appends the rewritten text to ``pieces``.
    """

    template: str
    scope: Mapping[str, Any]
    shell_names: frozenset[str]
    end: int = 0
    position: int = 0
    pieces: list[str] = field(default_factory=list)
    pending: list[_Heredoc] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    env_bytes: int = 0
    test_depth: int = 0
    """How many ``[[ ... ]]`` enclose the position (their -eq, -lt, ... are arithmetic)."""
    associative: frozenset[str] = frozenset()
    """Arrays the script declares associative (``declare -A``)."""

    # -- plumbing

    def _peek(self, text: str) -> bool:
        return self.template.startswith(text, self.position) and (
            self.position + len(text) <= self.end
        )

    def _copy(self, count: int = 1) -> None:
        stop = min(self.position + count, self.end)
        self.pieces.append(self.template[self.position : stop])
        self.position = stop

    def _bind(self, value: str, expression: str) -> str:
        """The variable holding ``value`` (one per distinct value)."""
        if value in self.variables:
            return self.variables[value]
        if "\x00" in value:
            raise InterpolationError(
                expression, "its value contains a NUL byte, which no command can receive"
            )
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError as error:
            raise InterpolationError(expression, f"its value is not valid text: {error}") from error
        index = len(self.variables) + 1
        while f"{VALUE_PREFIX}{index}" in self.template:
            index += 1
        name = f"{VALUE_PREFIX}{index}"
        self.variables[value] = name
        if size > MAX_ENVIRONMENT_VALUE or self.env_bytes + size > MAX_ENVIRONMENT_TOTAL:
            self.files[name] = value
        else:
            self.env[name] = value
            self.env_bytes += size
        return name

    def _reference(self, context: Context) -> bool:
        """Handle a ``${...}`` at the current position; False when it is not a reference."""
        match = _REFERENCE.match(self.template, self.position, self.end)
        if match is None:
            return False
        reference = _reference_from(match)
        value = value_of(reference, self.scope, self.shell_names)
        self.position = match.end()
        if value is None:
            self.pieces.append(match.group(0))
            return True
        arithmetic = context == "arithmetic" or (
            self.test_depth > 0 and self._beside_arithmetic_test(match.start(), match.end())
        )
        if arithmetic and not _INTEGER.fullmatch(value.strip()):
            raise InterpolationError(
                reference.expression,
                f"its value {value[:40]!r} is not an integer, and bash would evaluate it "
                "as an arithmetic expression here (which can run commands)",
            )
        self.pieces.append(_insertion(self._bind(value, reference.expression), context))
        return True

    def _beside_arithmetic_test(self, start: int, end: int) -> bool:
        before = self.template[max(0, start - 40) : start]
        return bool(
            _ARITHMETIC_TEST_BEFORE.search(before)
            or _ARITHMETIC_TEST_AFTER.match(self.template, end)
        )

    # -- contexts

    def scan_commands(self, closer: str | None) -> None:
        """Command level: the script itself, ``$(...)``, ``<(...)`` and backticks."""
        depth = 0
        while self.position < self.end:
            char = self.template[self.position]
            if char == closer and (closer == "`" or depth == 0):
                self._copy()
                return
            if char == ")" and closer == ")":
                depth -= 1
                self._copy()
            elif char == "(":
                depth += self._command_paren()
            else:
                self._command_character(char)

    def _command_character(self, char: str) -> None:
        if char == "\n":
            self._copy()
            self._read_heredocs()
        elif char == "#" and self._at_word_start():
            self._comment()
        elif self._peek("<<<"):
            self._copy(3)  # a here-string, not a heredoc
        elif self._peek("<<"):
            self._heredoc_operator()
        elif self._peek("[[") and self._at_word_start():
            self.test_depth += 1
            self._copy(2)
        elif self._peek("]]") and self._at_word_start() and self.test_depth:
            self.test_depth -= 1
            self._copy(2)
        elif not (char == "[" and self._assignment_subscript()):
            self._word_character("bare")

    def _assignment_subscript(self) -> bool:
        """``name[...]=``: the subscript of an indexed array is evaluated as arithmetic."""
        name = re.search(
            rf"(?:^|[{re.escape(_WORD_START_AFTER)}])({_NAME})$", self.template[: self.position]
        )
        if name is None:
            return False
        close = self.template.find("]", self.position, self.end)
        if close < 0 or not self.template.startswith(("]=", "]+="), close):
            return False
        self._copy()
        self._scan_subscript(name.group(1), "bare")
        return True

    def _scan_subscript(self, array: str, context: Context) -> None:
        """Up to the closing ``]``: arithmetic, unless the script declares the array
        associative (then its keys are plain words)."""
        if array not in self.associative:
            self._scan_arithmetic("]")
            return
        while self.position < self.end and not self._peek("]"):
            self._word_character(context)
        self._copy()

    def _command_paren(self) -> int:
        """``((`` starts an arithmetic command; any other ``(`` nests (returns 1)."""
        previous = self.template[self.position - 1] if self.position > 0 else "\n"
        if self._peek("((") and previous not in "$<>" and not previous.isalnum():
            self._copy(2)
            self._scan_arithmetic("))")
            return 0
        self._copy()
        return 1

    def _word_character(self, context: Context) -> None:
        """Quotes, escapes and expansions, shared by every context where they are special."""
        char = self.template[self.position]
        if char == "\\":
            self._copy(2)
        elif char == "'":
            self._copy()
            self._scan_single_quotes()
        elif char == '"':
            self._copy()
            self._scan_double_quotes()
        elif char == "`":
            self._copy()
            self.scan_commands("`")
        elif char == "$":
            self._dollar(context)
        else:
            self._copy()

    def _dollar(self, context: Context) -> None:
        if self._peek("${"):
            if not self._reference(context):
                self._scan_parameter(in_double_quotes=context in ("double", "heredoc"))
        elif self._peek("$(("):
            self._copy(3)
            self._scan_arithmetic("))")
        elif self._peek("$("):
            self._copy(2)
            self.scan_commands(")")
        elif self._peek("$["):
            self._copy(2)
            self._scan_arithmetic("]")
        elif self._peek("$'") and context == "bare":
            self._copy(2)
            self._scan_ansi()
        elif self._peek('$"') and context == "bare":
            self._copy(2)
            self._scan_double_quotes()
        else:
            self._copy(2 if self._peek("$$") else 1)

    def _scan_single_quotes(self) -> None:
        while self.position < self.end:
            if self._peek("'"):
                self._copy()
                return
            if not (self._peek("${") and self._reference("single")):
                self._copy()

    def _scan_ansi(self) -> None:
        while self.position < self.end:
            if self._peek("'"):
                self._copy()
                return
            if self._peek("\\"):
                self._copy(2)
            elif not (self._peek("${") and self._reference("ansi")):
                self._copy()

    def _scan_double_quotes(self) -> None:
        while self.position < self.end:
            char = self.template[self.position]
            if char == '"':
                self._copy()
                return
            if char == "\\":
                self._copy(2)
            elif char == "`":
                self._copy()
                self.scan_commands("`")
            elif char == "$":
                self._dollar("double")
            else:
                self._copy()

    def _scan_parameter(self, *, in_double_quotes: bool) -> None:
        """The user's own ``${...}`` expansion (``${#x}``, ``${x//a/b}``, ``${X:-${item}}``)."""
        name = _ROOT.match(self.template, self.position + 2, self.end)
        if name and name.group(0) in RESERVED_ROOTS and name.group(0) not in self.shell_names:
            raise InterpolationError(
                self.template[self.position + 2 : self.position + 40].split("}", maxsplit=1)[0],
                f"shell expansions of ${{{name.group(0)}}} are not supported; treefork "
                "interpolates ${name}, ${name.field}, ${name[0]} and ${name:-default}",
            )
        self._copy(2)
        context: Context = "double" if in_double_quotes else "bare"
        if name and self.template.startswith("[", name.end()):
            self._copy(name.end() + 1 - self.position)
            self._scan_subscript(name.group(0), context)
        while self.position < self.end:
            char = self.template[self.position]
            if char == "}":
                self._copy()
                return
            if char == "'" and in_double_quotes:
                self._copy()
            else:
                self._word_character(context)

    def _scan_arithmetic(self, closer: str) -> None:
        depth = 0
        while self.position < self.end:
            if depth == 0 and self._peek(closer):
                self._copy(len(closer))
                return
            char = self.template[self.position]
            if char == "(":
                depth += 1
            elif char == ")":
                depth = max(0, depth - 1)
            if char == "$":
                self._dollar("arithmetic")
            elif char in "\"`\\'":
                self._word_character("bare")
            else:
                self._copy()

    def _at_word_start(self) -> bool:
        return self.position == 0 or self.template[self.position - 1] in _WORD_START_AFTER

    def _comment(self) -> None:
        newline = self.template.find("\n", self.position, self.end)
        self._copy((self.end if newline < 0 else newline) - self.position)

    # -- heredocs

    def _heredoc_operator(self) -> None:
        strip_tabs = self._peek("<<-")
        self._copy(3 if strip_tabs else 2)
        while self.position < self.end and self.template[self.position] in _BLANKS:
            self._copy()
        start = self.position
        delimiter, quoted = self._heredoc_word()
        if not delimiter:
            return
        self.pieces.append(self.template[start : self.position])
        self.pending.append(_Heredoc(delimiter, quoted, strip_tabs, len(self.pieces) - 1))

    def _heredoc_word(self) -> tuple[str, bool]:
        word: list[str] = []
        quoted = False
        text = self.template
        while self.position < self.end and text[self.position] not in _METACHARACTERS:
            char = text[self.position]
            if char in "'\"":
                close = text.find(char, self.position + 1, self.end)
                close = self.end if close < 0 else close
                word.append(text[self.position + 1 : close])
                quoted, self.position = True, min(close + 1, self.end)
            elif char == "\\":
                word.append(text[self.position + 1 : self.position + 2])
                quoted, self.position = True, min(self.position + 2, self.end)
            else:
                word.append(char)
                self.position += 1
        return "".join(word), quoted

    def _read_heredocs(self) -> None:
        pending, self.pending = self.pending, []
        for heredoc in pending:
            self._read_heredoc(heredoc)

    def _read_heredoc(self, heredoc: _Heredoc) -> None:
        body_start = line_start = self.position
        closing: tuple[int, int] | None = None
        while line_start < self.end:
            newline = self.template.find("\n", line_start, self.end)
            line_end = self.end if newline < 0 else newline
            line = self.template[line_start:line_end]
            if (line.lstrip("\t") if heredoc.strip_tabs else line) == heredoc.delimiter:
                closing = (line_start, line_end)
                break
            line_start = line_end + 1
        body_end = closing[0] if closing else self.end
        delimiter = None
        if heredoc.quoted:
            delimiter = self._quoted_heredoc_body(heredoc, body_start, body_end)
        else:
            self._unquoted_heredoc_body(body_start, body_end)
        if closing is None:
            return
        line = self.template[closing[0] : closing[1]]
        if delimiter is not None:
            line = line[: len(line) - len(line.lstrip("\t"))] + delimiter
        self.pieces.append(line + self.template[closing[1] : closing[1] + 1])
        self.position = min(closing[1] + 1, self.end)

    def _unquoted_heredoc_body(self, start: int, stop: int) -> None:
        outer_end, outer_pending = self.end, self.pending
        self.position, self.end, self.pending = start, stop, []
        while self.position < self.end:
            char = self.template[self.position]
            if char == "\\":
                self._copy(2)
            elif char == "`":
                self._copy()
                self.scan_commands("`")
            elif char == "$":
                self._dollar("heredoc")
            else:
                self._copy()
        self.end, self.pending = outer_end, outer_pending

    def _quoted_heredoc_body(self, heredoc: _Heredoc, start: int, stop: int) -> str | None:
        """A quoted heredoc expands nothing, so a value cannot be referenced in it as it
        stands: it becomes an unquoted heredoc whose own text is escaped, under a fresh
        delimiter that no line of the body matches. Returns that delimiter, if any."""
        body = self.template[start:stop]
        self.position = stop
        found = [
            (reference, value_of(reference, self.scope, self.shell_names))
            for reference in (_reference_from(match) for match in _REFERENCE.finditer(body))
        ]
        if all(value is None for _, value in found):
            self.pieces.append(body)
            return None
        pieces, last = [], 0
        for reference, value in found:
            if value is not None:
                pieces.append(_escape_heredoc_text(body[last : reference.start]))
                pieces.append("${" + self._bind(value, reference.expression) + "}")
                last = reference.end
        pieces.append(_escape_heredoc_text(body[last:]))
        self.pieces.append("".join(pieces))
        delimiter = _fresh_delimiter(body)
        self.pieces[heredoc.word_piece] = delimiter
        return delimiter


def _insertion(variable: str, context: Context) -> str:
    if context in ("double", "heredoc", "arithmetic"):
        return f"${{{variable}}}"
    if context == "single":
        return f"'\"${{{variable}}}\"'"
    if context == "ansi":
        return f"'\"${{{variable}}}\"$'"
    return f'"${{{variable}}}"'


def _escape_heredoc_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("$", "\\$").replace("`", "\\`")


def _fresh_delimiter(body: str) -> str:
    lines = {line.lstrip("\t") for line in body.split("\n")}
    index = 0
    while f"TREEFORK_EOF_{index}" in lines:
        index += 1
    return f"TREEFORK_EOF_{index}"


def _preamble(files: Mapping[str, str]) -> str:
    reads = (
        f"IFS= read -r -d '' {name} < \"${{{VALUES_DIR_VARIABLE}}}/{name}\" || :" for name in files
    )
    return "; ".join(reads) + "\n"


def render_shell(template: str, scope: Mapping[str, Any]) -> RenderedShell:
    """Prepare a bash script whose ``${...}`` references the shell receives as data.

    Args:
        template: The script as the user wrote it.
        scope: Variables by name.

    Returns:
        The script (for ``bash -c``), the variables to add to its environment and the
        files to provide through :data:`VALUES_DIR_VARIABLE` (large values).

    Raises:
        InterpolationError: A reference cannot be resolved, a value holds a NUL byte, or a
            non-integer value is used inside ``$((...))``.
    """
    renderer = _ShellRenderer(
        template,
        scope,
        _shell_names(template),
        end=len(template),
        associative=_associative_arrays(template),
    )
    while renderer.position < renderer.end:
        renderer.scan_commands(None)
        if renderer.position < renderer.end:  # a stray ")" at top level
            renderer._copy()
    script = "".join(renderer.pieces)
    if renderer.files:
        script = _preamble(renderer.files) + script
    return RenderedShell(script, renderer.env, renderer.files)
