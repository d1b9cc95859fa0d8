from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from treefork.errors import StepError, StepTimeoutError
from treefork.runners.context import interpolation_scope, rendered_environment, time_limit
from treefork.runners.steps import StepContext, run_step
from treefork.steps import Shell

MakeContext = Callable[..., StepContext]


async def test_env_is_interpolated_and_reaches_the_command(
    make_context: MakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLER_TOKEN", "secret")
    monkeypatch.setenv("GIT_DIR", "/elsewhere/.git")
    context = make_context(
        env={"OUT": "out-${item.name}", "TOKEN": "${CALLER_TOKEN}"},
        item={"name": "a b"},
        item_id="a",
    )
    step = Shell('echo "$OUT|$TOKEN|$LOCAL|${OUT}|${GIT_DIR-unset}"', env={"LOCAL": "${OUT}/x"})
    result = await run_step(step, context)
    assert result.output == "out-a b|secret|out-a b/x|out-a b|unset\n"


async def test_item_keys_are_in_scope(make_context: MakeContext) -> None:
    context = make_context(item={"id": 7}, item_id="7", item_index=2, variables={"item_total": 9})
    result = await run_step(
        Shell("echo ${item.id} ${item_id} ${item_index} ${item_total} '${item_json}'"), context
    )
    assert result.output == '7 7 2 9 {"id":7}\n'


async def test_working_dir_must_stay_inside_the_worktree(
    make_context: MakeContext, worktree: Path
) -> None:
    (worktree / "sub").mkdir()
    result = await run_step(Shell("pwd", working_dir="sub"), make_context())
    assert result.output.strip() == str((worktree / "sub").resolve())
    with pytest.raises(StepError, match="outside the worktree"):
        await run_step(Shell("pwd", working_dir="../.."), make_context())


def test_env_entries_may_use_earlier_entries_and_the_scope(make_context: MakeContext) -> None:
    context = make_context(env={"BASE": "out", "DIR": "${BASE}/${name}"}, variables={"name": "n"})
    env = rendered_environment(context, Shell("true", env={"FILE": "${DIR}/f"}))
    assert env == {"BASE": "out", "DIR": "out/n", "FILE": "out/n/f"}
    scope = interpolation_scope(context, env)
    assert (scope["DIR"], scope["name"]) == ("out/n", "n")


async def test_time_limit_is_the_step_timeout_capped_by_the_deadline(
    make_context: MakeContext,
) -> None:
    assert time_limit(make_context(), Shell("true", timeout=5)) == 5
    assert time_limit(make_context(), Shell("true")) is None
    capped = time_limit(make_context(deadline=anyio.current_time() + 1), Shell("true", timeout=5))
    assert capped is not None and 0 < capped <= 1
    with pytest.raises(StepTimeoutError):
        time_limit(make_context(deadline=anyio.current_time() - 1), Shell("true"))
