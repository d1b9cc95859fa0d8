"""A map agent made of any LangChain chat model and a few tools confined to its worktree.

:func:`llm_agent` returns a plain async callable, usable as ``AgentStep(llm_agent(model))``.
It runs a tool-calling loop: the model is bound to the tools in :mod:`treefork.agents.tools`,
each tool call is answered with a ``ToolMessage`` (a refused path or a failed tool is an error
message for the model, never a crash), and the loop ends when the model answers without
calling a tool. Then any change in the worktree is committed on the worktree's branch.

``run_command`` gives the model a shell in its worktree; it is not sandboxed, so give an
agent with it only to models you trust (see :func:`treefork.agents.tools.run_command`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.tools import BaseTool, StructuredTool, ToolException

from treefork.agents import tools
from treefork.core.pricing import PriceTable, model_name_of, usage_from_metadata
from treefork.errors import StepError, TreeforkError
from treefork.git.command import git
from treefork.git.repository import commit_identity_env
from treefork.steps import AgentContext, AgentOutput, Usage

__all__ = (
    "DEFAULT_COMMIT_MESSAGE",
    "DEFAULT_SYSTEM_PROMPT",
    "agent_tools",
    "commit_changes",
    "llm_agent",
    "task_message",
)

DEFAULT_SYSTEM_PROMPT = """\
You are a careful software engineer working in a git worktree of a repository.
Use the tools to look at and change files; paths are relative to the worktree root and must
stay inside it. Make the change the task asks for and nothing else.
When the work is done, reply with a short summary of what you changed, without calling a tool."""
"""The system prompt :func:`llm_agent` uses unless given another."""

DEFAULT_COMMIT_MESSAGE = "treefork: agent changes for item {item_id}"
"""The commit message; ``{item_id}`` is replaced by the work item's id."""

# Errors a tool may raise because of what the model asked for: they go back to the model as
# the tool's result. Anything else is a bug and propagates.
_TOOL_INPUT_ERRORS = (TreeforkError, OSError, ValueError, ToolException)


def agent_tools(
    worktree: Path, *, command_timeout: float = 120.0, read_only: bool = False
) -> list[BaseTool]:
    """The LangChain tools an LLM agent gets, all bound to one worktree.

    Args:
        worktree: The agent's worktree; every path is confined to it.
        command_timeout: Seconds ``run_command`` lets a command run.
        read_only: The agent may not commit (``isolation: none``): git in ``run_command``
            refuses to move HEAD or a branch.

    Returns:
        ``list_files``, ``read_file``, ``write_file``, ``search`` and ``run_command``.
    """

    async def list_files(path: str = ".") -> str:
        """List the files below a directory of the worktree, one path a line.

        Args:
            path: A directory or file, relative to the worktree root.
        """
        return await anyio.to_thread.run_sync(tools.list_files, worktree, path)

    async def read_file(path: str) -> str:
        """Read a text file of the worktree.

        Args:
            path: The file, relative to the worktree root.
        """
        return await anyio.to_thread.run_sync(tools.read_file, worktree, path)

    async def write_file(path: str, content: str) -> str:
        """Write a text file of the worktree, replacing it; missing directories are created.

        Args:
            path: The file, relative to the worktree root.
            content: The file's complete new content.
        """
        return await anyio.to_thread.run_sync(tools.write_file, worktree, path, content)

    async def search(pattern: str, path: str = ".") -> str:
        """Search text files for a regular expression; returns file:line: text per match.

        Args:
            pattern: A Python regular expression, matched against each line.
            path: A directory or file to search, relative to the worktree root.
        """
        return await anyio.to_thread.run_sync(tools.search, worktree, pattern, path)

    async def run_command(command: str) -> str:
        """Run a bash command in the worktree; returns exit code, stdout and stderr.

        Args:
            command: The bash script; the worktree root is its working directory.
        """
        return await tools.run_command(
            worktree, command, command_timeout=command_timeout, read_only=read_only
        )

    functions: list[Callable[..., Awaitable[str]]] = [
        list_files,
        read_file,
        write_file,
        search,
        run_command,
    ]
    return [
        StructuredTool.from_function(coroutine=function, parse_docstring=True)
        for function in functions
    ]


def task_message(context: AgentContext, prompt: str | None) -> str:
    """What the agent is asked: the step's resolved prompt, else ``prompt`` and the item.

    Args:
        context: The agent's context.
        prompt: The instruction given to :func:`llm_agent`, if any.

    Returns:
        ``context.prompt`` when set; otherwise ``prompt`` (if any) followed by the work item
        as JSON.
    """
    if context.prompt:
        return context.prompt
    item = json.dumps(context.item, indent=2, ensure_ascii=False, default=str)
    if prompt:
        return f"{prompt}\n\nWork item:\n{item}"
    return f"Work item:\n{item}"


def _answer_text(message: AIMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    parts = [
        block if isinstance(block, str) else str(block.get("text", ""))
        for block in message.content
        if isinstance(block, str) or block.get("type") == "text"
    ]
    return "".join(parts)


async def _tool_result(tools_by_name: Mapping[str, BaseTool], call: ToolCall) -> ToolMessage:
    """The ToolMessage answering one tool call; failures become an error text for the model."""
    name, call_id = call["name"], call.get("id") or ""
    tool = tools_by_name.get(name)
    if tool is None:
        known = ", ".join(tools_by_name)
        return ToolMessage(
            f"error: there is no tool named {name!r}; tools: {known}",
            tool_call_id=call_id,
            name=name,
            status="error",
        )
    try:
        content = await tool.ainvoke(call["args"])
    except _TOOL_INPUT_ERRORS as error:
        return ToolMessage(f"error: {error}", tool_call_id=call_id, name=name, status="error")
    return ToolMessage(str(content), tool_call_id=call_id, name=name)


def _malformed_call_results(message: AIMessage) -> list[ToolMessage]:
    """Error results for tool calls whose arguments the model's client could not parse."""
    return [
        ToolMessage(
            f"error: the arguments of this call could not be parsed: {call.get('error') or ''}",
            tool_call_id=call.get("id") or "",
            name=call.get("name") or "",
            status="error",
        )
        for call in message.invalid_tool_calls
    ]


@dataclass(frozen=True, slots=True)
class _Conversation:
    """How a tool-calling loop ended."""

    answer: str
    usage: Usage
    steps: int


async def _converse(
    model: BaseChatModel,
    messages: list[BaseMessage],
    toolset: Sequence[BaseTool],
    *,
    max_steps: int,
    prices: PriceTable | None,
) -> _Conversation | Usage:
    """Call the model until it answers without tools; the usage alone if max_steps ran out."""
    bound = model.bind_tools(list(toolset))
    tools_by_name = {tool.name: tool for tool in toolset}
    usage = Usage()
    for step in range(1, max_steps + 1):
        reply = await bound.ainvoke(messages)
        if not isinstance(reply, AIMessage):
            raise TypeError(f"the model returned {type(reply).__name__}, not an AIMessage")
        name = model_name_of(model, reply.response_metadata)
        usage += usage_from_metadata(reply.usage_metadata, name, prices)
        messages.append(reply)
        if not reply.tool_calls and not reply.invalid_tool_calls:
            return _Conversation(_answer_text(reply), usage, step)
        for call in reply.tool_calls:
            messages.append(await _tool_result(tools_by_name, call))
        messages.extend(_malformed_call_results(reply))
    return usage


async def commit_changes(worktree: Path, message: str) -> bool:
    """Commit every change in the worktree (``git add -A``) on its branch.

    Args:
        worktree: The worktree.
        message: The commit message.

    Returns:
        Whether there was anything to commit.

    Raises:
        GitError: A git command failed (a failing commit hook included).
    """
    status = await git("status", "--porcelain", cwd=worktree)
    if not status.stdout.strip():
        return False
    await git("add", "-A", cwd=worktree)
    # A repository without a configured identity gets treefork's, as for the engine's merges.
    identity = await commit_identity_env(worktree)
    await git("commit", "-q", "-m", message, cwd=worktree, env=identity)
    return True


def llm_agent(
    model: BaseChatModel,
    *,
    prompt: str | None = None,
    system: str | None = None,
    max_steps: int = 20,
    prices: PriceTable | None = None,
    commit: bool = True,
    commit_message: str = DEFAULT_COMMIT_MESSAGE,
    command_timeout: float = 120.0,
) -> Callable[[AgentContext], Awaitable[AgentOutput]]:
    """An agent that works on its item with a chat model and tools confined to its worktree.

    Args:
        model: Any LangChain chat model that supports tool calling (``bind_tools``).
        prompt: The instruction when the step has no prompt of its own; the work item is
            appended as JSON. ``AgentStep(..., prompt=...)`` wins over it.
        system: The system prompt; :data:`DEFAULT_SYSTEM_PROMPT` when omitted.
        max_steps: Most model calls; a model still calling tools after them fails the step.
        prices: Prices for the usage's cost; without them the cost is 0.0.
        commit: Commit the worktree's changes (``git add -A``) when the model is done
            (never for a read-only agent, ``isolation: none``).
        commit_message: The commit message; ``{item_id}`` is replaced by the item's id.
        command_timeout: Seconds a ``run_command`` call may run.

    Returns:
        ``async (AgentContext) -> AgentOutput`` with the model's final answer as ``output``,
        tokens and cost summed over every model call as ``usage``, and
        ``variables={"steps": <model calls>}``.

        The callable raises :class:`~treefork.errors.StepError` when the model still calls
        tools after ``max_steps`` calls (the tokens spent are in the error's notes), and
        :class:`~treefork.errors.GitError` when committing fails. Errors of the model's
        client propagate unchanged, for the step's retry policy to handle.

    Raises:
        ValueError: ``max_steps`` is below 1.
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")

    async def run(context: AgentContext) -> AgentOutput:
        messages: list[BaseMessage] = [
            SystemMessage(system or DEFAULT_SYSTEM_PROMPT),
            HumanMessage(task_message(context, prompt)),
        ]
        bound_tools = agent_tools(
            context.worktree, command_timeout=command_timeout, read_only=not context.allow_commits
        )
        ended = await _converse(model, messages, bound_tools, max_steps=max_steps, prices=prices)
        if not isinstance(ended, _Conversation):
            raise _steps_exhausted(context, max_steps, ended)
        if commit and context.allow_commits:  # a read-only agent's worktree is shared
            item_id = context.item_id if context.item_id is not None else "-"
            await commit_changes(context.worktree, commit_message.replace("{item_id}", item_id))
        return AgentOutput(output=ended.answer, usage=ended.usage, variables={"steps": ended.steps})

    run.__name__ = run.__qualname__ = "llm_agent"
    return run


def _steps_exhausted(context: AgentContext, max_steps: int, usage: Usage) -> StepError:
    error = StepError(
        phase="map" if context.item_index is not None else "agent",
        step="llm_agent",
        reason=f"the model was still calling tools after max_steps={max_steps} model calls",
        item_id=context.item_id,
        domain=context.domain,
        worktree=context.worktree,
    )
    error.add_note(
        f"spent {usage.tokens_in} input and {usage.tokens_out} output tokens (cost {usage.cost:g})"
    )
    return error
