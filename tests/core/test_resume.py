"""Resume plans: what each item and phase does next, from recorded facts and git facts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from treefork.core.resume import (
    BranchFacts,
    ItemPlan,
    RecordedItem,
    plan_item,
    plan_job_resume,
    plan_reduce,
    plan_setup,
    plan_skippable_phase,
)

BASE = "b" * 40
TIP = "c" * 40
FIRST = "treefork/j/agents/d/0000-a"


NO_FACTS = BranchFacts()


def _plan(record: RecordedItem | None, facts: BranchFacts = NO_FACTS, **options: object) -> ItemPlan:
    return plan_item(record, facts, base_commit=BASE, first_branch=FIRST, **options)  # type: ignore[arg-type]


def test_an_item_without_a_record_runs_and_a_clean_branch_is_left_alone() -> None:
    assert _plan(None) == ItemPlan("run", "no result recorded", 1, 1, None)
    assert _plan(None, BranchFacts(branch_tip=BASE)).discard_branch is None


def test_an_unrecorded_branch_with_commits_is_discarded_before_running() -> None:
    plan = _plan(None, BranchFacts(branch_tip=TIP), attempts_allowed=3)
    assert (plan.action, plan.first_attempt, plan.last_attempt, plan.discard_branch) == ("run", 1, 3, FIRST)


def test_a_cut_off_attempt_runs_again_with_its_unfinished_branch_discarded() -> None:
    record = RecordedItem("running", None, None, "treefork/j/agents/d/0000-a-attempt2", 2)
    plan = _plan(record, BranchFacts(branch_tip=TIP), attempts_allowed=3)
    assert plan.action == "run"
    assert (plan.first_attempt, plan.last_attempt) == (2, 3)
    assert plan.discard_branch == "treefork/j/agents/d/0000-a-attempt2"
    assert "cut off" in plan.reason


def test_recorded_successes_are_reused() -> None:
    for merge in ("merged", "none"):
        assert _plan(RecordedItem("succeeded", merge, TIP, FIRST, 1)).action == "reuse"  # type: ignore[arg-type]


def test_a_finished_agent_whose_commit_was_not_merged_is_merged_not_rerun() -> None:
    record = RecordedItem("succeeded", "pending", TIP, FIRST, 1)
    assert _plan(record, BranchFacts(head_exists=True)).action == "merge"
    assert _plan(record, BranchFacts(head_exists=True, head_merged=True)).action == "adopt"
    gone = _plan(record, BranchFacts(head_exists=False), attempts_allowed=2)
    assert (gone.action, gone.first_attempt, gone.last_attempt) == ("run", 2, 3)


def test_failed_items_stay_in_the_dlq_unless_retried_with_fresh_attempts() -> None:
    record = RecordedItem("failed", "none", None, FIRST, 3)
    assert _plan(record).action == "reuse"
    retried = _plan(record, retry=True, attempts_allowed=3)
    assert (retried.action, retried.first_attempt, retried.last_attempt) == ("run", 4, 6)
    assert retried.discard_branch is None  # the failed attempt's branch stays for inspection


def test_skipped_items_are_decided_again() -> None:
    assert _plan(RecordedItem("skipped", "none", None, None, 0)).action == "run"


@given(
    status=st.sampled_from(["running", "succeeded", "failed", "skipped"]),
    merge=st.sampled_from([None, "none", "pending", "merged", "conflict"]),
    attempts=st.integers(0, 5),
    allowed=st.integers(1, 4),
    retry=st.booleans(),
    tip=st.sampled_from([None, BASE, TIP]),
    exists=st.booleans(),
    merged=st.booleans(),
)
def test_every_plan_is_consistent(  # noqa: PLR0917 (hypothesis passes each strategy by name)
    status: str, merge: str | None, attempts: int, allowed: int, retry: bool, tip: str | None,
    exists: bool, merged: bool,
) -> None:
    record = RecordedItem(status, merge, TIP if merge == "pending" else None, FIRST, attempts)  # type: ignore[arg-type]
    plan = _plan(record, BranchFacts(tip, exists, merged and exists), attempts_allowed=allowed, retry=retry)
    assert plan.action in ("run", "reuse", "merge", "adopt")
    if plan.action == "run":
        assert 1 <= plan.first_attempt <= plan.last_attempt
    # Only an unfinished run's branch is ever discarded, and never one still at the base.
    if plan.discard_branch is not None:
        assert status == "running" and tip not in (None, BASE)
    # A recorded success is never run again while its commit exists.
    if status == "succeeded" and (merge != "pending" or exists):
        assert plan.action != "run"


def test_setup_is_skipped_once_recorded_and_rerun_from_the_job_base_when_cut_off() -> None:
    skip = plan_setup(recorded_base=TIP, base_on_branch=True, domain_head=TIP, job_base=BASE)
    assert not skip.run
    cut = plan_setup(recorded_base=None, base_on_branch=False, domain_head=TIP, job_base=BASE)
    assert cut.run and cut.reset_to == BASE
    fresh = plan_setup(recorded_base=None, base_on_branch=False, domain_head=BASE, job_base=BASE)
    assert fresh.run and fresh.reset_to is None
    moved = plan_setup(recorded_base=TIP, base_on_branch=False, domain_head="d" * 40, job_base=BASE)
    assert moved.run and moved.reset_to == BASE


def test_reduce_cut_off_is_undone_to_the_recorded_map_head() -> None:
    assert not plan_reduce(recorded=True, rerun=False, map_head=BASE, domain_head=TIP).run
    cut = plan_reduce(recorded=False, rerun=False, map_head=BASE, domain_head=TIP)
    assert cut.run and cut.reset_to == BASE
    rerun = plan_reduce(recorded=True, rerun=True, map_head=TIP, domain_head=TIP)
    assert rerun.run and rerun.reset_to is None


def test_phases_without_git_effects_rerun_only_when_not_recorded_or_asked() -> None:
    assert not plan_skippable_phase(recorded=True, rerun=False, phase="tests").run
    assert plan_skippable_phase(recorded=True, rerun=True, phase="tests").run
    assert plan_skippable_phase(recorded=False, rerun=False, phase="map").run


def test_job_resume_action_follows_the_checkpoint() -> None:
    assert plan_job_resume(has_checkpoint=False, next_nodes=(), interrupted=False) == "start"
    assert plan_job_resume(has_checkpoint=True, next_nodes=(), interrupted=False) == "finished"
    assert plan_job_resume(has_checkpoint=True, next_nodes=("merge_review",), interrupted=True) == "review"
    assert plan_job_resume(has_checkpoint=True, next_nodes=("dispatcher",), interrupted=False) == "continue"
