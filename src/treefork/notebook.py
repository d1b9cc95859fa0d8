"""Rich output in notebooks: a job's results, its dead letter queue and its report, as HTML.

``ParallelState`` is a plain dict (LangGraph's state), so it cannot carry a display method
of its own. :func:`view` wraps what a notebook cell has in hand in an object whose
``_repr_html_`` Jupyter shows: a table per domain with status colours, the merge and the
files merged; the failed items; the report page inline. Each also has a plain ``repr``.

    out = await graph.ainvoke({"task": ..., "repo": ...}, config)
    view(out)                          # the job
    view(store.dlq(out["job_id"]))     # its failed items
    view(write_report(path, out, events))   # the report, inline
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from treefork.cli.progress import PlainProgress
from treefork.report.charts import STATUS_COLOURS

__all__ = ("DlqView", "JobView", "NotebookProgress", "ReportView", "view")

_COLOURS = {
    **STATUS_COLOURS,  # the report's, for agents and domains
    "merged": STATUS_COLOURS["succeeded"],
    "partial": STATUS_COLOURS["conflict"],
    "pending": STATUS_COLOURS["unfinished"],
    "refused": STATUS_COLOURS["failed"],
    "nothing_to_merge": STATUS_COLOURS["skipped"],
}
_TABLE = 'style="border-collapse:collapse;font-size:13px"'
_CELL = 'style="padding:3px 10px;border-bottom:1px solid #e5e7eb;text-align:left"'


def _badge(status: object) -> str:
    text = str(status or "-")
    colour = _COLOURS.get(text, "#6b7280")
    return (
        f'<span style="background:{colour};color:#fff;border-radius:9px;padding:1px 8px;'
        f'font-size:12px;font-weight:600">{escape(text)}</span>'
    )


def _row(*cells: str, head: bool = False) -> str:
    tag = "th" if head else "td"
    return "<tr>" + "".join(f"<{tag} {_CELL}>{cell}</{tag}>" for cell in cells) + "</tr>"


def _tests(value: object) -> str:
    return "-" if value is None else ("passed" if value else "failed")


@dataclass(frozen=True)
class JobView:
    """A job's final state (what ``ainvoke`` returned), shown as tables."""

    state: Mapping[str, Any]

    def _repr_html_(self) -> str:
        state = self.state
        merge = state.get("merge") or {}
        rows = [_row("domain", "status", "ok", "failed", "skipped", "files", "tests", head=True)]
        for name, result in (state.get("domain_results") or {}).items():
            rows.append(
                _row(
                    escape(str(name)),
                    _badge(result.get("status")),
                    str(result.get("succeeded", 0)),
                    str(result.get("failed", 0)),
                    str(result.get("skipped", 0)),
                    str(len(result.get("files_modified") or [])),
                    _tests(result.get("tests_passed")),
                )
            )
        files = state.get("aggregated_files") or []
        listed = "".join(f"<li><code>{escape(str(path))}</code></li>" for path in files)
        failures = state.get("failures") or []
        failed = "".join(
            f"<li>{escape(str(f.get('domain')))}/{escape(str(f.get('item') or '-'))}: "
            f"{escape(str(f.get('error'))[:300])}</li>"
            for f in failures
        )
        return (
            f'<div class="treefork-job"><b>treefork job {escape(str(state.get("job_id")))}</b> '
            f"{_badge(state.get('status'))} merge {_badge(merge.get('status'))} "
            f"<span>{escape(str(merge.get('message') or ''))}</span>"
            f"<table {_TABLE}>{''.join(rows)}</table>"
            f"<details><summary>{len(files)} files</summary><ul>{listed}</ul></details>"
            + (f"<details open><summary>{len(failures)} failures</summary><ul>{failed}</ul>"
               "</details>" if failures else "")
            + "</div>"
        )  # fmt: skip

    def __repr__(self) -> str:
        state = self.state
        merge = (state.get("merge") or {}).get("status")
        return f"JobView({state.get('job_id')}: {state.get('status')}, merge {merge})"


@dataclass(frozen=True)
class DlqView:
    """Dead letter queue entries (``JobStore.dlq``), shown as a table."""

    entries: Sequence[Mapping[str, Any]]

    def _repr_html_(self) -> str:
        rows = [_row("job", "domain", "item", "attempts", "error", head=True)]
        for entry in self.entries:
            item = entry.get("item")
            shown = item if isinstance(item, str) else json.dumps(item, default=str)
            rows.append(
                _row(
                    escape(str(entry.get("job_id"))),
                    escape(str(entry.get("domain"))),
                    f"<code>{escape(shown[:120])}</code>",
                    str(entry.get("attempts", "")),
                    f'<span style="color:#d64541">{escape(str(entry.get("error"))[:300])}</span>',
                )
            )
        if not self.entries:
            return "<i>The dead letter queue is empty.</i>"
        return f"<table {_TABLE}>{''.join(rows)}</table>"

    def __repr__(self) -> str:
        return f"DlqView({len(self.entries)} entries)"


@dataclass(frozen=True)
class ReportView:
    """A report page (``write_report``'s file), shown inline in a sandboxed frame."""

    path: Path
    height: int = 900

    def _repr_html_(self) -> str:
        page = Path(self.path).read_text(encoding="utf-8")
        return (
            f'<iframe srcdoc="{escape(page, quote=True)}" sandbox="" '
            f'style="width:100%;height:{self.height}px;border:1px solid #e5e7eb"></iframe>'
        )

    def __repr__(self) -> str:
        return f"ReportView({self.path})"


def view(value: Any) -> JobView | DlqView | ReportView:
    """What a notebook shows for ``value``: a job's state, DLQ entries or a report path.

    Raises:
        TypeError: ``value`` is none of those.
    """
    if isinstance(value, Path | str) and str(value).endswith(".html"):
        return ReportView(Path(value))
    if isinstance(value, Mapping) and "domain_results" in value:
        return JobView(value)
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str | bytes)
        and all(isinstance(entry, Mapping) and "item_id" in entry for entry in value)
    ):
        return DlqView(value)
    raise TypeError(
        "view() shows a job's state (what ainvoke returned), a list of DLQ entries "
        f"(JobStore.dlq) or a report's .html path; got {type(value).__name__}"
    )


def _ipython_display() -> Any:
    """IPython's ``display`` when running in a kernel, else None."""
    shell_module = sys.modules.get("IPython")
    if shell_module is None:
        return None
    shell = getattr(shell_module, "get_ipython", lambda: None)()
    if shell is None or not hasattr(shell, "kernel"):
        return None
    from IPython.display import display  # noqa: PLC0415 (only inside a kernel)

    return display


@dataclass(frozen=True)
class _Html:
    html: str

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return "progress"


@dataclass
class NotebookProgress:
    """An event sink for ``build_graph(event_sinks=[...])`` that shows progress in a notebook.

    In a Jupyter kernel: one HTML table per run, updated in place as events come (each
    domain's phase and its agents running, done and failed), with no widget library. Outside
    one: a plain line per phase, agent and domain, as the command line prints them.
    """

    _counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    _phases: dict[str, str] = field(default_factory=dict)
    _handle: Any = None
    _job: str | None = None
    _plain: PlainProgress = field(default_factory=lambda: PlainProgress(sys.stdout))

    def __call__(self, event: dict[str, Any]) -> None:
        kind, domain = event.get("event"), str(event.get("domain") or "")
        if kind == "job_start" or event.get("job_id") != self._job:
            self._job, self._handle = event.get("job_id"), None
            self._counts.clear()
            self._phases.clear()
        if kind == "phase_start":
            self._phases[domain] = str(event.get("phase"))
        elif kind == "agent_start":
            self._counts[domain]["running"] += 1
        elif kind == "agent_end":
            self._counts[domain]["running"] -= 1
            self._counts[domain][str(event.get("status"))] += 1
        elif kind == "domain_end":
            self._phases[domain] = str(event.get("status"))
        display = _ipython_display()
        if display is None:
            self._plain(event)
            return
        shown = _Html(self._repr_html_())
        if self._handle is None:
            self._handle = display(shown, display_id=True)
        else:
            self._handle.update(shown)

    def _repr_html_(self) -> str:
        rows = [_row("domain", "phase", "running", "done", "failed", "skipped", head=True)]
        for domain in sorted(set(self._phases) | set(self._counts)):
            counts = self._counts[domain]
            rows.append(
                _row(
                    escape(domain),
                    _badge(self._phases.get(domain, "-")),
                    str(counts["running"]),
                    str(counts["succeeded"]),
                    str(counts["failed"]),
                    str(counts["skipped"]),
                )
            )
        table = "".join(rows)
        return f"<b>treefork job {escape(str(self._job))}</b><table {_TABLE}>{table}</table>"
