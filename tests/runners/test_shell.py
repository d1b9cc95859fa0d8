from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from treefork.errors import StepError
from treefork.runners.steps import StepContext, run_step, run_steps
from treefork.steps import Shell

MakeContext = Callable[..., StepContext]
Git = Callable[..., str]


async def test_large_values_reach_the_script_intact(make_context: MakeContext) -> None:
    big = "$(touch canary) 'quoted' \"double\"\n" * 20_000
    context = make_context(item=big, item_id="big")
    result = await run_step(Shell("printf '%s' ${item} | wc -c; ls canary 2>&1 || true"), context)
    lines = result.output.splitlines()
    assert int(lines[0]) == len(big.encode())
    assert "No such file" in lines[1]


async def test_a_script_longer_than_one_argument_still_runs(make_context: MakeContext) -> None:
    script = "x=1\n" * 40_000 + "echo done ${item}"
    result = await run_step(Shell(script), make_context(item="ok", item_id="1"))
    assert result.output == "done ok\n"


async def test_values_never_land_in_the_worktree(
    make_context: MakeContext, worktree: Path, git: Git
) -> None:
    big = "x" * 200_000
    result = await run_step(
        Shell('printf %s "$TREEFORK_VALUES_DIR"; printf %s ${item} >/dev/null'),
        make_context(item=big, item_id="big"),
    )
    assert not await anyio.Path(result.output).exists()
    assert not Path(result.output).is_relative_to(worktree)
    assert git(worktree, "status", "--porcelain") == ""


async def test_shell_output_is_kept_even_when_the_step_fails(make_context: MakeContext) -> None:
    context = make_context()
    outcome = await run_steps([Shell("echo partial; echo bad >&2; exit 5")], context)
    assert outcome.error is not None
    assert context.variables["shell"] == {"output": "partial", "stderr": "bad\n", "exit_code": 5}


async def test_a_missing_reference_fails_before_anything_runs(
    make_context: MakeContext, worktree: Path
) -> None:
    with pytest.raises(StepError, match=r"item has no field 'nme'; fields: name"):
        await run_step(
            Shell("touch ran; echo ${item.nme}"), make_context(item={"name": 1}, item_id="1")
        )
    assert not (worktree / "ran").exists()
