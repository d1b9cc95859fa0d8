from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from gitutil import make_repo, run_git
from procutil import is_running

from treefork.environment import READ_ONLY_REFUSAL, scrubbed_environment
from treefork.runners.process import run_process


async def _number_in(path: Path) -> int:
    """Wait until the script has written a number (a process or group id) to ``path``."""
    file = anyio.Path(path)
    for _ in range(500):
        if await file.exists() and (text := (await file.read_text()).strip()):
            return int(text)
        await anyio.sleep(0.01)
    raise AssertionError(f"{path} was never written")


async def test_exit_code_and_output_are_returned(tmp_path: Path) -> None:
    result = await run_process(
        ["bash", "-c", "echo out; echo err >&2; exit 3"], cwd=tmp_path, env=scrubbed_environment()
    )
    assert (result.exit_code, result.stdout, result.stderr, result.timed_out) == (
        3,
        "out\n",
        "err\n",
        False,
    )
    assert result.duration > 0


async def test_runs_in_the_given_directory_and_logs_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="treefork"):
        result = await run_process(["pwd"], cwd=tmp_path, env=scrubbed_environment())
    assert result.stdout.strip() == str(tmp_path)
    assert f"Executing in worktree: {tmp_path}: pwd" in caplog.messages


async def test_a_hung_step_is_killed_at_its_timeout_with_every_child(
    tmp_path: Path, live_in_group: Callable[[int], list[int]]
) -> None:
    script = "echo $$ > pgid; sleep 300 & while true; do sleep 1; done"
    with anyio.fail_after(10):
        result = await run_process(
            ["bash", "-c", script],
            cwd=tmp_path,
            env=scrubbed_environment(),
            timeout=0.5,
            kill_grace=0.5,
        )
    assert result.timed_out
    assert result.exit_code is None
    assert result.duration < 5
    assert live_in_group(int((tmp_path / "pgid").read_text())) == []


async def test_a_child_that_ignores_sigterm_is_killed_after_the_grace(
    tmp_path: Path, live_in_group: Callable[[int], list[int]]
) -> None:
    script = "echo $$ > pgid; bash -c 'trap \"\" TERM; sleep 300' & wait"
    result = await run_process(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=scrubbed_environment(),
        timeout=0.3,
        kill_grace=0.3,
    )
    assert result.timed_out
    assert live_in_group(int((tmp_path / "pgid").read_text())) == []


async def test_a_background_child_holding_stdout_does_not_hang(
    tmp_path: Path, live_in_group: Callable[[int], list[int]]
) -> None:
    script = "echo $$ > pgid; sleep 300 & echo started"
    with anyio.fail_after(10):
        result = await run_process(
            ["bash", "-c", script], cwd=tmp_path, env=scrubbed_environment(), kill_grace=0.5
        )
    assert (result.exit_code, result.stdout, result.timed_out) == (0, "started\n", False)
    assert live_in_group(int((tmp_path / "pgid").read_text())) == []


async def test_cancellation_kills_the_group_and_propagates(
    tmp_path: Path, live_in_group: Callable[[int], list[int]]
) -> None:
    script = "echo $$ > pgid; sleep 300 & sleep 300"
    cancelled = False
    async with anyio.create_task_group() as group:

        async def run() -> None:
            nonlocal cancelled
            try:
                await run_process(
                    ["bash", "-c", script], cwd=tmp_path, env=scrubbed_environment(), kill_grace=0.5
                )
            except anyio.get_cancelled_exc_class():
                cancelled = True
                raise

        group.start_soon(run)
        pgid = await _number_in(tmp_path / "pgid")
        assert live_in_group(pgid)
        group.cancel_scope.cancel()
    assert cancelled
    assert live_in_group(pgid) == []


async def test_git_redirections_never_reach_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_DIR", "/elsewhere/.git")
    monkeypatch.setenv("GIT_WORK_TREE", "/elsewhere")
    leaky = {**os.environ, "GIT_INDEX_FILE": "/elsewhere/index"}
    for env in (scrubbed_environment(), leaky):
        result = await run_process(
            ["bash", "-c", "echo ${GIT_DIR-unset} ${GIT_WORK_TREE-unset} ${GIT_INDEX_FILE-unset}"],
            cwd=tmp_path,
            env=env,
        )
        assert result.stdout == "unset unset unset\n"


async def test_stdin_is_given_or_empty(tmp_path: Path) -> None:
    given = await run_process(["cat"], cwd=tmp_path, env=scrubbed_environment(), stdin=b"data")
    empty = await run_process(["cat"], cwd=tmp_path, env=scrubbed_environment())
    assert (given.stdout, empty.stdout) == ("data", "")


async def test_large_output_keeps_its_tail(tmp_path: Path) -> None:
    result = await run_process(
        ["bash", "-c", "seq 1 100000"], cwd=tmp_path, env=scrubbed_environment(), max_output=100
    )
    assert result.stdout.startswith("[... ")
    assert result.stdout.endswith("99999\n100000\n")


async def test_invalid_utf8_is_replaced(tmp_path: Path) -> None:
    result = await run_process(
        ["bash", "-c", "printf 'a\\xffb'"], cwd=tmp_path, env=scrubbed_environment()
    )
    assert result.stdout == "a\ufffdb"


async def test_a_missing_program_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await run_process(["no-such-program-here"], cwd=tmp_path, env=scrubbed_environment())


async def test_treeforks_git_configuration_reaches_the_command_and_the_callers_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "gc.auto")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "6700")
    result = await run_process(
        ["git", "config", "gc.auto"], cwd=tmp_path, env=scrubbed_environment()
    )
    assert result.stdout == "0\n"  # no background gc racing parallel agents


async def test_a_read_only_commands_git_refuses_to_move_head_or_a_branch(
    tmp_path: Path,
) -> None:
    make_repo(tmp_path / "repo")
    repo = tmp_path / "repo"
    head = run_git(repo, "rev-parse", "HEAD")
    attempts = {
        "commit": "echo more >> README.md && git commit -qam more",
        "commit --no-verify": "echo more >> README.md && git commit -qam more --no-verify",
        "reset": "git reset -q --hard HEAD~0",
        "branch": "git branch side",
        "update-ref": "git update-ref refs/heads/side HEAD",
    }
    for name, script in attempts.items():
        result = await run_process(
            ["bash", "-c", script], cwd=repo, env=scrubbed_environment(read_only=True)
        )
        assert result.exit_code != 0, name
        assert READ_ONLY_REFUSAL in result.stderr, name
        run_git(repo, "checkout", "-q", "--", "README.md")
    assert run_git(repo, "rev-parse", "HEAD") == head
    assert run_git(repo, "branch", "--list", "side") == ""
    reading = await run_process(
        ["bash", "-c", "git status --porcelain && git log --oneline | wc -l && git diff HEAD"],
        cwd=repo,
        env=scrubbed_environment(read_only=True),
    )
    assert (reading.exit_code, reading.stdout.split()) == (0, ["1"])
    writer = await run_process(
        ["bash", "-c", "echo more >> README.md && git commit -qam more"],
        cwd=repo,
        env=scrubbed_environment(),
    )
    assert writer.exit_code == 0, writer.stderr


# Every way a step's child can leave its process group. Each writes its pid to ``pid``.
ESCAPES = {
    "setsid": "setsid sleep 300 & echo $! > pid",
    "setsid --fork": "setsid -f sh -c 'echo $$ > pid; exec sleep 300'",
    "double fork": "( ( sh -c 'echo $$ > pid; exec sleep 300' & ) & )",
    "nohup and disown": "nohup sh -c 'echo $$ > pid; exec sleep 300' >/dev/null 2>&1 & disown",
    "daemon": (
        "python3 -c 'import os, time\n"
        "if os.fork(): raise SystemExit\n"
        "os.setsid()\n"
        "if os.fork(): raise SystemExit\n"
        'open("pid", "w").write(str(os.getpid())); time.sleep(300)\''
    ),
}


@pytest.mark.parametrize("escape", ESCAPES)
async def test_a_child_that_leaves_the_group_is_killed_when_the_step_ends(
    tmp_path: Path, escape: str
) -> None:
    script = f"{ESCAPES[escape]}; while [ ! -s pid ]; do sleep 0.01; done"
    with anyio.fail_after(20):
        result = await run_process(
            ["bash", "-c", script], cwd=tmp_path, env=scrubbed_environment(), kill_grace=0.5
        )
    assert result.exit_code == 0, result.stderr
    pid = await _number_in(tmp_path / "pid")
    assert not is_running(pid), f"{escape}: {pid} outlived its step"


@pytest.mark.parametrize("escape", ESCAPES)
async def test_a_child_that_leaves_the_group_is_killed_at_the_timeout(
    tmp_path: Path, escape: str
) -> None:
    script = f"{ESCAPES[escape]}; sleep 300"
    with anyio.fail_after(20):
        result = await run_process(
            ["bash", "-c", script],
            cwd=tmp_path,
            env=scrubbed_environment(),
            timeout=1.0,
            kill_grace=0.5,
        )
    assert result.timed_out
    pid = await _number_in(tmp_path / "pid")
    assert not is_running(pid), f"{escape}: {pid} outlived the timeout"


async def test_an_escaped_child_that_ignores_sigterm_is_killed_after_the_grace(
    tmp_path: Path,
) -> None:
    script = "setsid sh -c 'trap \"\" TERM; echo $$ > pid; sleep 300; :' & sleep 300"
    with anyio.fail_after(20):
        result = await run_process(
            ["bash", "-c", script],
            cwd=tmp_path,
            env=scrubbed_environment(),
            timeout=1.0,
            kill_grace=0.3,
        )
    assert result.timed_out
    assert not is_running(await _number_in(tmp_path / "pid"))


async def test_processes_of_another_command_are_left_alone(tmp_path: Path) -> None:
    # Two commands at once: ending one never touches what the other started.
    other = tmp_path / "other"
    other.mkdir()
    async with anyio.create_task_group() as group:
        group.start_soon(
            lambda: run_process(
                ["bash", "-c", "setsid sleep 300 & echo $! > pid; sleep 3"],
                cwd=other,
                env=scrubbed_environment(),
                kill_grace=0.5,
            )
        )
        pid = await _number_in(other / "pid")
        await run_process(["true"], cwd=tmp_path, env=scrubbed_environment())
        assert is_running(pid)
    assert not is_running(pid)
