"""Every step option works the same in setup, in a map agent and in reduce.

Each test builds a one-domain graph with the steps under test in one phase, runs it on a
real repository and looks at what the steps left in the merged result: capture in each
format, ``on_failure``, ``retry`` with its backoff, per-step ``env``, ``write_file``,
``when``, Claude steps through a configured command (their tokens and cost counted in the
budget), and timeouts that kill the whole process group.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cliutil import claude_calls, stub_bin
from procutil import is_running

from treefork import Claude, Domain, Map, Retry, Shell, WriteFile, build_graph
from treefork.steps import Step

PHASES = ["setup", "map", "reduce"]


def _domain(phase: str, steps: Sequence[Step], **map_options: Any) -> Domain:
    """A domain with ``steps`` in ``phase``; the other phases do nothing."""
    if phase == "map":
        return Domain("work", map=Map(input=["only"], agent=steps, **map_options))
    nothing = Map(input=["only"], agent=[Shell("true")])
    if phase == "setup":
        return Domain("work", setup=steps, map=nothing)
    return Domain("work", map=nothing, reduce=steps)


async def _run(repo: Path, domain: Domain, **graph_options: Any) -> dict[str, Any]:
    graph = build_graph([domain], auto_approve=True, **graph_options)
    return dict(await graph.ainvoke({"task": "exercise the steps", "repo": str(repo)}))


def _failure(out: dict[str, Any]) -> str:
    (failure,) = out["failures"]
    return str(failure["error"])


@pytest.mark.parametrize("phase", PHASES)
async def test_every_step_option_in(
    phase: str, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    claude = stub_bin(tmp_path / "bin", "claude") / "claude"
    log = tmp_path / "claude.log"
    monkeypatch.setenv("CLAUDE_STUB_LOG", str(log))
    attempts = tmp_path / "attempts"
    steps: list[Step] = [
        Shell("echo 41", capture="n", capture_format="number"),
        Shell("printf '%s\\n' x y", capture="names", capture_format="lines"),
        Shell("""echo '{"k": "v", "list": [1, 2]}'""", capture="doc", capture_format="json"),
        Shell("echo plain text", capture="text"),
        Shell(
            "echo broken >&2; exit 3", on_failure=[Shell("echo '${shell.stderr}' > handled.txt")]
        ),
        # Fails on its first attempt, succeeds on the second, after the backoff.
        Shell(
            f"date +%s.%N >> {attempts}; "
            f'[ "$(wc -l < {attempts})" -ge 2 ] || {{ echo first attempt fails >&2; exit 1; }}',
            retry=Retry(attempts=3, backoff=0.3),
        ),
        Shell('echo "$GREETING" > env.txt', env={"GREETING": "hello ${text}"}),
        WriteFile("written.txt", "n=${n} second=${names[1]} k=${doc.k} last=${doc.list[1]}\n"),
        Shell("echo never > skipped.txt", when="${n} > 100"),
        Shell("echo ran > when.txt", when="${n} == 41 && ${doc.k} == v"),
        Claude("/summarize ${text} (${n})", capture="reply"),
        Shell("echo '${reply}' > reply.txt"),
        Shell(f"git add -A && git commit -q -m 'steps in {phase}'", commit_required=True),
    ]

    out = await _run(
        repo,
        _domain(phase, steps),
        claude_command=[str(claude), "-p", "{prompt}", "--output-format", "json"],
    )

    assert out["status"] == "succeeded", out["failures"]
    assert out["merge"]["status"] == "merged"
    assert (repo / "handled.txt").read_text() == "broken\n\n"
    times = [float(line) for line in attempts.read_text().split()]
    assert len(times) == 2 and times[1] - times[0] >= 0.3
    assert (repo / "env.txt").read_text() == "hello plain text\n"
    assert (repo / "written.txt").read_text() == "n=41 second=y k=v last=2\n"
    assert not (repo / "skipped.txt").exists()
    assert (repo / "when.txt").read_text() == "ran\n"
    (call,) = claude_calls(log)
    assert call["prompt"] == "/summarize plain text (41)"
    assert (repo / "reply.txt").read_text() == "done: /summarize plain text (41)\n"
    used = out["budget"]["used"]
    assert (used["tokens"], used["cost"]) == (15, pytest.approx(0.001))


@pytest.mark.parametrize("phase", PHASES)
async def test_a_step_timeout_kills_its_process_group_in(
    phase: str, repo: Path, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    hung = Shell(f"sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; wait", timeout=1)

    out = await _run(repo, _domain(phase, [hung]))

    error = _failure(out)
    assert f"phase {phase}" in error and "timed out after 1s" in error
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == 2
    assert not any(is_running(pid) for pid in started)


async def test_the_agent_timeout_spans_its_steps_and_kills_the_one_running(
    repo: Path, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    steps = [
        Shell("sleep 0.5"),
        Shell(f"sleep 300 & echo $! >> {pids}; wait"),  # no timeout of its own
        Shell("echo never > never.txt"),
    ]

    out = await _run(repo, _domain("map", steps, agent_timeout=1.2))

    (agent,) = out["domain_results"]["work"]["agents"]
    assert agent["status"] == "failed"
    assert "phase map" in agent["error"] and "timed out" in agent["error"]
    assert "step sleep 300 &" in agent["error"]
    (sleeper,) = [int(pid) for pid in pids.read_text().split()]
    assert not is_running(sleeper)
    assert agent["finished_at"] - agent["started_at"] < 10


@pytest.mark.parametrize("phase", PHASES)
async def test_an_unhandled_failure_stops_the_phase_with_the_step_named(
    phase: str, repo: Path
) -> None:
    steps = [
        Shell("echo one"),
        Shell("echo why >&2; exit 4", on_failure=[Shell("exit 5")]),
        Shell("echo never > never.txt && git add never.txt && git commit -q -m never"),
    ]
    out = await _run(repo, _domain(phase, steps))
    error = _failure(out)
    assert f"phase {phase}" in error
    assert "step echo why >&2; exit 4: exit code 4; on_failure handler failed" in error
    assert not (repo / "never.txt").exists()


async def test_the_claude_command_can_come_from_the_environment(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    claude = stub_bin(tmp_path / "bin", "claude") / "claude"
    log = tmp_path / "claude.log"
    monkeypatch.setenv("CLAUDE_STUB_LOG", str(log))
    monkeypatch.setenv("TREEFORK_CLAUDE_COMMAND", f"{claude} -p {{prompt}} --output-format json")
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"match": "/fail", "is_error": True, "result": "no credit"}]))
    monkeypatch.setenv("CLAUDE_STUB_RULES", str(rules))

    out = await _run(repo, _domain("map", [Claude("/fail ${item}")]))

    (agent,) = out["domain_results"]["work"]["agents"]
    assert agent["status"] == "failed"
    assert "claude reported an error: no credit" in agent["error"]
    assert [call["prompt"] for call in claude_calls(log)] == ["/fail only"]
    assert out["budget"]["used"]["tokens"] == 15  # a failed call still costs
