"""What an LLM agent may do in its worktree: list, read, write and search files, run commands.

Every path a tool is given is resolved (``..``, absolute paths and symlinks included) and must
land inside the agent's worktree, outside its ``.git``; anything else is refused with
:class:`~treefork.errors.WorktreeError` before a byte is read or written. The tools are plain
functions (the file tools are blocking; callers in async code run them in a worker thread) and
return the text the model sees. Output is bounded so one call cannot flood the model's context.

:func:`run_command` is the exception to the confinement: it runs ``bash -c`` with the worktree
as its working directory and a scrubbed environment, but the command itself can reach anything
the user running treefork can. Give it only to models you trust with a shell.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from treefork.environment import scrubbed_environment
from treefork.errors import WorktreeError
from treefork.runners.process import ProcessResult, run_process

__all__ = (
    "MAX_COMMAND_OUTPUT",
    "MAX_LISTED_FILES",
    "MAX_READ_CHARACTERS",
    "MAX_SEARCH_MATCHES",
    "list_files",
    "read_file",
    "resolve_inside",
    "run_command",
    "search",
    "write_file",
)

MAX_LISTED_FILES = 2000
"""Most paths :func:`list_files` returns."""
MAX_READ_CHARACTERS = 200_000
"""Most characters :func:`read_file` returns."""
MAX_SEARCH_MATCHES = 200
"""Most matching lines :func:`search` returns."""
MAX_COMMAND_OUTPUT = 20_000
"""Most characters of stdout, and of stderr, :func:`run_command` returns."""

_MAX_COMMAND_BYTES_KEPT = 2**20
_MAX_MATCH_LINE = 300
_MAX_SEARCHED_FILE_BYTES = 2 * 2**20
_BINARY_SNIFF_BYTES = 8192
_GIT_METADATA = ".git"


def resolve_inside(worktree: Path, path: str) -> Path:
    """The real location of ``path`` (relative to the worktree), refused if it leaves it.

    ``..`` components, absolute paths and symlinks (also dangling ones, also in parent
    directories) are all resolved before the check, so no spelling of a path reaches
    outside the worktree. The worktree's ``.git`` is refused too.

    Args:
        worktree: The agent's worktree.
        path: A path relative to the worktree, or an absolute path inside it.

    Returns:
        The resolved absolute path, inside the resolved worktree.

    Raises:
        WorktreeError: The path resolves outside the worktree or into its ``.git``.
    """
    root = worktree.resolve()
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root):
        raise WorktreeError(worktree, f"path {path!r} resolves outside the worktree; refused")
    relative = resolved.relative_to(root)
    if relative.parts[:1] == (_GIT_METADATA,):
        raise WorktreeError(worktree, f"path {path!r} is git metadata ({_GIT_METADATA}); refused")
    return resolved


def _display(root: Path, path: Path) -> str:
    relative = path.relative_to(root).as_posix()
    return relative or "."


def _files_under(root: Path, start: Path) -> Iterator[Path]:
    """Files (and symlinks) below ``start`` in sorted order, never following links or .git."""
    if not start.is_dir():
        yield start
        return
    for directory, dirnames, filenames in os.walk(start, followlinks=False):
        base = Path(directory)
        dirnames[:] = sorted(name for name in dirnames if name != _GIT_METADATA)
        linked_directories = [name for name in dirnames if (base / name).is_symlink()]
        for name in sorted([*filenames, *linked_directories]):
            if name != _GIT_METADATA:
                yield base / name


def list_files(worktree: Path, path: str = ".") -> str:
    """The files below ``path``, one worktree-relative path a line (``.git`` left out).

    Symlinks are listed but not followed. At most :data:`MAX_LISTED_FILES` are returned.

    Raises:
        WorktreeError: The path leaves the worktree.
        FileNotFoundError: The path does not exist.
    """
    root = worktree.resolve()
    start = resolve_inside(worktree, path)
    if not start.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    listed: list[str] = []
    for file in _files_under(root, start):
        if len(listed) == MAX_LISTED_FILES:
            listed.append(f"... [stopped after {MAX_LISTED_FILES} files; list a subdirectory]")
            break
        listed.append(_display(root, file))
    return "\n".join(listed) if listed else f"(no files under {path})"


def _is_binary(data: bytes) -> bool:
    return b"\0" in data[:_BINARY_SNIFF_BYTES]


def read_file(worktree: Path, path: str) -> str:
    """The text of a file (UTF-8; undecodable bytes replaced), at most
    :data:`MAX_READ_CHARACTERS` characters.

    Raises:
        WorktreeError: The path leaves the worktree.
        OSError: The file cannot be read (missing, a directory, ...).
        ValueError: The file is binary.
    """
    data = resolve_inside(worktree, path).read_bytes()
    if _is_binary(data):
        raise ValueError(f"{path} is a binary file; not shown")
    text = data.decode("utf-8", errors="replace")
    if len(text) <= MAX_READ_CHARACTERS:
        return text
    return (
        text[:MAX_READ_CHARACTERS]
        + f"\n... [truncated: showing {MAX_READ_CHARACTERS} of {len(text)} characters]"
    )


def write_file(worktree: Path, path: str, content: str) -> str:
    """Write ``content`` (UTF-8) to a file, creating parent directories; replaces the file.

    The final component is opened with ``O_NOFOLLOW``, so a symlink that appears after the
    check is not written through.

    Raises:
        WorktreeError: The path leaves the worktree.
        OSError: The file cannot be written (it is a directory, ...).
    """
    target = resolve_inside(worktree, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(target, flags, 0o644)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    return f"wrote {len(data)} bytes to {_display(worktree.resolve(), target)}"


def _searchable_text(root: Path, file: Path) -> str | None:
    """The file's text if it may be searched: inside the worktree, small, not binary."""
    try:
        real = resolve_inside(root, _display(root, file))
        if not real.is_file() or real.stat().st_size > _MAX_SEARCHED_FILE_BYTES:
            return None
        data = real.read_bytes()
    except (WorktreeError, OSError):
        return None
    return None if _is_binary(data) else data.decode("utf-8", errors="replace")


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise ValueError(f"invalid regular expression {pattern!r}: {error}") from error


def search(worktree: Path, pattern: str, path: str = ".") -> str:
    """Lines matching a Python regular expression in the text files below ``path``.

    Each match is ``file:line: text``; binary files, files over 2 MiB and symlinks leading
    out of the worktree are skipped; at most :data:`MAX_SEARCH_MATCHES` lines are returned.

    Raises:
        WorktreeError: The path leaves the worktree.
        FileNotFoundError: The path does not exist.
        ValueError: The pattern is not a valid regular expression.
    """
    regex = _compile(pattern)
    root = worktree.resolve()
    start = resolve_inside(worktree, path)
    if not start.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    matches: list[str] = []
    for file in _files_under(root, start):
        text = _searchable_text(root, file)
        for number, line in enumerate((text or "").splitlines(), start=1):
            if not regex.search(line):
                continue
            if len(matches) == MAX_SEARCH_MATCHES:
                matches.append(f"... [stopped after {MAX_SEARCH_MATCHES} matches]")
                return "\n".join(matches)
            matches.append(f"{_display(root, file)}:{number}: {line[:_MAX_MATCH_LINE]}")
    return "\n".join(matches) if matches else f"no matches for {pattern!r}"


def truncate_middle(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` characters, keeping its start and its end."""
    if len(text) <= limit:
        return text
    half = limit // 2
    omitted = len(text) - 2 * half
    return f"{text[:half]}\n... [{omitted} characters omitted] ...\n{text[len(text) - half :]}"


def describe_command_result(result: ProcessResult, timeout: float, limit: int) -> str:
    """What the model is told about a finished command: status, stdout and stderr."""
    if result.timed_out:
        status = f"timed out after {timeout:g}s; its process group was killed"
    else:
        status = f"exit code {result.exit_code}"
    stdout = truncate_middle(result.stdout, limit).rstrip("\n")
    stderr = truncate_middle(result.stderr, limit).rstrip("\n")
    return f"{status}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"


async def run_command(
    worktree: Path,
    command: str,
    *,
    command_timeout: float = 120.0,
    max_output: int = MAX_COMMAND_OUTPUT,
    read_only: bool = False,
) -> str:
    """Run ``bash -c command`` with the worktree as working directory.

    The environment is scrubbed of git redirections (:func:`scrubbed_environment`), stdin
    is ``/dev/null``, and past ``command_timeout`` the whole process group is killed. This
    is not a sandbox: the command can reach anything the user can.

    Args:
        worktree: The agent's worktree (the working directory).
        command: The bash script.
        command_timeout: Seconds before the command is killed.
        max_output: Most characters of stdout, and of stderr, returned (start and end kept).
        read_only: The agent may not commit: git refuses to move HEAD or a branch.

    Returns:
        The exit code (or the timeout), stdout and stderr, as text for the model.
    """
    # run_process logs "Executing in worktree: ..." and kills the whole group on timeout.
    result = await run_process(
        ["bash", "-c", command],
        cwd=worktree,
        env=scrubbed_environment(read_only=read_only),
        timeout=command_timeout,
        max_output=_MAX_COMMAND_BYTES_KEPT,
    )
    return describe_command_result(result, command_timeout, max_output)
