"""The run report as one self-contained HTML page that works offline.

The charts (:mod:`treefork.report.charts`) and the graph (:mod:`treefork.report.graph`) are
inline SVG: no script, no chart library, nothing fetched at view time. Each agent's bar
carries ``data-agent`` (``domain/item``) and ``data-status``, so the page can be checked,
and scripted, bar by bar.
"""

from __future__ import annotations

import time
from html import escape

from treefork.report.charts import budget_svg, timeline_svg
from treefork.report.graph import GraphShape, flow_svg
from treefork.report.records import ReportModel

__all__ = ("render_report",)

_CSS = """
:root { color-scheme: light; --ok: #2e9d57; --failed: #d64541; --running: #6c8ebf;
        --muted: #6b7280; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; margin: 0;
       color: #1f2328; background: #f6f7f9; }
header { background: #1f2937; color: #f9fafb; padding: 18px 28px; }
header h1 { margin: 0 0 6px; font-size: 22px; }
header .task { font-size: 16px; opacity: .9; }
main { padding: 8px 28px 40px; max-width: 1400px; }
section { background: #fff; border: 1px solid #e5e7eb; border-radius: 8px; padding: 14px 18px;
          margin: 16px 0; }
h2 { font-size: 17px; margin: 0 0 10px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 13px;
         font-weight: 600; color: #fff; background: var(--muted); vertical-align: middle; }
.badge.succeeded, .badge.merged { background: var(--ok); }
.badge.failed, .badge.refused, .badge.conflict { background: var(--failed); }
.badge.partial, .badge.rejected { background: #e8871e; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr));
         gap: 8px 18px; }
.facts div { font-size: 14px; overflow-wrap: anywhere; }
.facts b { display: block; font-size: 12px; color: var(--muted);
             font-weight: 600; text-transform: uppercase; letter-spacing: .03em; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #eef0f2;
         vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 12px; text-transform: uppercase; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { margin: 0; white-space: pre-wrap; word-break: break-word; font-size: 12.5px;
      background: #f8f8fa; padding: 6px 8px; border-radius: 4px; max-height: 14em; overflow: auto; }
.note { color: var(--muted); font-size: 13px; }
svg.chart { max-width: 100%; height: auto; font-size: 11px; display: block; }
svg.chart text:not([fill]) { fill: #374151; }
svg.chart .lane-name { font-size: 12px; fill: #1f2328; }
svg.chart .legend text { fill: #1f2328; }
svg.flow { max-width: 100%; height: auto; font-size: 12px; }
svg.flow .edge { fill: none; stroke: #9aa0a6; stroke-width: 1.3; }
svg.flow marker path { fill: #9aa0a6; }
svg.flow rect, svg.flow circle { stroke-width: 1.5; fill: #f3f4f6; stroke: #c4c8ce; }
svg.flow .ok rect, svg.flow .ok circle { fill: #e3f4e8; stroke: var(--ok); }
svg.flow .failed rect, svg.flow .failed circle { fill: #fbe4e3; stroke: var(--failed); }
svg.flow .running rect, svg.flow .running circle { fill: #e4ecf7; stroke: var(--running); }
svg.flow text { fill: #1f2328; }
svg.flow .pending text { fill: var(--muted); }
.empty { color: var(--muted); font-style: italic; }
"""


# -- small formatting helpers --------------------------------------------------------------


def _seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _when(unix_time: float | None) -> str:
    if unix_time is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(unix_time))


# -- html sections -------------------------------------------------------------------------


def _badge(status: str) -> str:
    return f'<span class="badge {escape(status)}">{escape(status)}</span>'


def _summary_html(model: ReportModel) -> str:
    summary = model.summary
    agents = (
        ", ".join(f"{count} {status}" for status, count in sorted(summary.agents.items())) or "none"
    )
    facts = [
        ("repository", summary.repo or "-"),
        ("base branch", summary.base_branch or "-"),
        ("started", _when(summary.started_at)),
        ("duration", _seconds(summary.duration)),
        ("agents", agents),
        ("files modified", str(len(summary.files))),
        ("domains chosen by", summary.analyzer or "-"),
    ]
    rows = "".join(f"<div><b>{escape(name)}</b>{escape(value)}</div>" for name, value in facts)
    merge = (
        f'<p>merge: <span class="badge {escape(summary.merge_status)}">'
        f"{escape(summary.merge_status)}</span> "
        f"{escape(summary.merge_message)}</p>"
    )
    return (
        f'<section id="summary"><h2>Summary</h2><div class="facts">{rows}</div>'
        f"{merge}{_domains_html(model)}</section>"
    )


def _domains_html(model: ReportModel) -> str:
    if not model.summary.domains:
        return '<p class="empty">No domain was chosen.</p>'
    head = "".join(
        f"<th>{name}</th>"
        for name in ("domain", "why", "status", "ok", "failed", "skipped", "files", "tests")
    )
    body = ""
    for row in model.summary.domains:
        tests = "-" if row.tests_passed is None else ("passed" if row.tests_passed else "failed")
        body += (
            f"<tr><td>{escape(row.name)}</td><td>{escape(row.reason)}</td>"
            f'<td><span class="badge {escape(row.status)}">{escape(row.status)}</span></td>'
            f'<td class="num">{row.succeeded}</td><td class="num">{row.failed}</td>'
            f'<td class="num">{row.skipped}</td><td class="num">{row.files}</td>'
            f"<td>{tests}</td></tr>"
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _agents_table(model: ReportModel) -> str:
    rows = "".join(
        f"<tr><td>{escape(bar.domain)}</td><td>{escape(bar.item)}</td><td>{escape(bar.status)}</td>"
        f'<td class="num">{bar.start:.1f}</td><td class="num">{bar.end:.1f}</td></tr>'
        for bar in model.bars
    )
    return (
        "<details><summary>Every agent as a table</summary><table><thead><tr><th>domain</th>"
        "<th>item</th><th>status</th><th>start (s)</th><th>end (s)</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></details>"
    )


def _failures_html(model: ReportModel) -> str:
    if not model.failures:
        return '<section id="failures"><h2>Failures</h2><p class="empty">No failure.</p></section>'
    rows = "".join(
        f'<tr><td class="num">{row.at:.1f}</td><td>{escape(row.domain)}</td>'
        f"<td>{escape(row.item or '-')}</td>"
        f"<td>{escape(row.kind)}</td><td><pre>{escape(row.error)}</pre></td></tr>"
        for row in model.failures
    )
    return (
        f'<section id="failures"><h2>Failures ({len(model.failures)})</h2>'
        "<table><thead><tr><th>at (s)</th>"
        "<th>domain</th><th>item</th><th>what</th><th>error</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def _graph_html(model: ReportModel, shape: GraphShape | None) -> str:
    if shape is None:
        return ""
    domains = [lane.domain for lane in model.lanes]
    svg = flow_svg(shape, domains, model.job_outcomes, model.phase_outcomes)
    return (
        '<section id="graph"><h2>Graph</h2><p class="note">Top-level nodes down the middle; the '
        "dispatcher opens into one column per domain (its sub-graph). Green: ran and "
        "succeeded; red: failed; blue: running when the log ends; grey: not run.</p>"
        f"{svg}</section>"
    )


def _files_html(model: ReportModel) -> str:
    if not model.summary.files:
        return ""
    items = "".join(f"<li><code>{escape(path)}</code></li>" for path in model.summary.files)
    return (
        f'<section id="files"><details><summary>Files modified ({len(model.summary.files)})'
        "</summary>"
        f"<ul>{items}</ul></details></section>"
    )


def render_report(model: ReportModel, shape: GraphShape | None = None) -> str:
    """The report page for a model: one HTML document, its charts inline SVG.

    Args:
        model: From :func:`treefork.report.model.build_report_model`.
        shape: The graph's shape, to draw it; None leaves the graph section out.

    Returns:
        The HTML text.
    """
    summary = model.summary
    title = f"treefork job {summary.job_id}"
    timeline = (
        timeline_svg(model)
        if model.bars or model.phases
        else '<div id="timeline" class="empty">No agent ran.</div>'
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{_CSS}</style>
</head><body>
<header><h1>{escape(title)} {_badge(summary.status)}</h1>
<div class="task">{escape(summary.task)}</div></header>
<main>
{_summary_html(model)}
<section id="timeline-section"><h2>Timeline</h2>
<p class="note">One lane per domain: its phases on top, then its agents, one bar each, coloured by
outcome. Agents that ran at the same time sit on separate rows of the lane.</p>
{timeline}
{_agents_table(model)}
</section>
<section id="budget"><h2>Budget over time</h2>
{budget_svg(model)}</section>
{_failures_html(model)}
{_graph_html(model, shape)}
{_files_html(model)}
</main>
</body></html>
"""
