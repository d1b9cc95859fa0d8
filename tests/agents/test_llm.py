from __future__ import annotations

import inspect
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakechat import ToolCallingFakeModel
from gitutil import make_repo, run_git
from langchain_core.messages import AIMessage, ToolMessage

from treefork.agents import agent_tools, llm_agent
from treefork.agents.llm import task_message
from treefork.core.pricing import Price
from treefork.errors import StepError
from treefork.steps import AgentContext, AgentStep, Usage

BRANCH = "treefork/job-1/docs/item-1"


def call(name: str, tokens: tuple[int, int] = (0, 0), **args: Any) -> AIMessage:
    return AIMessage(
        content="",
        tool_calls=[{"name": name, "args": args, "id": f"call-{name}"}],
        usage_metadata={
            "input_tokens": tokens[0],
            "output_tokens": tokens[1],
            "total_tokens": sum(tokens),
        },
    )


def answer(text: str, tokens: tuple[int, int] = (0, 0)) -> AIMessage:
    return AIMessage(
        content=text,
        usage_metadata={
            "input_tokens": tokens[0],
            "output_tokens": tokens[1],
            "total_tokens": sum(tokens),
        },
    )


def scripted(*messages: AIMessage, model_name: str = "coder-1") -> ToolCallingFakeModel:
    model = ToolCallingFakeModel(messages=iter(messages))
    object.__setattr__(model, "model_name", model_name)
    return model


def repeating(message: AIMessage) -> ToolCallingFakeModel:
    messages: Iterator[AIMessage] = itertools.repeat(message)
    return ToolCallingFakeModel(messages=messages)


def git(cwd: Path, *args: str) -> str:
    return run_git(cwd, *args).strip()


def make_repository(root: Path, *, identity: bool = True) -> Path:
    files = {"README.md": "# Demo\nTODO: write docs\n", "src/app.py": "print('hi')\n"}
    return make_repo(root / "repo", files, identity=identity)


def add_worktree(repo: Path, root: Path) -> Path:
    worktree = root / "worktrees" / "item-1"
    git(repo, "worktree", "add", "-q", "-b", BRANCH, str(worktree))
    return worktree


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repository(tmp_path)


@pytest.fixture
def worktree(repo: Path, tmp_path: Path) -> Path:
    return add_worktree(repo, tmp_path)


def context_for(worktree: Path, prompt: str | None = "Write the docs") -> AgentContext:
    return AgentContext(
        item={"id": "item-1", "file": "README.md"},
        item_id="item-1",
        item_index=0,
        worktree=worktree,
        variables={},
        domain="docs",
        job_id="job-1",
        prompt=prompt,
    )


def tool_results(model: ToolCallingFakeModel) -> list[ToolMessage]:
    last_conversation = model.seen[-1]
    return [message for message in last_conversation if isinstance(message, ToolMessage)]


async def test_agent_reads_writes_and_commits_on_its_branch(repo: Path, worktree: Path) -> None:
    main_before = git(repo, "rev-parse", "main")
    model = scripted(
        call("list_files", tokens=(100, 10)),
        call("read_file", tokens=(120, 12), path="README.md"),
        call("write_file", tokens=(150, 40), path="README.md", content="# Demo\nDocs.\n"),
        answer("Replaced the TODO with docs.", tokens=(200, 8)),
    )
    prices = {"coder-1": Price(input_per_million=1.0, output_per_million=2.0)}

    output = await llm_agent(model, prices=prices)(context_for(worktree))

    assert output.output == "Replaced the TODO with docs."
    assert output.variables == {"steps": 4}
    assert output.usage == Usage(570, 70, pytest.approx((570 * 1.0 + 70 * 2.0) / 1e6))
    assert (worktree / "README.md").read_text() == "# Demo\nDocs.\n"
    assert git(worktree, "status", "--porcelain") == ""
    assert git(worktree, "log", "-1", "--format=%s") == ("treefork: agent changes for item item-1")
    assert git(worktree, "log", "-1", "--format=%an") == "Test Author"
    assert git(repo, "rev-parse", BRANCH) == git(worktree, "rev-parse", "HEAD")
    assert git(repo, "rev-parse", "main") == main_before
    assert (repo / "README.md").read_text() == "# Demo\nTODO: write docs\n"


async def test_tool_results_are_fed_back_to_the_model(worktree: Path) -> None:
    model = scripted(
        call("list_files"),
        call("read_file", path="src/app.py"),
        answer("Nothing to do."),
    )
    await llm_agent(model)(context_for(worktree))
    listed, read = tool_results(model)
    assert listed.tool_call_id == "call-list_files"
    assert listed.content == "README.md\nsrc/app.py"
    assert read.content == "print('hi')\n"
    assert read.status == "success"


async def test_model_is_offered_the_five_tools(worktree: Path) -> None:
    model = scripted(answer("done"))
    await llm_agent(model)(context_for(worktree))
    offered = {tool["function"]["name"] for tool in model.bound_tools}
    assert offered == {"list_files", "read_file", "write_file", "search", "run_command"}


async def test_every_escape_is_refused_and_nothing_outside_is_touched(
    worktree: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("top secret\n")
    (worktree / "escape").symlink_to(secret)
    planted = tmp_path / "x"
    model = scripted(
        call("read_file", path="../../secret"),
        call("write_file", path=str(planted), content="pwned"),
        call("read_file", path="escape"),
        call("write_file", path="escape", content="pwned"),
        call("write_file", path="sub/../../../x", content="pwned"),
        call("list_files", path=".."),
        call("search", pattern="secret", path="../.."),
        answer("I could not get out."),
    )

    output = await llm_agent(model, commit=False)(context_for(worktree))

    assert output.output == "I could not get out."
    results = tool_results(model)
    assert len(results) == 7
    for result in results:
        assert result.status == "error"
        assert "outside the worktree; refused" in str(result.content)
        assert "top secret" not in str(result.content)
    assert secret.read_text() == "top secret\n"
    assert not planted.exists()


async def test_tool_errors_go_back_to_the_model_and_it_continues(worktree: Path) -> None:
    model = scripted(
        call("read_file", path="missing.txt"),
        call("teleport", where="mars"),
        call("search", pattern="(unclosed"),
        call("read_file"),
        answer("Gave up politely."),
    )
    output = await llm_agent(model)(context_for(worktree))
    assert output.output == "Gave up politely."
    missing, unknown, bad_pattern, no_path = tool_results(model)
    assert "No such file" in str(missing.content)
    assert "no tool named 'teleport'" in str(unknown.content)
    assert "invalid regular expression" in str(bad_pattern.content)
    assert no_path.status == "error"


async def test_run_command_runs_in_the_worktree(worktree: Path) -> None:
    model = scripted(call("run_command", command="pwd"), answer("done"))
    await llm_agent(model)(context_for(worktree))
    (result,) = tool_results(model)
    assert str(result.content).startswith(f"exit code 0\n--- stdout ---\n{worktree}\n")


async def test_exceeding_max_steps_is_a_clear_error(worktree: Path) -> None:
    model = repeating(call("list_files", tokens=(10, 1)))
    with pytest.raises(StepError, match=r"still calling tools after max_steps=3") as raised:
        await llm_agent(model, max_steps=3)(context_for(worktree))
    assert raised.value.item_id == "item-1"
    assert raised.value.domain == "docs"
    assert raised.value.worktree == str(worktree)
    assert len(model.seen) == 3
    assert "spent 30 input and 3 output tokens" in "".join(raised.value.__notes__)


def test_max_steps_must_allow_one_call() -> None:
    with pytest.raises(ValueError, match="max_steps"):
        llm_agent(scripted(), max_steps=0)


async def test_nothing_changed_means_no_commit(worktree: Path) -> None:
    head = git(worktree, "rev-parse", "HEAD")
    await llm_agent(scripted(answer("Nothing needed.")))(context_for(worktree))
    assert git(worktree, "rev-parse", "HEAD") == head


async def test_commit_false_leaves_changes_uncommitted(worktree: Path) -> None:
    head = git(worktree, "rev-parse", "HEAD")
    model = scripted(call("write_file", path="new.txt", content="x"), answer("ok"))
    await llm_agent(model, commit=False)(context_for(worktree))
    assert git(worktree, "rev-parse", "HEAD") == head
    assert git(worktree, "status", "--porcelain") == "?? new.txt"


async def test_commit_message_names_the_item(worktree: Path) -> None:
    model = scripted(call("write_file", path="new.txt", content="x"), answer("ok"))
    await llm_agent(model, commit_message="docs({item_id}): update")(context_for(worktree))
    assert git(worktree, "log", "-1", "--format=%s") == "docs(item-1): update"


async def test_commit_without_configured_identity_uses_treefork(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    repo = make_repository(tmp_path, identity=False)
    worktree = add_worktree(repo, tmp_path)
    model = scripted(call("write_file", path="new.txt", content="x"), answer("ok"))
    await llm_agent(model)(context_for(worktree))
    assert git(worktree, "log", "-1", "--format=%an <%ae>") == "treefork <treefork@localhost>"


async def test_prompt_and_system_prompt_reach_the_model(worktree: Path) -> None:
    model = scripted(answer("ok"))
    await llm_agent(model, system="Be brief.")(context_for(worktree, prompt="Fix README.md"))
    system, human = model.seen[0][:2]
    assert system.content == "Be brief."
    assert human.content == "Fix README.md"


def test_task_message_prefers_the_step_prompt(worktree: Path) -> None:
    context = context_for(worktree, prompt="Fix README.md")
    assert task_message(context, "ignored instruction") == "Fix README.md"


def test_task_message_without_step_prompt_shows_the_item_as_json(worktree: Path) -> None:
    context = context_for(worktree, prompt=None)
    assert task_message(context, None) == (
        'Work item:\n{\n  "id": "item-1",\n  "file": "README.md"\n}'
    )
    assert task_message(context, "Tidy the file.").startswith("Tidy the file.\n\nWork item:\n{")


def test_llm_agent_is_a_plain_async_callable_for_agent_steps() -> None:
    agent = llm_agent(scripted())
    assert inspect.iscoroutinefunction(agent)
    step = AgentStep(agent, prompt="Fix ${item.file}")
    assert step.label == "llm_agent"


async def test_agent_tools_are_bound_to_their_worktree(worktree: Path) -> None:
    by_name = {tool.name: tool for tool in agent_tools(worktree)}
    assert await by_name["read_file"].ainvoke({"path": "src/app.py"}) == "print('hi')\n"
    assert await by_name["search"].ainvoke({"pattern": "TODO"}) == "README.md:2: TODO: write docs"
