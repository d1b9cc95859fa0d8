from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from treefork.errors import StepError, StepTimeoutError
from treefork.runners.claude import claude_argv, parse_claude_output
from treefork.runners.steps import StepContext, run_step, run_steps
from treefork.steps import Claude, Usage

MakeContext = Callable[..., StepContext]

STUB = r"""#!/usr/bin/env bash
printf '%s\0' "$@" > "$STUB_LOG/argv"
cat > "$STUB_LOG/stdin"
case "${STUB_MODE:-json}" in
  json) printf '%s' '{"type":"result","subtype":"success","is_error":false,"result":"fixed it",
    "total_cost_usd":0.25,"usage":{"input_tokens":10,"output_tokens":5,
    "cache_creation_input_tokens":3,"cache_read_input_tokens":2}}' ;;
  error) printf '%s' '{"type":"result","is_error":true,"result":"too many turns","cost_usd":0.1}' ;;
  text) echo "plain words" ;;
  fail) echo "boom" >&2; exit 2 ;;
  sleep) sleep 30 ;;
esac
"""


@pytest.fixture
def stub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stub ``claude`` (and ``other-llm``) first on PATH; returns where it logs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("claude", "other-llm"):
        (bin_dir / name).write_text(STUB)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "log"
    log.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STUB_LOG", str(log))
    monkeypatch.delenv("TREEFORK_CLAUDE_COMMAND", raising=False)
    monkeypatch.delenv("TREEFORK_CLAUDE", raising=False)
    return log


def argv_of(log: Path) -> list[str]:
    return (log / "argv").read_text().split("\0")[:-1]


async def test_the_prompt_is_one_argument_and_never_shell_code(
    stub: Path, make_context: MakeContext, worktree: Path
) -> None:
    item = {"title": "fix $(touch canary) `touch canary` 'quotes' \"and\" ; rm -rf /"}
    context = make_context(item=item, item_id="1")
    result = await run_step(Claude("/fix ${item.title}", capture="answer"), context)
    assert argv_of(stub) == ["-p", f"/fix {item['title']}", "--output-format", "json"]
    assert not (worktree / "canary").exists()
    assert result.output == "fixed it"
    assert result.usage == Usage(tokens_in=15, tokens_out=5, cost=0.25)
    assert context.variables["answer"] == "fixed it"
    assert context.variables["claude"] == {"output": "fixed it"}


async def test_an_error_result_fails_the_step_but_its_cost_counts(
    stub: Path, make_context: MakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STUB_MODE", "error")
    outcome = await run_steps([Claude("hi")], make_context())
    assert outcome.error is not None
    assert "claude reported an error: too many turns" in str(outcome.error)
    assert outcome.usage.cost == pytest.approx(0.1)


async def test_a_non_zero_exit_fails_with_the_output_tail(
    stub: Path, make_context: MakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STUB_MODE", "fail")
    with pytest.raises(StepError, match="exited with code 2") as caught:
        await run_step(Claude("hi"), make_context())
    assert caught.value.exit_code == 2
    assert "boom" in caught.value.output_tail


async def test_output_that_is_not_json_is_plain_text_with_no_usage(
    stub: Path, make_context: MakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STUB_MODE", "text")
    result = await run_step(Claude("hi"), make_context())
    assert (result.output, result.usage) == ("plain words\n", Usage())


async def test_a_missing_command_says_how_to_configure_it(
    make_context: MakeContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("TREEFORK_CLAUDE_COMMAND", raising=False)
    monkeypatch.delenv("TREEFORK_CLAUDE", raising=False)
    with pytest.raises(
        StepError, match=r"claude command not found: claude \(set TREEFORK_CLAUDE_COMMAND\)"
    ):
        await run_step(Claude("hi"), make_context())


async def test_the_command_comes_from_the_environment_or_the_runner(
    stub: Path, make_context: MakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TREEFORK_CLAUDE_COMMAND", "other-llm --ask '{prompt}' --quiet")
    await run_step(Claude("from env"), make_context())
    assert argv_of(stub) == ["--ask", "from env", "--quiet"]
    await run_step(Claude("from runner"), make_context(claude_command=["claude", "x={prompt}"]))
    assert argv_of(stub) == ["x=from runner"]


async def test_a_command_without_placeholder_reads_the_prompt_on_stdin(
    stub: Path, make_context: MakeContext
) -> None:
    await run_step(Claude("line one\nline two"), make_context(claude_command=["claude", "-p"]))
    assert argv_of(stub) == ["-p"]
    assert (stub / "stdin").read_text() == "line one\nline two"


async def test_a_claude_step_past_its_timeout_is_killed(
    stub: Path, make_context: MakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STUB_MODE", "sleep")
    with pytest.raises(StepTimeoutError):
        await run_step(Claude("hi", timeout=0.3), make_context())


def test_parse_takes_the_last_result_of_an_event_list() -> None:
    events = [
        {"type": "system"},
        {"type": "result", "result": "first", "total_cost_usd": 1},
        {"type": "result", "result": "last", "usage": {"input_tokens": 1, "output_tokens": 2}},
    ]
    reply = parse_claude_output(json.dumps(events))
    assert (reply.text, reply.usage, reply.is_error) == ("last", Usage(1, 2, 0.0), False)


def test_parse_keeps_json_that_is_not_a_result_as_text() -> None:
    assert parse_claude_output('{"answer": 1}').text == '{"answer": 1}'


def test_argv_replaces_every_placeholder_without_splitting() -> None:
    assert claude_argv(["c", "{prompt}", "--p={prompt}"], "a b") == (["c", "a b", "--p=a b"], None)
    assert claude_argv(["c"], "a b") == (["c"], b"a b")
