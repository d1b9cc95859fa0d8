"""view(): what a notebook shows for a job's state, its DLQ entries and its report."""

from __future__ import annotations

from pathlib import Path

import pytest

from treefork import view
from treefork.notebook import DlqView, JobView, NotebookProgress, ReportView

STATE = {
    "job_id": "j1",
    "status": "partial",
    "merge": {"status": "merged", "message": "merged into main as abc"},
    "domain_results": {
        "docs": {"status": "succeeded", "succeeded": 2, "failed": 0, "skipped": 0,
                 "files_modified": ["a.md", "b.md"], "tests_passed": True},
        "api": {"status": "failed", "succeeded": 0, "failed": 1, "skipped": 0,
                "files_modified": [], "tests_passed": None},
    },
    "aggregated_files": ["a.md", "b.md"],
    "failures": [{"domain": "api", "item": "x<y>", "error": "exit code 3"}],
}  # fmt: skip


def test_a_jobs_state_is_a_table_with_status_colours_files_and_failures() -> None:
    shown = view(STATE)
    assert isinstance(shown, JobView)
    html = shown._repr_html_()
    assert "#2e9d57" in html and "#d64541" in html  # succeeded green, failed red
    assert "<code>a.md</code>" in html and "2 files" in html
    assert "x&lt;y&gt;" in html and "exit code 3" in html  # escaped, never raw HTML
    assert repr(shown) == "JobView(j1: partial, merge merged)"


def test_dlq_entries_are_a_table_and_an_empty_queue_says_so() -> None:
    entries = [{"job_id": "j1", "domain": "api", "item_id": "0", "item": {"path": "x"},
                "attempts": 2, "error": "boom"}]  # fmt: skip
    shown = view(entries)
    assert isinstance(shown, DlqView)
    assert (
        "{&quot;path&quot;: &quot;x&quot;}" in shown._repr_html_() and "boom" in shown._repr_html_()
    )
    assert "empty" in DlqView([])._repr_html_()


def test_a_report_is_shown_inline_in_a_sandboxed_frame(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text('<html><body><svg id="timeline"></svg></body></html>')
    shown = view(page)
    assert isinstance(shown, ReportView)
    html = shown._repr_html_()
    assert html.startswith('<iframe srcdoc="') and 'sandbox=""' in html
    assert "&lt;svg id=&quot;timeline&quot;&gt;" in html


def test_anything_else_is_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match="got int"):
        view(3)


def test_progress_outside_a_kernel_is_a_plain_line_per_phase_agent_and_domain(
    capsys: pytest.CaptureFixture[str],
) -> None:
    progress = NotebookProgress()
    for event in (
        {"event": "job_start", "job_id": "j1"},
        {"event": "phase_start", "job_id": "j1", "domain": "docs", "phase": "map"},
        {"event": "agent_start", "job_id": "j1", "domain": "docs", "item": "a"},
        {
            "event": "agent_end",
            "job_id": "j1",
            "domain": "docs",
            "item": "a",
            "status": "succeeded",
        },
    ):
        progress(event)
    assert capsys.readouterr().out.splitlines() == [
        "[docs] map ...",
        "[docs] agent a: succeeded",
    ]
    html = progress._repr_html_()
    assert "treefork job j1" in html and ">map<" in html
