from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from treefork.errors import CommitRequiredError, StepError, StepTimeoutError
from treefork.runners.steps import StepContext, run_step, run_steps
from treefork.steps import Retry, Shell, WriteFile

MakeContext = Callable[..., StepContext]
Git = Callable[..., str]


async def test_steps_run_in_order_and_captures_flow_into_later_steps(
    make_context: MakeContext,
) -> None:
    context = make_context()
    outcome = await run_steps(
        [
            Shell("echo 3", capture="n", capture_format="number"),
            Shell("echo $(( ${n} + 1 ))", capture="m", capture_format="number"),
            Shell("printf '%s\\n' a b", capture="names", capture_format="lines"),
            Shell("echo '{\"k\": [1, 2]}'", capture="doc", capture_format="json"),
            Shell("echo ${doc.k[1]} ${names[0]}", capture="final"),
        ],
        context,
    )
    assert outcome.ok, outcome.error
    assert [result.ok for result in outcome.results] == [True] * 5
    assert context.variables["m"] == 4
    assert context.variables["final"] == "2 a"
    assert context.variables["shell"] == {"output": "2 a", "stderr": "", "exit_code": 0}
    assert outcome.output_tail == "2 a\n"


async def test_the_first_failure_stops_the_list_with_its_output(make_context: MakeContext) -> None:
    outcome = await run_steps(
        [Shell("echo one"), Shell("echo broken; echo why >&2; exit 3"), Shell("echo never")],
        make_context(),
    )
    assert not outcome.ok
    assert isinstance(outcome.error, StepError)
    assert outcome.error.exit_code == 3
    assert "domain docs, phase map, step echo broken; echo why >&2; exit 3: exit code 3" in str(
        outcome.error
    )
    assert len(outcome.results) == 2
    assert outcome.output_tail == "broken\nwhy\n"


async def test_run_step_raises_the_failure(make_context: MakeContext) -> None:
    with pytest.raises(StepError, match="exit code 1") as caught:
        await run_step(Shell("false", name="fails"), make_context(item="x", item_id="x-1"))
    assert (caught.value.step, caught.value.item_id, caught.value.phase) == ("fails", "x-1", "map")


async def test_when_false_skips_the_step(make_context: MakeContext) -> None:
    context = make_context(variables={"mode": "fast", "count": 2})
    outcome = await run_steps(
        [
            Shell("echo skipped", when="${mode} == slow", capture="a"),
            Shell("echo ran", when="${count} >= 2 && ${mode} != slow", capture="b"),
        ],
        context,
    )
    assert [(result.skipped, result.attempts) for result in outcome.results] == [
        (True, 0),
        (False, 1),
    ]
    assert "a" not in context.variables
    assert context.variables["b"] == "ran"


async def test_a_bad_when_condition_fails_the_step_clearly(make_context: MakeContext) -> None:
    outcome = await run_steps(
        [Shell("echo x", when="${mode} === fast")], make_context(variables={"mode": "a"})
    )
    assert outcome.error is not None
    assert "expected a value, found '=' at 10" in str(outcome.error)


async def test_retry_tries_again_with_backoff_until_success(
    make_context: MakeContext, worktree: Path
) -> None:
    script = "n=$(cat count 2>/dev/null || echo 0); echo $((n + 1)) > count; [ $n -ge 2 ]"
    result = await run_step(
        Shell(script, retry=Retry(attempts=5, backoff=0.01, max_delay=0.02)), make_context()
    )
    assert (result.ok, result.attempts) == (True, 3)
    assert (worktree / "count").read_text() == "3\n"


async def test_retry_gives_up_after_its_attempts(make_context: MakeContext) -> None:
    outcome = await run_steps(
        [Shell("exit 4", retry=Retry(attempts=2, backoff=0.01))], make_context()
    )
    assert outcome.results[0].attempts == 2
    assert outcome.error is not None and outcome.error.exit_code == 4


async def test_unknown_references_are_not_retried(make_context: MakeContext) -> None:
    outcome = await run_steps(
        [Shell("echo ${nme}", retry=Retry(attempts=3, backoff=5))],
        make_context(variables={"name": 1}),
    )
    assert outcome.results[0].attempts == 1
    assert "did you mean ${name}?" in str(outcome.error)


@pytest.mark.parametrize("handler", [(), (Shell("exit 2"),)])
async def test_a_step_that_may_fail_lets_the_next_steps_run(
    make_context: MakeContext, handler: tuple[Shell, ...]
) -> None:
    context = make_context()
    outcome = await run_steps(
        [
            Shell("exit 1", on_failure=handler, continue_on_failure=True),
            Shell("echo next", capture="after"),
        ],
        context,
    )
    assert outcome.ok
    assert outcome.results[0].error is not None
    assert outcome.results[0].error.endswith("(continued: the step may fail)")
    assert context.variables["after"] == "next"


async def test_on_failure_that_succeeds_handles_the_failure(
    make_context: MakeContext, worktree: Path
) -> None:
    context = make_context()
    outcome = await run_steps(
        [
            Shell(
                "echo 'it broke'; exit 1",
                on_failure=[Shell('echo "fixing: ${shell.output}" > fixed')],
            ),
            Shell("echo next", capture="after"),
        ],
        context,
    )
    assert outcome.ok
    assert outcome.results[0].ok
    assert outcome.results[0].error is not None
    assert outcome.results[0].error.endswith("(handled by on_failure)")
    assert (worktree / "fixed").read_text() == "fixing: it broke\n"
    assert context.variables["after"] == "next"


async def test_on_failure_that_fails_keeps_the_original_error(make_context: MakeContext) -> None:
    outcome = await run_steps(
        [Shell("exit 2", name="main", on_failure=[Shell("exit 7", name="handler")])], make_context()
    )
    assert outcome.error is not None
    assert outcome.error.step == "main"
    assert outcome.error.exit_code == 2
    assert "on_failure handler failed" in str(outcome.error)
    assert "step handler: exit code 7" in str(outcome.error)


async def test_commit_required_fails_when_head_does_not_move(make_context: MakeContext) -> None:
    with pytest.raises(
        CommitRequiredError, match="commit_required: the step did not create a commit"
    ):
        await run_step(Shell("echo nothing", commit_required=True), make_context())


async def test_commit_required_passes_when_the_step_commits(
    make_context: MakeContext, worktree: Path, git: Git
) -> None:
    before = git(worktree, "rev-parse", "HEAD")
    script = "echo change >> README.md && git commit -qam 'change'"
    result = await run_step(Shell(script, commit_required=True), make_context())
    assert result.ok
    assert git(worktree, "rev-parse", "HEAD^") == before


async def test_read_only_agents_may_not_commit(make_context: MakeContext) -> None:
    script = "echo change >> README.md && git commit -qam 'change'"
    with pytest.raises(StepError, match=r"read-only agents \(isolation none\) may not commit"):
        await run_step(Shell(script), make_context(allow_commits=False))


async def test_a_step_past_its_timeout_is_killed(make_context: MakeContext) -> None:
    started = anyio.current_time()
    with pytest.raises(StepTimeoutError, match=r"timed out after 0\.3s"):
        await run_step(Shell("sleep 30", timeout=0.3), make_context())
    assert anyio.current_time() - started < 5


async def test_the_agent_deadline_caps_every_step(make_context: MakeContext) -> None:
    context = make_context(deadline=anyio.current_time() + 0.5)
    outcome = await run_steps([Shell("sleep 30", timeout=60), Shell("echo never")], context)
    assert isinstance(outcome.error, StepTimeoutError)
    assert len(outcome.results) == 1
    expired = make_context(deadline=anyio.current_time() - 1)
    with pytest.raises(StepTimeoutError, match="time limit ran out"):
        await run_step(Shell("echo late"), expired)


async def test_a_capture_that_does_not_parse_names_variable_and_format(
    make_context: MakeContext,
) -> None:
    with pytest.raises(StepError, match="cannot capture 'count' as number: 'many' is not a number"):
        await run_step(Shell("echo many", capture="count", capture_format="number"), make_context())


async def test_capture_streams_choose_stdout_stderr_or_both(make_context: MakeContext) -> None:
    context = make_context()
    await run_steps(
        [
            Shell("echo out; echo err >&2", capture="a", capture_streams="stderr"),
            Shell("echo out; echo err >&2", capture="b", capture_streams="both"),
        ],
        context,
    )
    assert (context.variables["a"], context.variables["b"]) == ("err", "out\nerr")


async def test_steps_emit_progress_events(make_context: MakeContext) -> None:
    events: list[dict[str, Any]] = []
    context = make_context(emit=events.append, item="x", item_id="x")
    await run_steps(
        [Shell("true", name="first"), Shell("true", name="second", when="false")], context
    )
    assert [(event["event"], event["step"]) for event in events] == [
        ("step_start", "first"),
        ("step_end", "first"),
        ("step_end", "second"),
    ]
    assert events[1]["ok"] is True and events[1]["phase"] == "map" and events[1]["item"] == "x"
    assert events[2]["skipped"] is True


async def test_write_file_step_in_a_list(make_context: MakeContext, worktree: Path) -> None:
    context = make_context(item={"name": "n"}, item_id="n")
    outcome = await run_steps(
        [
            WriteFile("out/${item.name}.txt", "hello ${item.name}\n"),
            Shell("cat out/n.txt", capture="c"),
        ],
        context,
    )
    assert outcome.ok
    assert context.variables["c"] == "hello n"


async def test_prodigy_capture_workflow_setup_and_agent(
    make_context: MakeContext, worktree: Path
) -> None:
    (worktree / "src").mkdir()
    (worktree / "src" / "lib.rs").write_text("fn a() {}\n// TODO\nfn b() {}\n")
    (worktree / "reports").mkdir()
    setup = make_context(phase="setup", item=None)
    outcome = await run_steps(
        [
            Shell("find src -name '*.rs' | wc -l", capture="total_files", capture_format="number"),
            Shell(
                "git rev-parse --short HEAD 2>/dev/null || echo 'unknown'", capture="commit_hash"
            ),
            Shell(
                """echo '{
  "repository": "'$(basename $(pwd))'",
  "commit": "${commit_hash}",
  "total_files": ${total_files}
}'""",
                capture="metadata",
                capture_format="json",
            ),
        ],
        setup,
    )
    assert outcome.ok, outcome.error
    assert setup.variables["metadata"]["total_files"] == 1
    agent = make_context(variables=dict(setup.variables), item="src/lib.rs", item_id="lib")
    outcome = await run_steps(
        [
            Shell(
                "wc -l ${item} | awk '{print $1}'", capture="line_count", capture_format="number"
            ),
            Shell(
                "grep -c '^fn ' ${item} || echo 0",
                capture="function_count",
                capture_format="number",
            ),
            Shell(
                """echo '{
  "file": "${item}",
  "metrics": {"lines": ${line_count}, "functions": ${function_count}}
}'""",
                capture="file_report",
                capture_format="json",
            ),
            Shell("echo '${file_report}' > reports/$(basename ${item}).json"),
            Shell("echo 'Analyzed from commit ${metadata.commit}'", capture="summary"),
        ],
        agent,
    )
    assert outcome.ok, outcome.error
    report = (worktree / "reports" / "lib.rs.json").read_text()
    assert report == '{"file":"src/lib.rs","metrics":{"lines":3,"functions":2}}\n'
    assert agent.variables["summary"] == f"Analyzed from commit {setup.variables['commit_hash']}"


async def test_on_success_runs_after_a_success_and_its_failure_fails_the_step(
    make_context: MakeContext,
) -> None:
    context = make_context()
    outcome = await run_steps(
        [
            Shell("echo built", on_success=[Shell("echo after ${shell.output} > after.txt")]),
            Shell("exit 3", on_success=[Shell("echo never > never.txt")]),
        ],
        context,
    )
    assert (context.worktree / "after.txt").read_text() == "after built\n"
    assert not (context.worktree / "never.txt").exists()
    assert [result.ok for result in outcome.results] == [True, False]

    failing = await run_steps(
        [
            Shell(
                "echo ok",
                on_success=[Shell("echo broke >&2; exit 4")],
                on_failure=[Shell("echo handled ${last.exit_code} > handled.txt")],
            ),
            Shell("echo next > next.txt"),
        ],
        context,
    )
    assert failing.ok  # on_failure handled the on_success failure
    assert (context.worktree / "handled.txt").read_text() == "handled 0\n"
    assert (context.worktree / "next.txt").exists()
    unhandled = await run_steps([Shell("echo ok", on_success=[Shell("exit 5")])], context)
    assert not unhandled.ok and unhandled.error is not None
    assert "on_success step failed" in str(unhandled.error)
