from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, MessagesState, StateGraph

from treefork.errors import StepError, StepTimeoutError
from treefork.runners.agent import normalise_agent_result
from treefork.runners.steps import StepContext, run_step, run_steps
from treefork.steps import AgentContext, AgentOutput, AgentStep, Shell, Usage

MakeContext = Callable[..., StepContext]


async def test_a_callable_agent_gets_its_context_and_its_output_is_captured(
    make_context: MakeContext, worktree: Path
) -> None:
    seen: list[AgentContext] = []

    async def agent(context: AgentContext) -> str:
        seen.append(context)
        return f"done {context.item['title']}"

    context = make_context(item={"title": "t"}, item_id="1", item_index=0, variables={"v": 1})
    step = AgentStep(agent, prompt="fix ${item.title} (${v})", capture="answer")
    result = await run_step(step, context)
    assert result.output == "done t"
    assert context.variables["answer"] == "done t"
    (agent_context,) = seen
    assert agent_context.prompt == "fix t (1)"
    assert agent_context.worktree == worktree
    assert (agent_context.item_id, agent_context.domain, agent_context.job_id) == (
        "1",
        "docs",
        "job1",
    )
    assert agent_context.variables["v"] == 1


async def test_agent_output_variables_and_usage_reach_later_steps(
    make_context: MakeContext,
) -> None:
    async def agent(context: AgentContext) -> AgentOutput:
        return AgentOutput("ok", Usage(3, 4, 0.5), {"verdict": "good"})

    context = make_context()
    outcome = await run_steps([AgentStep(agent), Shell("echo ${verdict}", capture="v")], context)
    assert outcome.usage == Usage(3, 4, 0.5)
    assert context.variables["v"] == "good"


async def test_a_runnable_gets_the_payload_and_its_message_usage_counts(
    make_context: MakeContext, worktree: Path
) -> None:
    payloads: list[dict[str, Any]] = []

    def answer(payload: dict[str, Any]) -> AIMessage:
        payloads.append(payload)
        return AIMessage(
            content=[{"type": "text", "text": "hello "}, "there"],
            usage_metadata={"input_tokens": 10, "output_tokens": 2, "total_tokens": 12},
        )

    result = await run_step(
        AgentStep(RunnableLambda(answer), prompt="p ${item}"), make_context(item="i", item_id="i")
    )
    assert (result.output, result.usage) == ("hello there", Usage(10, 2, 0.0))
    (payload,) = payloads
    assert payload["prompt"] == "p i"
    assert payload["worktree"] == str(worktree)
    assert payload["messages"] == [{"role": "user", "content": "p i"}]
    assert {"item", "item_id", "item_index", "variables"} <= set(payload)


async def test_a_langgraph_agent_with_a_fake_chat_model(make_context: MakeContext) -> None:
    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(
                    content="patched",
                    usage_metadata={"input_tokens": 7, "output_tokens": 3, "total_tokens": 10},
                )
            ]
        )
    )

    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_edge(START, "model")
    graph.add_edge("model", END)
    result = await run_step(
        AgentStep(graph.compile(), prompt="fix ${item}"), make_context(item="a.py", item_id="a")
    )
    assert (result.output, result.usage) == ("patched", Usage(7, 3, 0.0))


async def test_an_agent_exception_becomes_a_step_error_naming_it(make_context: MakeContext) -> None:
    async def agent(context: AgentContext) -> str:
        raise RuntimeError("model unavailable")

    with pytest.raises(StepError, match="the agent raised RuntimeError: model unavailable"):
        await run_step(AgentStep(agent, name="broken"), make_context())


async def test_an_agent_past_its_timeout_is_stopped(make_context: MakeContext) -> None:
    async def agent(context: AgentContext) -> str:
        await anyio.sleep(30)
        return "late"

    with pytest.raises(StepTimeoutError, match="time limit"):
        await run_step(AgentStep(agent, timeout=0.2), make_context())


async def test_a_plain_function_agent_is_accepted(make_context: MakeContext) -> None:
    def agent(context: AgentContext) -> dict[str, Any]:
        return {"output": "sync", "usage": {"input_tokens": 1, "output_tokens": 1}}

    result = await run_step(AgentStep(agent), make_context())
    assert (result.output, result.usage) == ("sync", Usage(1, 1, 0.0))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ("", Usage(), {})),
        ("text", ("text", Usage(), {})),
        ({"output": "o", "variables": {"a": 1}}, ("o", Usage(), {"a": 1})),
        ({"usage": Usage(1, 2, 3.0)}, ("", Usage(1, 2, 3.0), {})),
        ({"answer": 42}, ('{"answer":42}', Usage(), {})),
        (
            {
                "messages": [
                    HumanMessage("q"),
                    AIMessage(
                        "a",
                        usage_metadata={"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
                    ),
                    AIMessage(
                        "b",
                        usage_metadata={"input_tokens": 2, "output_tokens": 3, "total_tokens": 5},
                    ),
                ]
            },
            ("b", Usage(3, 4, 0.0), {}),
        ),
    ],
)
def test_normalise_agent_result(value: Any, expected: tuple[str, Usage, dict[str, Any]]) -> None:
    assert normalise_agent_result(value) == expected


async def test_an_agent_step_error_keeps_what_it_spent(make_context: MakeContext) -> None:
    async def agent(context: AgentContext) -> str:
        assert context.allow_commits is False
        raise StepError(phase="map", step="inner", reason="gave up", usage=Usage(5, 6, 0.7))

    outcome = await run_steps([AgentStep(agent)], make_context(allow_commits=False))
    assert outcome.usage == Usage(5, 6, 0.7)
    assert outcome.error is not None and outcome.error.usage == Usage(5, 6, 0.7)
    assert "gave up" in str(outcome.error)
