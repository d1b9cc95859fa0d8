from __future__ import annotations

from treefork.workflow.env import env_text, resolve_count, resolve_env, substitute_env


def test_values_refer_to_other_entries_in_any_order() -> None:
    resolved = resolve_env({"OUT": "${BASE}/out", "BASE": "/srv", "LOG": "${OUT}/log"})
    assert resolved.values == {"OUT": "/srv/out", "BASE": "/srv", "LOG": "/srv/out/log"}
    assert resolved.problems == [] and resolved.warnings == []


def test_outer_scopes_are_looked_up_in_order() -> None:
    resolved = resolve_env(
        {"A": "${X}-${Y}"}, outer=[{"X": "workflow"}, {"X": "process", "Y": "process"}]
    )
    assert resolved.values == {"A": "workflow-process"}


def test_unknown_names_keep_their_text_with_a_warning_unless_defaulted() -> None:
    resolved = resolve_env({"A": "${NOPE}", "B": "${NOPE:-fallback}", "C": "$BARE"})
    assert resolved.values == {"A": "${NOPE}", "B": "fallback", "C": "$BARE"}
    ((name, message),) = resolved.warnings
    assert name == "A" and "${NOPE}" in message


def test_cycles_are_problems() -> None:
    resolved = resolve_env({"A": "${B}", "B": "${C}", "C": "${A}"})
    assert any("A -> B -> C -> A" in message for _, message in resolved.problems)


def test_an_entry_naming_itself_takes_the_outer_value_or_its_default() -> None:
    raw = {"ENVIRONMENT": "${ENVIRONMENT:-dev}", "TAG": "${TAG}-x"}
    assert resolve_env(raw).values["ENVIRONMENT"] == "dev"
    outer = resolve_env(raw, outer=[{"ENVIRONMENT": "prod", "TAG": "v1"}])
    assert outer.values == {"ENVIRONMENT": "prod", "TAG": "v1-x"}
    assert outer.problems == []
    # Through another entry it is still a cycle.
    looped = resolve_env({"A": "${B:-1}", "B": "${A:-2}"})
    assert any("A -> B -> A" in message for _, message in looped.problems)


def test_env_text_of_yaml_scalars_and_secrets() -> None:
    assert env_text(True) == "true"
    assert env_text(3) == "3"
    assert env_text({"secret": True, "value": "v"}) == "v"


def test_counts_come_from_numbers_or_env_references() -> None:
    chain = [{"MAX": "4", "BAD": "x", "NEG": "-1"}]
    assert resolve_count(3, chain) == (3, None)
    assert resolve_count("${MAX}", chain) == (4, None)
    assert resolve_count("$MAX", chain) == (4, None)
    assert resolve_count(" 7 ", chain) == (7, None)
    assert resolve_count(None, chain) == (None, None)
    assert resolve_count("${BAD}", chain)[1] == (
        "must be a whole number of at least 1, got '${BAD}' (${BAD} is 'x')"
    )
    assert "must be at least 1" in str(resolve_count("${NEG}", chain)[1])
    assert "did you mean ${MAX}" in str(resolve_count("${MAXX}", [*chain, {}])[1])


def test_substitution_leaves_unknown_and_field_references() -> None:
    text, left = substitute_env("${DIR}/${name}/${DIR.x}", [{"DIR": "d"}])
    assert text == "d/${name}/${DIR.x}"
    assert [reference.expression for reference in left] == ["name", "DIR.x"]
