"""What model calls cost: a price table, token counts and the model's name give a :class:`Usage`.

Prices are per million tokens, in whatever currency the caller's table uses (the budget only
compares numbers). A model missing from the table costs nothing, so tokens are still counted
against a token budget even when no price is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from treefork.steps import Usage

__all__ = (
    "Price",
    "PriceTable",
    "cost_of",
    "model_name_of",
    "price_for",
    "usage_from_metadata",
)

_PER_MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class Price:
    """The price of one model's tokens."""

    input_per_million: float
    """Cost of one million prompt (input) tokens."""
    output_per_million: float
    """Cost of one million completion (output) tokens."""


PriceTable: TypeAlias = Mapping[str, Price]
"""Prices by model name; a name also covers longer names it is a prefix of."""


def price_for(model_name: str | None, prices: PriceTable | None) -> Price | None:
    """The price of a model: its exact name first, else the longest table name it starts with.

    ``gpt-4o-mini-2024-07-18`` is priced as ``gpt-4o-mini`` rather than ``gpt-4o`` when the
    table has both.

    Args:
        model_name: The model's name, if known.
        prices: The price table, if any.

    Returns:
        The price, or None when the name or the table is missing or nothing matches.
    """
    if not model_name or not prices:
        return None
    exact = prices.get(model_name)
    if exact is not None:
        return exact
    prefixes = [name for name in prices if name and model_name.startswith(name)]
    if not prefixes:
        return None
    return prices[max(prefixes, key=len)]


def cost_of(
    model_name: str | None, tokens_in: int, tokens_out: int, prices: PriceTable | None
) -> float:
    """The cost of one or more calls to a model.

    Args:
        model_name: The model's name, if known.
        tokens_in: Prompt (input) tokens.
        tokens_out: Completion (output) tokens.
        prices: The price table, if any.

    Returns:
        The cost; 0.0 when the model has no price in the table.
    """
    price = price_for(model_name, prices)
    if price is None:
        return 0.0
    return (
        tokens_in * price.input_per_million + tokens_out * price.output_per_million
    ) / _PER_MILLION


def model_name_of(model: object, response_metadata: Mapping[str, Any] | None = None) -> str | None:
    """The name of the model that answered.

    The name a response reports (``response_metadata["model_name"]``, usually the dated
    version actually served) wins over the name the chat model was configured with
    (its ``model_name`` or ``model`` attribute).

    Args:
        model: The chat model (any object).
        response_metadata: The answer's ``response_metadata``, if there is an answer.

    Returns:
        The name, or None when neither says.
    """
    reported = (response_metadata or {}).get("model_name")
    if isinstance(reported, str) and reported:
        return reported
    for attribute in ("model_name", "model"):
        configured = getattr(model, attribute, None)
        if isinstance(configured, str) and configured:
            return configured
    return None


def _token_count(metadata: Mapping[str, Any], key: str) -> int:
    value = metadata.get(key)
    return value if isinstance(value, int) and value > 0 else 0


def usage_from_metadata(
    usage_metadata: Mapping[str, Any] | None, model_name: str | None, prices: PriceTable | None
) -> Usage:
    """The usage of one model call from its answer's ``usage_metadata``.

    Args:
        usage_metadata: ``AIMessage.usage_metadata`` (``input_tokens``, ``output_tokens``);
            None when the model reported nothing.
        model_name: The model's name, for the price.
        prices: The price table, if any.

    Returns:
        Tokens in and out, and their cost (0.0 when unpriced).
    """
    if not usage_metadata:
        return Usage()
    tokens_in = _token_count(usage_metadata, "input_tokens")
    tokens_out = _token_count(usage_metadata, "output_tokens")
    return Usage(tokens_in, tokens_out, cost_of(model_name, tokens_in, tokens_out, prices))
