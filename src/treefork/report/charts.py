"""The report's charts, drawn with plotly: the timeline and the budget over time.

The timeline has one lane per domain: the domain's phases on its first row, then one bar
per agent, coloured by outcome, on as many rows as agents ran at once. Merges, conflicts and
budget exhaustion are markers on the lane; job-wide events (the final merge) are vertical
lines. Agent bars belong to traces whose ``meta`` is ``"agents"`` and carry
``[domain, item, status]`` as custom data, which the page uses to mark each drawn bar.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

# plotly ships no type information (no py.typed): its figures are typed as Any here.
import plotly.graph_objects as go  # type: ignore[import-untyped]
from plotly.subplots import make_subplots  # type: ignore[import-untyped]

from treefork.report.records import AgentBar, Lane, Marker, PhaseSpan, ReportModel

__all__ = ("STATUS_COLOURS", "budget_figure", "shorten", "timeline_figure")

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
_TRACK_PIXELS = 24


def shorten(text: str, limit: int = 300) -> str:
    """The text, cut to ``limit`` characters with an ellipsis."""
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
        lines.append(f"files: {escape(shorten(', '.join(bar.files), 120))}")
    if bar.tokens or bar.cost:
        lines.append(f"tokens {bar.tokens:,}, cost {bar.cost:.4f}")
    if bar.error:
        lines.append(f"error: {escape(shorten(bar.error, 160))}")
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


def timeline_figure(model: ReportModel) -> go.Figure:
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


def budget_figure(model: ReportModel) -> go.Figure:
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
