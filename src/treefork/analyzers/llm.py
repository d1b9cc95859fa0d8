"""Choosing domains with a chat model, falling back to the rules when the model fails.

The model answers through structured output: a schema whose domain names are a closed set
(a JSON-schema ``enum`` of the defined names), each with a reason. Whatever goes wrong (the
model raises, hangs past the timeout, answers without the schema, or names a domain that is not
defined), the rules decide instead and :attr:`Selection.note` says why, with
``analyzer="llm->rules"``. Tokens the model spent are counted either way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, Literal

import anyio
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, Field, create_model

from treefork.core.pricing import PriceTable, model_name_of, usage_from_metadata
from treefork.core.routing import DomainSpec, RuleAnalyzer, Selection, select_by_rules
from treefork.steps import Usage

__all__ = ("LLMAnalyzer",)

logger = logging.getLogger("treefork.analyzers")

_SYSTEM_PROMPT = """\
You route a software task to the parts ("domains") of a code repository it touches.
Choose every domain in which the task needs changes or checks, and only those; give each
chosen domain a short reason. Choose no domain if none applies.
Answer only by calling the DomainSelection tool, using domain names exactly as listed."""


def selection_schema(names: Sequence[str]) -> type[BaseModel]:
    """The structured-output schema for choosing among ``names``.

    Args:
        names: The defined domain names (at least one).

    Returns:
        A pydantic model ``DomainSelection`` with ``domains: list[DomainChoice]``, where each
        choice's ``domain`` is a ``Literal`` of the names, so no other name validates.
    """
    # The names are only known at run time; a Literal of them becomes a JSON-schema enum.
    name_type: Any = Literal.__getitem__(tuple(names))
    choice = create_model(
        "DomainChoice",
        __doc__="One domain the task touches.",
        domain=(name_type, Field(description="The domain's name, exactly as listed.")),
        reason=(str, Field(description="Why the task touches this domain, in one sentence.")),
    )
    return create_model(
        "DomainSelection",
        __doc__="The domains of the repository that the task touches.",
        domains=(list[choice], Field(description="The chosen domains; empty if none applies.")),  # type: ignore[valid-type]  # a class built at run time
    )


def describe_domains(domains: Sequence[DomainSpec]) -> str:
    """The domains as the prompt lists them: name, description, keywords and path globs."""
    blocks = []
    for domain in domains:
        lines = [f"- name: {domain.name}"]
        if domain.description:
            lines.append(f"  description: {domain.description}")
        if domain.keywords:
            lines.append(f"  keywords: {', '.join(domain.keywords)}")
        if domain.paths:
            lines.append(f"  paths: {', '.join(domain.paths)}")
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def selection_messages(task: str, domains: Sequence[DomainSpec]) -> list[BaseMessage]:
    """The messages sent to the model for one task."""
    return [
        SystemMessage(_SYSTEM_PROMPT),
        HumanMessage(f"Task:\n{task}\n\nDomains:\n{describe_domains(domains)}"),
    ]


def _proposed_names(raw: object) -> list[str]:
    """The domain names the model's raw tool call proposed, valid or not."""
    if not isinstance(raw, AIMessage) or not raw.tool_calls:
        return []
    proposed = raw.tool_calls[0]["args"].get("domains")
    if not isinstance(proposed, list):
        return []
    return [
        str(entry["domain"])
        for entry in proposed
        if isinstance(entry, Mapping) and "domain" in entry
    ]


def _rejection(answer: Mapping[str, Any], names: Sequence[str]) -> str:
    """Why a structured answer without a parsed value is rejected, in words."""
    unknown = [name for name in _proposed_names(answer.get("raw")) if name not in names]
    if unknown:
        return (
            f"the model named domains that are not defined: {', '.join(map(repr, unknown))} "
            f"(defined: {', '.join(names)})"
        )
    error = answer.get("parsing_error")
    if error is not None:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return f"the model's answer does not fit the schema: {type(error).__name__}: {first_line}"
    return "the model answered without a structured choice of domains"


def _choices_in_defined_order(
    parsed: BaseModel, domains: Sequence[DomainSpec]
) -> tuple[tuple[str, str], ...]:
    """(name, reason) for each chosen domain, in defined order, the first reason kept."""
    reasons: dict[str, str] = {}
    for choice in parsed.model_dump()["domains"]:
        reasons.setdefault(choice["domain"], choice["reason"].strip() or "chosen by the model")
    return tuple(
        (domain.name, reasons[domain.name]) for domain in domains if domain.name in reasons
    )


@dataclass(frozen=True, slots=True)
class LLMAnalyzer:
    """Chooses domains with a chat model; the rules decide when the model cannot.

    Args:
        model: Any LangChain chat model that supports tool calling (structured output).
        fallback: The rule-based analyzer used when the model fails; its ``fallback`` mode
            (``all`` or ``none``) applies. Defaults to ``RuleAnalyzer()``.
        timeout: Seconds the model may take to answer.
        prices: Prices for :attr:`Selection.usage`; without them the cost is 0.0.
    """

    model: BaseChatModel
    _: KW_ONLY
    fallback: RuleAnalyzer | None = None
    timeout: float = 60.0
    prices: PriceTable | None = None

    async def select(self, task: str, domains: Sequence[DomainSpec]) -> Selection:
        """Choose the domains the task touches.

        Never raises for a model failure: it falls back to the rules, records why in
        ``note`` and sets ``analyzer="llm->rules"``.

        Args:
            task: The task in words.
            domains: The defined domains.

        Returns:
            The chosen domains in defined order with a reason each, and the model's usage.
        """
        if not domains:
            return Selection(choices=(), analyzer="llm", note="no domains are defined")
        names = [domain.name for domain in domains]
        try:
            answer = await self._ask(task, domains)
        except TimeoutError:
            why = f"the model did not answer within {self.timeout:g}s"
            return self._fall_back(task, domains, why, Usage())
        # Any failure of the model or its client (network, rate limit, missing tool support)
        # is a reason to decide by rules, never a reason to stop the job.
        except Exception as error:
            why = f"the model failed: {type(error).__name__}: {error}"
            return self._fall_back(task, domains, why, Usage())
        usage = self._usage_of(answer.get("raw"))
        parsed = answer.get("parsed")
        if not isinstance(parsed, BaseModel):
            return self._fall_back(task, domains, _rejection(answer, names), usage)
        choices = _choices_in_defined_order(parsed, domains)
        note = None if choices else "the model chose no domain"
        return Selection(choices=choices, analyzer="llm", note=note, usage=usage)

    async def _ask(self, task: str, domains: Sequence[DomainSpec]) -> Mapping[str, Any]:
        schema = selection_schema([domain.name for domain in domains])
        runnable = self.model.with_structured_output(schema, include_raw=True)
        with anyio.fail_after(self.timeout):
            answer = await runnable.ainvoke(selection_messages(task, domains))
        if not isinstance(answer, Mapping):
            raise TypeError(f"structured output returned {type(answer).__name__}, not a dict")
        return answer

    def _usage_of(self, raw: object) -> Usage:
        if not isinstance(raw, AIMessage):
            return Usage()
        name = model_name_of(self.model, raw.response_metadata)
        return usage_from_metadata(raw.usage_metadata, name, self.prices)

    def _fall_back(
        self, task: str, domains: Sequence[DomainSpec], why: str, usage: Usage
    ) -> Selection:
        logger.warning("LLM analyzer falls back to rules: %s", why)
        mode = self.fallback.fallback if self.fallback is not None else "none"
        by_rules = select_by_rules(task, domains, fallback=mode)
        note = f"fell back to rules: {why}"
        if by_rules.note:
            note = f"{note}; {by_rules.note}"
        return Selection(choices=by_rules.choices, analyzer="llm->rules", note=note, usage=usage)
