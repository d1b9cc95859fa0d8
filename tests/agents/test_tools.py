from __future__ import annotations

from pathlib import Path

import pytest

from treefork.agents import tools
from treefork.agents.tools import (
    MAX_SEARCH_MATCHES,
    list_files,
    read_file,
    resolve_inside,
    run_command,
    search,
    truncate_middle,
    write_file,
)
from treefork.errors import WorktreeError


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    root = tmp_path / "worktree"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "core.py").write_text("def add(a, b):\n    return a + b\n")
    (root / "README.md").write_text("# Demo\nTODO: write docs\n")
    (root / ".git").write_text("gitdir: /elsewhere/.git/worktrees/worktree\n")
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n")
    return secret


@pytest.mark.parametrize("path", ["README.md", "src/pkg/../pkg/core.py", "./src", "."])
def test_paths_inside_the_worktree_resolve(worktree: Path, path: str) -> None:
    resolved = resolve_inside(worktree, path)
    assert resolved.is_relative_to(worktree.resolve())


def test_absolute_path_inside_the_worktree_is_allowed(worktree: Path) -> None:
    path = str(worktree / "README.md")
    assert resolve_inside(worktree, path) == (worktree / "README.md").resolve()


@pytest.mark.parametrize("path", ["../secret.txt", "src/../../secret.txt", "/etc/passwd", ".."])
def test_paths_leaving_the_worktree_are_refused(worktree: Path, path: str) -> None:
    with pytest.raises(WorktreeError, match="resolves outside the worktree"):
        resolve_inside(worktree, path)


def test_symlink_pointing_out_is_refused(worktree: Path, outside: Path) -> None:
    (worktree / "link").symlink_to(outside)
    (worktree / "linked-dir").symlink_to(outside.parent)
    with pytest.raises(WorktreeError):
        resolve_inside(worktree, "link")
    with pytest.raises(WorktreeError):
        resolve_inside(worktree, "linked-dir/secret.txt")


def test_dangling_symlink_pointing_out_is_refused(worktree: Path, tmp_path: Path) -> None:
    (worktree / "dangling").symlink_to(tmp_path / "does-not-exist-yet")
    with pytest.raises(WorktreeError):
        write_file(worktree, "dangling", "x")
    assert not (tmp_path / "does-not-exist-yet").exists()


def test_git_metadata_is_refused(worktree: Path) -> None:
    with pytest.raises(WorktreeError, match="git metadata"):
        resolve_inside(worktree, ".git")
    with pytest.raises(WorktreeError, match="git metadata"):
        write_file(worktree, "src/../.git/config", "x")


def test_list_files_lists_every_file_relative_and_skips_git(worktree: Path) -> None:
    assert list_files(worktree).splitlines() == ["README.md", "src/pkg/core.py"]
    assert list_files(worktree, "src").splitlines() == ["src/pkg/core.py"]
    assert list_files(worktree, "README.md") == "README.md"


def test_list_files_shows_symlinks_without_following_them(worktree: Path, outside: Path) -> None:
    (worktree / "linked-dir").symlink_to(outside.parent)
    listed = list_files(worktree).splitlines()
    assert "linked-dir" in listed
    assert not any("secret" in line for line in listed)


def test_list_files_of_a_missing_directory_says_so(worktree: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        list_files(worktree, "nope")


def test_list_files_is_bounded(worktree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools, "MAX_LISTED_FILES", 1)
    listed = list_files(worktree).splitlines()
    assert listed[0] == "README.md"
    assert listed[1].startswith("... [stopped after 1 files")


def test_read_file_returns_the_text(worktree: Path) -> None:
    assert read_file(worktree, "src/pkg/core.py").startswith("def add")


def test_read_file_refuses_binary_files(worktree: Path) -> None:
    (worktree / "image.png").write_bytes(b"\x89PNG\0\0\0")
    with pytest.raises(ValueError, match="binary"):
        read_file(worktree, "image.png")


def test_read_file_truncates_long_files(worktree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools, "MAX_READ_CHARACTERS", 10)
    (worktree / "long.txt").write_text("x" * 50)
    text = read_file(worktree, "long.txt")
    assert text.startswith("x" * 10 + "\n... [truncated: showing 10 of 50 characters]")


def test_write_file_creates_directories_and_replaces_content(worktree: Path) -> None:
    assert write_file(worktree, "docs/new/guide.md", "héllo") == (
        "wrote 6 bytes to docs/new/guide.md"
    )
    assert (worktree / "docs" / "new" / "guide.md").read_text() == "héllo"
    write_file(worktree, "docs/new/guide.md", "bye")
    assert (worktree / "docs" / "new" / "guide.md").read_text() == "bye"


def test_write_through_an_inside_symlink_writes_its_target(worktree: Path) -> None:
    (worktree / "alias.md").symlink_to("README.md")
    write_file(worktree, "alias.md", "changed")
    assert (worktree / "README.md").read_text() == "changed"
    assert (worktree / "alias.md").is_symlink()


def test_escaping_writes_touch_nothing_outside(worktree: Path, outside: Path) -> None:
    (worktree / "link").symlink_to(outside)
    for path in ["../secret.txt", str(outside), "link", "src/../../secret.txt"]:
        with pytest.raises(WorktreeError):
            write_file(worktree, path, "pwned")
    assert outside.read_text() == "password=hunter2\n"


def test_search_reports_file_line_and_text(worktree: Path) -> None:
    assert search(worktree, r"return \w") == "src/pkg/core.py:2:     return a + b"
    assert search(worktree, "TODO", "README.md") == "README.md:2: TODO: write docs"


def test_search_without_matches_says_so(worktree: Path) -> None:
    assert search(worktree, "nothing-like-this") == "no matches for 'nothing-like-this'"


def test_search_rejects_an_invalid_pattern(worktree: Path) -> None:
    with pytest.raises(ValueError, match="invalid regular expression"):
        search(worktree, "(unclosed")


def test_search_skips_binary_files_and_symlinks_out(worktree: Path, outside: Path) -> None:
    (worktree / "blob.bin").write_bytes(b"password\0")
    (worktree / "link").symlink_to(outside)
    assert search(worktree, "password") == "no matches for 'password'"


def test_search_is_bounded(worktree: Path) -> None:
    (worktree / "many.txt").write_text("hit\n" * (MAX_SEARCH_MATCHES + 5))
    lines = search(worktree, "hit").splitlines()
    assert len(lines) == MAX_SEARCH_MATCHES + 1
    assert lines[-1] == f"... [stopped after {MAX_SEARCH_MATCHES} matches]"


def test_truncate_middle_keeps_start_and_end() -> None:
    assert truncate_middle("short", 10) == "short"
    cut = truncate_middle("a" * 10 + "b" * 10, 10)
    assert cut.startswith("aaaaa\n")
    assert cut.endswith("\nbbbbb")
    assert "[10 characters omitted]" in cut


async def test_run_command_runs_in_the_worktree(worktree: Path) -> None:
    output = await run_command(worktree, "pwd; echo oops >&2; exit 3")
    assert output.splitlines() == [
        "exit code 3",
        "--- stdout ---",
        str(worktree),
        "--- stderr ---",
        "oops",
    ]


async def test_run_command_does_not_see_git_redirections(
    worktree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_DIR", "/somewhere/else")
    output = await run_command(worktree, 'echo "dir=${GIT_DIR:-unset}"')
    assert "dir=unset" in output


async def test_run_command_is_killed_after_its_timeout(worktree: Path) -> None:
    output = await run_command(worktree, "sleep 30", command_timeout=0.2)
    assert output.startswith("timed out after 0.2s")


async def test_run_command_output_is_truncated(worktree: Path) -> None:
    output = await run_command(worktree, "head -c 5000 /dev/zero | tr '\\0' x", max_output=100)
    assert "characters omitted" in output
    assert len(output) < 400
