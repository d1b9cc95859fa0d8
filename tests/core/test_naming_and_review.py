"""Branch names and merge decisions."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treefork.core import naming
from treefork.core.review import Decision, merge_block_reason, parse_decision
from treefork.errors import InputError


@given(st.text(max_size=80), st.integers(min_value=0, max_value=99999))
def test_item_slugs_are_valid_in_git_refs(item_id: str, index: int) -> None:
    slug = naming.item_slug(item_id, index)
    branch = naming.agent_branch("job-1", "docs", slug)
    assert slug.startswith(f"{index:04d}")
    assert ".." not in branch and not branch.endswith(".lock") and " " not in branch


def test_branch_levels_never_nest_inside_each_other() -> None:
    session = naming.session_branch("j")
    domain = naming.domain_branch("j", "docs")
    agent = naming.agent_branch("j", "docs", "0001-a")
    for left in (session, domain, agent):
        for right in (session, domain, agent):
            if left != right:
                assert not right.startswith(left + "/")


def test_sample_slugs_pass_git_check_ref_format() -> None:
    for item_id in ["a b", "../x", "x.lock", "ünïcode", "", "a..b", ".hidden"]:
        branch = naming.agent_branch("job", "docs", naming.item_slug(item_id, 3))
        result = subprocess.run(["git", "check-ref-format", f"refs/heads/{branch}"], check=False)
        assert result.returncode == 0, branch


def test_parse_decision_accepts_the_documented_forms() -> None:
    assert parse_decision(True) == Decision(True)
    assert parse_decision("Approve") == Decision(True)
    assert parse_decision("reject") == Decision(False)
    assert parse_decision({"approve": True, "override": True}) == Decision(True, True)
    with pytest.raises(InputError, match="not a merge decision"):
        parse_decision("maybe")


def test_failed_jobs_need_override() -> None:
    assert merge_block_reason("failed", Decision(True)) is not None
    assert merge_block_reason("failed", Decision(True, override=True)) is None
    assert merge_block_reason("partial", Decision(True)) is None
