"""Rule-based routing: whole-word keywords, path and glob mentions, fallbacks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from treefork.core.routing import DomainSpec, mentioned_paths, path_matches, select_by_rules

DOMAINS = [
    DomainSpec("docs", ("docs", "documentation"), ("docs/**",)),
    DomainSpec("auth", ("login", "single sign-on"), ("src/auth/**",)),
    DomainSpec("payments", ("payments",), ("src/pay/*.py",)),
]


def _names(task: str, fallback: str = "none") -> list[str]:
    return [name for name, _ in select_by_rules(task, DOMAINS, fallback=fallback).choices]  # type: ignore[arg-type]


def test_keywords_match_whole_words_in_any_case() -> None:
    assert _names("Update the DOCS and fix Login") == ["docs", "auth"]
    assert _names("the docstring is wrong") == []
    assert _names("paymentsystem") == []


def test_multi_word_keywords_match_across_spacing() -> None:
    assert _names("add single  sign-on support") == ["auth"]


def test_path_mentions_select_domains_by_glob() -> None:
    assert _names("touch src/auth/models.py please") == ["auth"]
    assert _names("change src/pay/x.py, and README.md") == ["payments"]
    assert _names("change src/pay/deep/x.py") == []


def test_directory_and_glob_mentions_cover_the_files_below() -> None:
    assert _names("clean up src/auth/") == ["auth"]
    assert _names("everything in src/auth") == ["auth"]
    assert _names("rewrite docs/**/*.md") == ["docs"]


def test_reason_names_what_matched() -> None:
    selection = select_by_rules("docs: see docs/index.md", DOMAINS)
    assert selection.choices == (
        ("docs", "keyword 'docs'; path 'docs/index.md' matches 'docs/**'"),
    )


def test_fallback_none_explains_and_fallback_all_runs_everything() -> None:
    none = select_by_rules("make coffee", DOMAINS, fallback="none")
    assert none.choices == ()
    assert none.note is not None and "docs, auth, payments" in none.note
    assert _names("make coffee", "all") == ["docs", "auth", "payments"]


def test_mentioned_paths_trims_sentence_punctuation() -> None:
    assert mentioned_paths("see ./docs/a.md, src/x.py; and v1.2") == ["docs/a.md", "src/x.py"]


def test_path_matches_globstar() -> None:
    assert path_matches("docs/a/b/c.md", "docs/**")
    assert not path_matches("src/a.py", "docs/**")


@given(st.text())
def test_routing_never_fails_and_chooses_only_defined_domains(task: str) -> None:
    names = _names(task)
    assert set(names) <= {"docs", "auth", "payments"}
    assert names == sorted(names, key=["docs", "auth", "payments"].index)


def test_domains_without_keywords_or_paths_are_always_chosen() -> None:
    domains = [*DOMAINS, DomainSpec("everything")]
    selection = select_by_rules("make coffee", domains)
    assert selection.choices == (("everything", "no keywords or paths: chosen for every task"),)
