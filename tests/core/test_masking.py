"""Secret masking: every occurrence, the longest value first, inside nested values."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from treefork.core.masking import mask, mask_text, register_secrets
from treefork.workflow.sources import parse_env_file

LONG, SHORT = "tf-mask-outer-41c9-inner", "tf-mask-outer-41c9"


def test_every_occurrence_is_masked_the_longest_value_first() -> None:
    register_secrets([SHORT, LONG, ""])

    assert mask_text(f"a {LONG} b {SHORT} c {LONG}") == "a *** b *** c ***"
    assert mask_text("nothing here") == "nothing here"


def test_nested_values_are_masked_and_other_objects_left_alone() -> None:
    register_secrets([SHORT])
    value = {"k": [SHORT, (1, f"x{SHORT}")], SHORT: None, "n": 3.5}

    assert mask(value) == {"k": ["***", (1, "x***")], "***": None, "n": 3.5}


@given(st.text(alphabet="abc- ", max_size=40))
def test_a_masked_text_never_holds_a_registered_value(text: str) -> None:
    register_secrets([SHORT])
    assert SHORT not in mask_text(text + SHORT + text)


def test_env_file_lines() -> None:
    values, problems = parse_env_file(
        "# comment\n\nA=1\nexport B = two words \nC=\"  padded  \"\nD='it''s'\nE=\n"
        "F=x=y\n",
        ".env",
    )

    assert values == {"A": "1", "B": "two words", "C": "  padded  ", "D": "it''s", "E": "",
                      "F": "x=y"}  # fmt: skip
    assert problems == []


def test_env_file_problems_name_their_line() -> None:
    _, problems = parse_env_file("OK=1\nNOPE\nQ=\"open\nM=\"a'\n", "/w/.env")

    assert [(problem.where, problem.message) for problem in problems] == [
        ("/w/.env:2", "no '=' in 'NOPE': lines are KEY=value"),
        ("/w/.env:3", "unbalanced quotes in the value of Q"),
        ("/w/.env:4", "unbalanced quotes in the value of M"),
    ]
