from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treefork.core.pricing import (
    Price,
    cost_of,
    model_name_of,
    price_for,
    usage_from_metadata,
)
from treefork.steps import Usage

PRICES = {
    "gpt-4o": Price(input_per_million=2.5, output_per_million=10.0),
    "gpt-4o-mini": Price(input_per_million=0.15, output_per_million=0.6),
    "claude-sonnet-4": Price(input_per_million=3.0, output_per_million=15.0),
}


def test_exact_name_is_priced_per_million_tokens() -> None:
    assert cost_of("gpt-4o", 1_000_000, 500_000, PRICES) == pytest.approx(2.5 + 5.0)


def test_dated_name_is_priced_by_its_longest_matching_prefix() -> None:
    assert price_for("gpt-4o-mini-2024-07-18", PRICES) == PRICES["gpt-4o-mini"]
    assert price_for("gpt-4o-2024-08-06", PRICES) == PRICES["gpt-4o"]


def test_exact_name_wins_over_a_prefix() -> None:
    prices = {"m": Price(1.0, 1.0), "m-large": Price(5.0, 5.0)}
    assert price_for("m-large", prices) == Price(5.0, 5.0)


@pytest.mark.parametrize(
    ("name", "prices"),
    [(None, PRICES), ("", PRICES), ("llama-3", PRICES), ("gpt-4o", None), ("gpt-4o", {})],
)
def test_unknown_model_or_missing_table_costs_nothing(
    name: str | None, prices: dict[str, Price] | None
) -> None:
    assert cost_of(name, 1000, 1000, prices) == 0.0


@given(
    tokens_in=st.integers(min_value=0, max_value=10**9),
    tokens_out=st.integers(min_value=0, max_value=10**9),
    more_in=st.integers(min_value=0, max_value=10**9),
)
def test_cost_grows_with_tokens_and_is_never_negative(
    tokens_in: int, tokens_out: int, more_in: int
) -> None:
    cost = cost_of("claude-sonnet-4-20250514", tokens_in, tokens_out, PRICES)
    assert cost >= 0.0
    assert cost_of("claude-sonnet-4-20250514", tokens_in + more_in, tokens_out, PRICES) >= cost


def test_model_name_reported_by_the_answer_wins_over_the_configured_one() -> None:
    model = SimpleNamespace(model_name="gpt-4o")
    assert model_name_of(model, {"model_name": "gpt-4o-2024-08-06"}) == "gpt-4o-2024-08-06"
    assert model_name_of(model, {}) == "gpt-4o"


def test_model_name_falls_back_to_the_model_attribute() -> None:
    assert model_name_of(SimpleNamespace(model="claude-sonnet-4")) == "claude-sonnet-4"
    assert model_name_of(SimpleNamespace(model_name=None, model="m")) == "m"
    assert model_name_of(object()) is None


def test_usage_from_metadata_counts_tokens_and_prices_them() -> None:
    usage = usage_from_metadata(
        {"input_tokens": 2000, "output_tokens": 100, "total_tokens": 2100}, "gpt-4o", PRICES
    )
    assert usage == Usage(2000, 100, pytest.approx((2000 * 2.5 + 100 * 10.0) / 1e6))


def test_missing_usage_metadata_is_no_usage() -> None:
    assert usage_from_metadata(None, "gpt-4o", PRICES) == Usage()
    assert usage_from_metadata({"input_tokens": 7}, None, None) == Usage(7, 0, 0.0)
