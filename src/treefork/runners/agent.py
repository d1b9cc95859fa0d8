"""Agent steps: any async callable, or a LangChain ``Runnable`` (a compiled LangGraph graph).

A Runnable is called as ``await agent.ainvoke(payload)`` with the payload
``{"item", "item_id", "item_index", "worktree", "variables", "prompt", "allow_commits"}``
plus, when the step has a prompt, ``"messages": [{"role": "user", "content": prompt}]`` (so
a prebuilt chat agent works as it is; graphs ignore input keys they do not declare).
Anything else is called with the :class:`~treefork.steps.AgentContext`. A
:class:`~treefork.errors.StepError` the agent raises passes through as it is, its ``usage``
counted.

What it returns becomes output, usage and variables (:func:`normalise_agent_result`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
from langchain_core.messages import AIMessage, BaseMessage
from langgraph.errors import GraphBubbleUp

from treefork.core.interpolate import render_text, stringify
from treefork.core.pricing import usage_from_metadata
from treefork.errors import InterpolationError, StepError, StepTimeoutError
from treefork.runners.context import StepContext, StepRun, make_error, time_limit
from treefork.steps import AgentContext, AgentOutput, AgentStep, Usage

__all__ = ("message_text", "normalise_agent_result", "run_agent")

_STRUCTURED_KEYS = frozenset({"output", "usage", "variables"})


def message_text(message: BaseMessage) -> str:
    """The text of a message, whether its content is a string or a list of blocks."""
    content = message.content
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, Mapping) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "".join(parts)


def _message_usage(message: BaseMessage) -> Usage:
    if not isinstance(message, AIMessage):
        return Usage()
    return usage_from_metadata(message.usage_metadata, None, None)


def _usage(value: Any) -> Usage:
    if isinstance(value, Usage):
        return value
    if not isinstance(value, Mapping):
        return Usage()
    tokens_in = value.get("tokens_in", value.get("input_tokens", 0))
    tokens_out = value.get("tokens_out", value.get("output_tokens", 0))
    cost = value.get("cost", value.get("total_cost_usd", 0.0))
    return Usage(int(tokens_in or 0), int(tokens_out or 0), float(cost or 0.0))


def _from_state(messages: Sequence[Any]) -> tuple[str, Usage, dict[str, Any]]:
    chat = [message for message in messages if isinstance(message, BaseMessage)]
    usage = sum((_message_usage(message) for message in chat), Usage())
    return (message_text(chat[-1]) if chat else ""), usage, {}


def normalise_agent_result(result: Any) -> tuple[str, Usage, dict[str, Any]]:
    """Output text, usage and variables from whatever an agent returned.

    - None: nothing. A str: the output.
    - :class:`~treefork.steps.AgentOutput`: its fields.
    - A message (``AIMessage``): its text; ``usage_metadata`` as usage.
    - A dict with ``output``/``usage``/``variables``: those (usage as a
      :class:`~treefork.steps.Usage` or a dict of ``tokens_in``/``tokens_out``/``cost`` or
      ``input_tokens``/``output_tokens``).
    - A LangGraph state with ``messages``: the last message's text; usage summed over
      the AI messages.
    - Any other dict or value: its JSON (or ``str``) as output.
    """
    if result is None:
        return "", Usage(), {}
    if isinstance(result, str):
        return result, Usage(), {}
    if isinstance(result, AgentOutput):
        return result.output, result.usage, dict(result.variables)
    if isinstance(result, BaseMessage):
        return message_text(result), _message_usage(result), {}
    if isinstance(result, Mapping):
        return _from_mapping(result)
    return stringify(result), Usage(), {}


def _from_mapping(result: Mapping[str, Any]) -> tuple[str, Usage, dict[str, Any]]:
    if _STRUCTURED_KEYS & set(result):
        variables = result.get("variables") or {}
        return stringify(result.get("output", "")), _usage(result.get("usage")), dict(variables)
    if isinstance(result.get("messages"), Sequence):
        return _from_state(result["messages"])
    return stringify(result), Usage(), {}


async def _call(step: AgentStep, agent_context: AgentContext) -> Any:
    agent = step.agent
    if hasattr(agent, "ainvoke"):
        payload: dict[str, Any] = {
            "item": agent_context.item,
            "item_id": agent_context.item_id,
            "item_index": agent_context.item_index,
            "worktree": str(agent_context.worktree),
            "variables": dict(agent_context.variables),
            "prompt": agent_context.prompt,
            "allow_commits": agent_context.allow_commits,
        }
        if agent_context.prompt is not None:
            payload["messages"] = [{"role": "user", "content": agent_context.prompt}]
        return await agent.ainvoke(payload)
    result = agent(agent_context)
    return await result if inspect.isawaitable(result) else result


async def run_agent(step: AgentStep, context: StepContext, scope: Mapping[str, Any]) -> StepRun:
    """Run one attempt of an agent step.

    Args:
        step: The step.
        context: Where it runs.
        scope: The interpolation scope; the agent gets a copy as its variables.

    Returns:
        The attempt: output, usage and variables from the agent's result.

    Raises:
        StepError: The prompt cannot be interpolated or the agent raised (its exception
            type and message are named).
        StepTimeoutError: The agent ran past the step's timeout or the agent deadline.
    """
    try:
        prompt = render_text(step.prompt, scope) if step.prompt is not None else None
    except InterpolationError as error:
        raise make_error(context, step, str(error)) from error
    agent_context = AgentContext(
        item=context.item,
        item_id=context.item_id,
        item_index=context.item_index,
        worktree=context.worktree,
        variables=dict(scope),
        domain=context.domain,
        job_id=context.job_id,
        prompt=prompt,
        allow_commits=context.allow_commits,
    )
    limit = time_limit(context, step)
    with anyio.move_on_after(limit) as deadline:
        try:
            result = await _call(step, agent_context)
        except (StepError, GraphBubbleUp):
            # GraphBubbleUp: the agent called interrupt() to ask for input; LangGraph
            # stops the task and runs it again once the run is resumed with an answer.
            raise
        except Exception as error:
            reason = f"the agent raised {type(error).__name__}: {error}"
            raise make_error(context, step, reason) from error
    if deadline.cancelled_caught:
        raise make_error(
            context, step, f"the agent ran past its time limit ({limit:g}s)", kind=StepTimeoutError
        )
    output, usage, variables = normalise_agent_result(result)
    return StepRun(output, usage=usage, variables=variables)
