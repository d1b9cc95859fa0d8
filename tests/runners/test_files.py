from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from treefork.errors import StepError
from treefork.runners.steps import StepContext, run_step
from treefork.steps import WriteFile

MakeContext = Callable[..., StepContext]


async def test_writes_the_interpolated_file_with_its_directories_and_mode(
    make_context: MakeContext, worktree: Path
) -> None:
    context = make_context(item={"name": "a"}, item_id="a")
    step = WriteFile(
        "out/${item.name}/run.sh", "#!/bin/sh\r\necho ${item.name} $${HOME}\n", mode=0o755
    )
    result = await run_step(step, context)
    target = worktree / "out" / "a" / "run.sh"
    assert result.output == "out/a/run.sh"
    assert target.read_bytes() == b"#!/bin/sh\r\necho a ${HOME}\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


@pytest.mark.parametrize(
    "path", ["../outside.txt", "/etc/passwd-copy", "a/../../x", ".git/hooks/pre-commit", "."]
)
async def test_paths_outside_the_worktree_are_refused(make_context: MakeContext, path: str) -> None:
    with pytest.raises(StepError, match="is not a file inside the worktree"):
        await run_step(WriteFile(path, "x"), make_context())


async def test_a_symlink_out_of_the_worktree_is_refused(
    make_context: MakeContext, worktree: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (worktree / "link").symlink_to(outside)
    with pytest.raises(StepError, match="not a file inside the worktree"):
        await run_step(WriteFile("link/file.txt", "x"), make_context())
    assert not (outside / "file.txt").exists()


async def test_an_item_value_cannot_steer_the_path_out(make_context: MakeContext) -> None:
    context = make_context(item="../../escape", item_id="e")
    with pytest.raises(StepError, match="not a file inside the worktree"):
        await run_step(WriteFile("reports/${item}.json", "{}"), context)
