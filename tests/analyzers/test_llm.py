from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from fakechat import ToolCallingFakeModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult

from treefork.analyzers import LLMAnalyzer
from treefork.core.pricing import Price
from treefork.core.routing import Analyzer, DomainSpec, RuleAnalyzer

DOMAINS = (
    DomainSpec("auth", ("login", "password"), ("src/auth/**",), "Sign-in and sessions"),
    DomainSpec("payments", ("invoice", "refund"), ("src/payments/**",), "Billing"),
    DomainSpec("profile", ("avatar",), ("src/profile/**",), "User profile pages"),
)


class FailingModel(ToolCallingFakeModel):
    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        raise ConnectionError("service unavailable")


class HangingModel(ToolCallingFakeModel):
    async def _agenerate(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> ChatResult:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


def scripted(*answers: AIMessage | str) -> ToolCallingFakeModel:
    return ToolCallingFakeModel(messages=iter(answers))


def never_called() -> Iterator[AIMessage]:
    return iter(())


def selection_call(*choices: tuple[str, str], tokens: tuple[int, int] = (0, 0)) -> AIMessage:
    return AIMessage(
        content="",
        tool_calls=[
            {
                "name": "DomainSelection",
                "args": {"domains": [{"domain": name, "reason": why} for name, why in choices]},
                "id": "call-1",
            }
        ],
        usage_metadata={
            "input_tokens": tokens[0],
            "output_tokens": tokens[1],
            "total_tokens": sum(tokens),
        },
        response_metadata={"model_name": "router-1-2025"},
    )


def test_llm_analyzer_is_an_analyzer() -> None:
    assert isinstance(LLMAnalyzer(scripted()), Analyzer)


async def test_picks_the_domains_the_model_names_in_defined_order() -> None:
    model = scripted(
        selection_call(("profile", "avatar upload"), ("auth", "session cookie")),
    )
    selection = await LLMAnalyzer(model).select("Let users change their avatar", DOMAINS)
    assert selection.choices == (("auth", "session cookie"), ("profile", "avatar upload"))
    assert selection.analyzer == "llm"
    assert selection.note is None


async def test_prompt_lists_every_domain_and_schema_closes_the_set_of_names() -> None:
    model = scripted(selection_call(("auth", "login")))
    await LLMAnalyzer(model).select("Fix the login page", DOMAINS)
    prompt = model.seen[0][-1].content
    assert isinstance(prompt, str)
    assert "Fix the login page" in prompt
    for text in ("auth", "Sign-in and sessions", "invoice, refund", "src/profile/**"):
        assert text in prompt
    (tool,) = model.bound_tools
    choice = tool["function"]["parameters"]["properties"]["domains"]["items"]
    assert choice["properties"]["domain"]["enum"] == ["auth", "payments", "profile"]


async def test_a_repeated_domain_is_chosen_once_with_its_first_reason() -> None:
    model = scripted(selection_call(("auth", "first"), ("auth", "second")))
    selection = await LLMAnalyzer(model).select("anything", DOMAINS)
    assert selection.choices == (("auth", "first"),)


async def test_choosing_no_domain_is_an_answer_not_a_failure() -> None:
    selection = await LLMAnalyzer(scripted(selection_call())).select("Fix the login", DOMAINS)
    assert selection.choices == ()
    assert selection.analyzer == "llm"
    assert selection.note == "the model chose no domain"


async def test_unknown_domain_name_falls_back_to_rules_naming_it() -> None:
    model = scripted(selection_call(("auth", "login"), ("billing", "invoices")))
    selection = await LLMAnalyzer(model).select("Fix the login form", DOMAINS)
    assert selection.analyzer == "llm->rules"
    assert selection.choices == (("auth", "keyword 'login'"),)
    assert selection.note is not None
    assert "'billing'" in selection.note
    assert "not defined" in selection.note


async def test_rejected_answer_still_counts_its_tokens() -> None:
    prices = {"router-1": Price(input_per_million=1.0, output_per_million=4.0)}
    model = scripted(selection_call(("billing", "invoices"), tokens=(1000, 50)))
    selection = await LLMAnalyzer(model, prices=prices).select("Fix the login", DOMAINS)
    assert selection.analyzer == "llm->rules"
    assert selection.usage.tokens_in == 1000
    assert selection.usage.tokens_out == 50
    assert selection.usage.cost == pytest.approx((1000 * 1.0 + 50 * 4.0) / 1e6)


async def test_usage_is_counted_and_priced_on_success() -> None:
    prices = {"router-1": Price(input_per_million=2.0, output_per_million=8.0)}
    model = scripted(selection_call(("payments", "refunds"), tokens=(300, 20)))
    selection = await LLMAnalyzer(model, prices=prices).select("Refund bug", DOMAINS)
    assert selection.analyzer == "llm"
    assert (selection.usage.tokens_in, selection.usage.tokens_out) == (300, 20)
    assert selection.usage.cost == pytest.approx((300 * 2.0 + 20 * 8.0) / 1e6)


async def test_exception_from_the_model_falls_back_to_rules() -> None:
    analyzer = LLMAnalyzer(FailingModel(messages=never_called()))
    selection = await analyzer.select("Refund an invoice twice", DOMAINS)
    assert selection.analyzer == "llm->rules"
    assert selection.choices == (("payments", "keyword 'invoice'; keyword 'refund'"),)
    assert selection.note is not None
    assert "ConnectionError: service unavailable" in selection.note
    assert selection.usage.tokens == 0


async def test_hanging_model_times_out_and_falls_back_to_rules() -> None:
    analyzer = LLMAnalyzer(HangingModel(messages=never_called()), timeout=0.05)
    with anyio.fail_after(5):
        selection = await analyzer.select("Touch src/profile/view.py", DOMAINS)
    assert selection.analyzer == "llm->rules"
    assert [name for name, _ in selection.choices] == ["profile"]
    assert selection.note is not None
    assert "did not answer within 0.05s" in selection.note


async def test_plain_text_answer_falls_back_to_rules() -> None:
    selection = await LLMAnalyzer(scripted("auth, I think")).select("Fix login", DOMAINS)
    assert selection.analyzer == "llm->rules"
    assert selection.note is not None
    assert "without a structured choice" in selection.note


async def test_answer_missing_a_field_falls_back_to_rules() -> None:
    broken = AIMessage(
        content="",
        tool_calls=[
            {"name": "DomainSelection", "args": {"domains": [{"domain": "auth"}]}, "id": "1"}
        ],
    )
    selection = await LLMAnalyzer(scripted(broken)).select("Fix login", DOMAINS)
    assert selection.analyzer == "llm->rules"
    assert selection.note is not None
    assert "does not fit the schema" in selection.note


async def test_fallback_uses_the_rule_analyzers_mode() -> None:
    analyzer = LLMAnalyzer(FailingModel(messages=never_called()), fallback=RuleAnalyzer("all"))
    selection = await analyzer.select("Something unrelated", DOMAINS)
    assert selection.analyzer == "llm->rules"
    assert [name for name, _ in selection.choices] == ["auth", "payments", "profile"]
    assert selection.note is not None
    assert selection.note.startswith("fell back to rules: the model failed")
    assert "running all" in selection.note


async def test_no_domains_means_no_model_call() -> None:
    model = scripted()
    selection = await LLMAnalyzer(model).select("anything", ())
    assert selection.choices == ()
    assert model.seen == []
