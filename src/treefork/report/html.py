"""The run report as one self-contained HTML page that works offline.

Charts are drawn by plotly, whose JavaScript bundle is inlined once in the page (no network
at view time); the graph is inline SVG (:mod:`treefork.report.graph`). After plotly draws
the timeline, a small script marks each agent's bar with ``data-agent`` (``domain/item``)
and ``data-status``, so the page can be checked, and scripted, bar by bar.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

# plotly ships no type information (no py.typed): its figures are typed as Any here.
import plotly.graph_objects as go  # type: ignore[import-untyped]
import plotly.io as pio  # type: ignore[import-untyped]
from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]
from plotly.subplots import make_subplots  # type: ignore[import-untyped]

from treefork.report.graph import GraphShape, flow_svg
from treefork.report.model import AgentBar, Lane, Marker, PhaseSpan, ReportModel

__all__ = ("STATUS_COLOURS", "render_report")

STATUS_COLOURS: Mapping[str, str] = {
    "succeeded": "#2e9d57",
    "failed": "#d64541",
    "conflict": "#e8871e",
    "skipped": "#9aa0a6",
    "unfinished": "#6c8ebf",
}
"""Bar colour by agent outcome."""

_PHASE_COLOURS = {"setup": "#dfe9f7", "map": "#e8f3e8", "reduce": "#f6eedd", "tests": "#efe4f6"}
_MARKERS = {
    "merge": ("diamond", "#1b6e3a", "merge"),
    "conflict": ("x", "#e8871e", "conflict"),
    "budget": ("triangle-down", "#7b3fa0", "budget reached"),
}
_PLOT_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "modeBarButtonsToRemove": ["select2d", "lasso2d"],
}
_TRACK_PIXELS = 24

_TAG_SCRIPT = """
(function () {
  function tagAgentBars(gd) {
    gd.querySelectorAll('g.trace.bars').forEach(function (layer) {
      var calc = layer.__data__;
      var trace = calc && calc[0] && calc[0].trace;
      if (!trace || trace.meta !== 'agents') { return; }
      layer.querySelectorAll('g.point').forEach(function (point) {
        var datum = trace.customdata[point.__data__.i];
        point.setAttribute('data-agent', datum[0] + '/' + datum[1]);
        point.setAttribute('data-status', datum[2]);
      });
    });
    gd.setAttribute('data-rendered', 'true');
  }
  var timeline = document.getElementById('timeline');
  if (!timeline || !window.Plotly) { return; }
  timeline.on('plotly_afterplot', function () { tagAgentBars(timeline); });
  tagAgentBars(timeline);
})();
"""

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


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- the timeline --------------------------------------------------------------------------


def _min_width(model: ReportModel) -> float:
    return max(model.summary.duration * 0.004, 0.05)


def _agent_hover(bar: AgentBar) -> str:
    lines = [
        f"<b>{escape(bar.item)}</b> ({escape(bar.domain)})",
        f"{bar.status}, {bar.start:.1f}s → {bar.end:.1f}s ({bar.end - bar.start:.1f}s)",
    ]
    if bar.files:
        lines.append(f"files: {escape(_shorten(', '.join(bar.files), 120))}")
    if bar.tokens or bar.cost:
        lines.append(f"tokens {bar.tokens:,}, cost {bar.cost:.4f}")
    if bar.error:
        lines.append(f"error: {escape(_shorten(bar.error, 160))}")
    return "<br>".join(lines)


def _agent_traces(model: ReportModel) -> list[go.Bar]:
    traces = []
    minimum = _min_width(model)
    for status, colour in STATUS_COLOURS.items():
        bars = [bar for bar in model.bars if bar.status == status]
        if not bars:
            continue
        lane_of = {lane.domain: lane for lane in model.lanes}
        traces.append(
            go.Bar(
                name=status,
                meta="agents",
                orientation="h",
                base=[bar.start for bar in bars],
                x=[max(bar.end - bar.start, minimum) for bar in bars],
                y=[lane_of[bar.domain].offset + bar.track for bar in bars],
                width=0.78,
                marker={"color": colour, "line": {"width": 0}},
                customdata=[[bar.domain, bar.item, bar.status] for bar in bars],
                hovertext=[_agent_hover(bar) for bar in bars],
                hoverinfo="text",
                text=[bar.item for bar in bars],
                textposition="inside",
                insidetextanchor="start",
                textfont={"color": "#fff", "size": 11},
                cliponaxis=False,
            )
        )
    return traces


def _phase_trace(model: ReportModel) -> go.Bar | None:
    phases: Sequence[PhaseSpan] = model.phases
    lane_of = {lane.domain: lane for lane in model.lanes}
    shown = [span for span in phases if span.domain in lane_of]
    if not shown:
        return None
    minimum = _min_width(model)
    return go.Bar(
        name="phases",
        meta="phases",
        orientation="h",
        base=[span.start for span in shown],
        x=[max(span.end - span.start, minimum) for span in shown],
        y=[lane_of[span.domain].offset for span in shown],
        width=0.62,
        marker={
            "color": [_PHASE_COLOURS.get(span.phase, "#eceff3") for span in shown],
            "line": {
                "color": ["#d64541" if span.ok is False else "#b8c0cc" for span in shown],
                "width": 1,
            },
        },
        text=[span.phase for span in shown],
        textposition="inside",
        insidetextanchor="middle",
        textfont={"color": "#374151", "size": 11},
        hovertext=[
            f"{escape(span.domain)}: {escape(span.phase)} {span.start:.1f}s → {span.end:.1f}s"
            + (" (failed)" if span.ok is False else "")
            for span in shown
        ],
        hoverinfo="text",
        showlegend=False,
    )


def _marker_traces(model: ReportModel) -> list[go.Scatter]:
    lane_of = {lane.domain: lane for lane in model.lanes}
    traces = []
    for kind, (symbol, colour, label) in _MARKERS.items():
        points = [m for m in model.markers if m.kind == kind and m.domain in lane_of]
        if not points:
            continue
        traces.append(
            go.Scatter(
                name=label,
                meta=f"markers:{kind}",
                mode="markers",
                x=[m.at for m in points],
                y=[lane_of[str(m.domain)].offset for m in points],
                marker={
                    "symbol": symbol,
                    "size": 11,
                    "color": colour,
                    "line": {"color": "#fff", "width": 1},
                },
                hovertext=[escape(m.label) for m in points],
                hoverinfo="text",
            )
        )
    return traces


def _lane_shapes(lanes: Sequence[Lane], job_markers: Sequence[Marker]) -> list[dict[str, Any]]:
    shapes: list[dict[str, Any]] = []
    for index, lane in enumerate(lanes):
        shapes.append(
            {
                "type": "rect",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "layer": "below",
                "line": {"width": 0},
                "y0": lane.offset - 0.5,
                "y1": lane.offset + lane.tracks - 0.5,
                "fillcolor": "#f4f6f9" if index % 2 == 0 else "#ffffff",
            }
        )
    for marker in job_markers:
        colour = _MARKERS[marker.kind][1]
        shapes.append(
            {
                "type": "line",
                "yref": "paper",
                "y0": 0,
                "y1": 1,
                "x0": marker.at,
                "x1": marker.at,
                "line": {"color": colour, "width": 2, "dash": "dot"},
            }
        )
    return shapes


def _timeline_figure(model: ReportModel) -> go.Figure:
    figure = go.Figure()
    phase_trace = _phase_trace(model)
    if phase_trace is not None:
        figure.add_trace(phase_trace)
    for trace in [*_agent_traces(model), *_marker_traces(model)]:
        figure.add_trace(trace)
    tracks = sum(lane.tracks for lane in model.lanes) or 1
    job_markers = [m for m in model.markers if m.domain is None]
    figure.update_layout(
        barmode="overlay",
        height=150 + tracks * _TRACK_PIXELS,
        margin={"l": 110, "r": 24, "t": 30, "b": 48},
        plot_bgcolor="#ffffff",
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
        hoverlabel={"align": "left"},
        shapes=_lane_shapes(model.lanes, job_markers),
        annotations=[
            {
                "x": m.at,
                "y": 1,
                "yref": "paper",
                "text": escape(m.label),
                "showarrow": False,
                "yanchor": "bottom",
                "xanchor": "right",
                "font": {"color": _MARKERS[m.kind][1], "size": 11},
            }
            for m in job_markers
        ],
        xaxis={
            "title": {"text": "seconds since the job started"},
            "rangemode": "tozero",
            "range": [0, max(model.summary.duration, 0.001) * 1.03],
            "gridcolor": "#e5e7eb",
            "zeroline": False,
        },
        yaxis={
            "autorange": "reversed",
            "tickvals": [lane.offset + (lane.tracks - 1) / 2 for lane in model.lanes],
            "ticktext": [escape(lane.domain) for lane in model.lanes],
            "range": [tracks - 0.5, -0.5],
            "showgrid": False,
            "zeroline": False,
        },
    )
    return figure


# -- the budget chart ----------------------------------------------------------------------


def _budget_figure(model: ReportModel) -> go.Figure:
    points = model.budget
    figure = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        row_heights=[0.62, 0.38],
        specs=[[{"secondary_y": True}], [{}]],
    )
    at = [p.at for p in points]
    figure.add_trace(
        go.Scatter(
            name="tokens",
            x=at,
            y=[p.tokens for p in points],
            line_shape="hv",
            line={"color": "#3b6fb6"},
        ),
        row=1,
        col=1,
    )
    figure.add_trace(
        go.Scatter(
            name="cost",
            x=at,
            y=[p.cost for p in points],
            line_shape="hv",
            line={"color": "#c2410c"},
        ),
        row=1,
        col=1,
        secondary_y=True,
    )
    figure.add_trace(
        go.Scatter(
            name="agent runs",
            x=at,
            y=[p.agent_runs for p in points],
            line_shape="hv",
            line={"color": "#2e9d57"},
        ),
        row=2,
        col=1,
    )
    limits = {"tokens": (1, False), "cost": (1, True), "agent_runs": (2, False)}
    for key, (row, secondary) in limits.items():
        value = model.budget_limit.get(key)
        if value is not None:
            figure.add_hline(
                y=value,
                line={"dash": "dash", "color": "#7b3fa0"},
                row=row,
                col=1,
                secondary_y=secondary,
                annotation_text=f"{key} limit {value:g}",
            )
    figure.update_layout(
        height=360,
        margin={"l": 70, "r": 70, "t": 30, "b": 40},
        plot_bgcolor="#ffffff",
        legend={"orientation": "h", "y": 1.08, "x": 0},
    )
    figure.update_xaxes(
        title_text="seconds since the job started", row=2, col=1, rangemode="tozero"
    )
    figure.update_yaxes(title_text="tokens", row=1, col=1, rangemode="tozero", gridcolor="#e5e7eb")
    figure.update_yaxes(
        title_text="cost", row=1, col=1, secondary_y=True, rangemode="tozero", showgrid=False
    )
    figure.update_yaxes(
        title_text="agent runs", row=2, col=1, rangemode="tozero", gridcolor="#e5e7eb"
    )
    return figure


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


def _plot(figure: go.Figure, div_id: str) -> str:
    return str(
        pio.to_html(
            figure, include_plotlyjs=False, full_html=False, div_id=div_id, config=_PLOT_CONFIG
        )
    )


def render_report(model: ReportModel, shape: GraphShape | None = None) -> str:
    """The report page for a model (one HTML document; plotly.js inlined).

    Args:
        model: From :func:`treefork.report.model.build_report_model`.
        shape: The graph's shape, to draw it; None leaves the graph section out.

    Returns:
        The HTML text.
    """
    summary = model.summary
    title = f"treefork job {summary.job_id}"
    timeline = (
        _plot(_timeline_figure(model), "timeline")
        if model.bars or model.phases
        else '<div id="timeline" class="empty">No agent ran.</div>'
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{_CSS}</style>
<script>{get_plotlyjs()}</script>
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
{_plot(_budget_figure(model), "budget-chart")}</section>
{_failures_html(model)}
{_graph_html(model, shape)}
{_files_html(model)}
</main>
<script>{_TAG_SCRIPT}</script>
</body></html>
"""
