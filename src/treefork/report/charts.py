"""The report's charts as inline SVG: the timeline and the budget over time.

No chart library and no script: the browser draws the SVG as it is, offline, and each
shape's ``<title>`` is its tooltip. The timeline has one lane per domain: the domain's
phases on its first row, then one bar per agent, coloured by outcome, on as many rows as
agents ran at once. Merges, conflicts and budget exhaustion are markers on the lane;
job-wide events (the final merge) are vertical lines. Every agent bar is a ``rect`` with
``data-agent`` (``domain/item``) and ``data-status``, so the page can be checked, and
scripted, bar by bar.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape

from treefork.report.records import AgentBar, BudgetPoint, ReportModel

__all__ = (
    "LANE_COLOUR",
    "STATUS_COLOURS",
    "TIMELINE_WIDTH",
    "TRACK_PIXELS",
    "budget_svg",
    "shorten",
    "timeline_svg",
)

STATUS_COLOURS: Mapping[str, str] = {
    "succeeded": "#2e9d57",
    "failed": "#d64541",
    "conflict": "#e8871e",
    "skipped": "#9aa0a6",
    "unfinished": "#6c8ebf",
}
"""Bar colour by agent outcome."""

_PHASE_COLOURS = {"setup": "#dfe9f7", "map": "#e8f3e8", "reduce": "#f6eedd", "tests": "#efe4f6"}
_MARKER_COLOURS = {"merge": "#1b6e3a", "conflict": "#e8871e", "budget": "#7b3fa0"}
_MARKER_LABELS = {"merge": "merge", "conflict": "conflict", "budget": "budget reached"}

TIMELINE_WIDTH = 1200
"""The timeline's width in pixels (its ``viewBox`` too: drawn at 1:1 when there is room)."""
LANE_COLOUR = "#f4f6f9"
"""The background of the first lane (and every other one)."""
TRACK_PIXELS = 24
"""The height of one row of a lane."""
_LEFT, _RIGHT, _TOP, _BOTTOM = 120, 24, 30, 44
_BAR = 0.78  # of a row
_PHASE = 0.62
_CHAR_PIXELS = 6.6  # of 11 px text, to decide whether a label fits its bar


def shorten(text: str, limit: int = 300) -> str:
    """The text, cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _n(value: float) -> str:
    """A coordinate, short."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _ticks(end: float, count: int = 8) -> list[float]:
    """Round tick values from 0 to ``end``: steps of 1, 2 or 5 times a power of ten."""
    raw = max(end, 1e-9) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(int(end / step) + 1)]


def _seconds_label(value: float) -> str:
    return f"{value:g}s"


# -- the timeline --------------------------------------------------------------------------


def _agent_tooltip(bar: AgentBar) -> str:
    lines = [
        f"{bar.item} ({bar.domain})",
        f"{bar.status}, {bar.start:.1f}s → {bar.end:.1f}s ({bar.end - bar.start:.1f}s)",
    ]
    if bar.files:
        lines.append(f"files: {shorten(', '.join(bar.files), 120)}")
    if bar.tokens or bar.cost:
        lines.append(f"tokens {bar.tokens:,}, cost {bar.cost:.4f}")
    if bar.error:
        lines.append(f"error: {shorten(bar.error, 160)}")
    return "\n".join(lines)


def _label(text: str, x: float, y: float, width: float, *, colour: str, anchor: str) -> str:
    if width < len(text) * _CHAR_PIXELS + 6:
        return ""
    at = x + 4 if anchor == "start" else x + width / 2
    return (
        f'<text x="{_n(at)}" y="{_n(y)}" fill="{colour}" text-anchor="{anchor}" '
        f'dominant-baseline="central" pointer-events="none">{escape(text)}</text>'
    )


def _marker_shape(kind: str, x: float, y: float) -> str:
    colour = _MARKER_COLOURS[kind]
    r = 6.0
    if kind == "merge":
        points = f"{_n(x)},{_n(y - r)} {_n(x + r)},{_n(y)} {_n(x)},{_n(y + r)} {_n(x - r)},{_n(y)}"
        return f'<polygon points="{points}" fill="{colour}" stroke="#fff"/>'
    if kind == "conflict":
        d = (
            f"M{_n(x - r)},{_n(y - r)}L{_n(x + r)},{_n(y + r)}"
            f"M{_n(x + r)},{_n(y - r)}L{_n(x - r)},{_n(y + r)}"
        )
        return f'<path d="{d}" stroke="{colour}" stroke-width="3"/>'
    points = f"{_n(x - r)},{_n(y - r)} {_n(x + r)},{_n(y - r)} {_n(x)},{_n(y + r)}"
    return f'<polygon points="{points}" fill="{colour}" stroke="#fff"/>'


def _legend(statuses: Sequence[str], markers: Sequence[str]) -> str:
    parts, x = [], float(_LEFT)
    for status in statuses:
        parts.append(
            f'<g class="legend"><circle cx="{_n(x + 5)}" cy="14" r="5" '
            f'fill="{STATUS_COLOURS[status]}"/><text x="{_n(x + 14)}" y="14" '
            f'dominant-baseline="central">{escape(status)}</text></g>'
        )
        x += 22 + len(status) * _CHAR_PIXELS
    for kind in markers:
        label = _MARKER_LABELS[kind]
        parts.append(
            f'<g class="legend">{_marker_shape(kind, x + 5, 14)}<text x="{_n(x + 14)}" y="14" '
            f'dominant-baseline="central">{escape(label)}</text></g>'
        )
        x += 22 + len(label) * _CHAR_PIXELS
    return "".join(parts)


def timeline_svg(model: ReportModel) -> str:
    """The timeline as one ``<svg id="timeline">`` element."""
    end = max(model.summary.duration, 0.001) * 1.03
    plot_width = TIMELINE_WIDTH - _LEFT - _RIGHT
    tracks = sum(lane.tracks for lane in model.lanes) or 1
    height = _TOP + tracks * TRACK_PIXELS + _BOTTOM
    bottom = _TOP + tracks * TRACK_PIXELS

    def x_of(seconds: float) -> float:
        return _LEFT + min(max(seconds, 0.0), end) / end * plot_width

    def row_middle(row: int) -> float:
        return _TOP + (row + 0.5) * TRACK_PIXELS

    minimum = 6.0  # pixels: an instant agent (one the budget skipped) is still visible
    lane_of = {lane.domain: lane for lane in model.lanes}
    parts: list[str] = []
    for index, each in enumerate(model.lanes):
        lane_top = _TOP + each.offset * TRACK_PIXELS
        fill = LANE_COLOUR if index % 2 == 0 else "#ffffff"
        parts.append(
            f'<rect class="lane" x="{_LEFT}" y="{lane_top}" width="{plot_width}" '
            f'height="{each.tracks * TRACK_PIXELS}" fill="{fill}"/>'
            f'<text class="lane-name" x="{_LEFT - 8}" '
            f'y="{_n(lane_top + each.tracks * TRACK_PIXELS / 2)}" text-anchor="end" '
            f'dominant-baseline="central">{escape(shorten(each.domain, 16))}</text>'
        )
    for tick in _ticks(end):
        x = x_of(tick)
        parts.append(
            f'<line class="grid" x1="{_n(x)}" x2="{_n(x)}" y1="{_TOP}" y2="{bottom}" '
            f'stroke="#e5e7eb"/><text x="{_n(x)}" y="{bottom + 14}" text-anchor="middle">'
            f"{_seconds_label(tick)}</text>"
        )
    parts.append(
        f'<text x="{_n(_LEFT + plot_width / 2)}" y="{height - 8}" text-anchor="middle" '
        'class="axis-title">seconds since the job started</text>'
    )
    for span in model.phases:
        lane = lane_of.get(span.domain)
        if lane is None:
            continue
        x, width = x_of(span.start), max(x_of(span.end) - x_of(span.start), minimum)
        h = _PHASE * TRACK_PIXELS
        middle = row_middle(lane.offset)
        y = middle - h / 2
        stroke = "#d64541" if span.ok is False else "#b8c0cc"
        tip = f"{span.domain}: {span.phase} {span.start:.1f}s → {span.end:.1f}s" + (
            " (failed)" if span.ok is False else ""
        )
        parts.append(
            f'<g class="phase" data-phase="{escape(span.phase)}"><title>{escape(tip)}</title>'
            f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(width)}" height="{_n(h)}" '
            f'fill="{_PHASE_COLOURS.get(span.phase, "#eceff3")}" stroke="{stroke}"/>'
            + _label(span.phase, x, middle, width, colour="#374151", anchor="middle")
            + "</g>"
        )
    for bar in model.bars:
        lane = lane_of.get(bar.domain)
        if lane is None:
            continue
        row = lane.offset + bar.track
        x, width = x_of(bar.start), max(x_of(bar.end) - x_of(bar.start), minimum)
        h = _BAR * TRACK_PIXELS
        y = row_middle(row) - h / 2
        parts.append(
            f'<g class="agent"><title>{escape(_agent_tooltip(bar))}</title>'
            f'<rect data-agent="{escape(bar.domain)}/{escape(bar.item)}" '
            f'data-status="{escape(bar.status)}" x="{_n(x)}" y="{_n(y)}" width="{_n(width)}" '
            f'height="{_n(h)}" fill="{STATUS_COLOURS.get(bar.status, "#6c8ebf")}"/>'
            f"{_label(bar.item, x, row_middle(row), width, colour='#ffffff', anchor='start')}</g>"
        )
    for marker in model.markers:
        if marker.domain is None:
            x = x_of(marker.at)
            colour = _MARKER_COLOURS[marker.kind]
            parts.append(
                f'<g class="job-marker"><title>{escape(marker.label)}</title>'
                f'<line x1="{_n(x)}" x2="{_n(x)}" y1="{_TOP}" y2="{bottom}" stroke="{colour}" '
                f'stroke-width="2" stroke-dasharray="3 3"/><text x="{_n(x - 4)}" '
                f'y="{_TOP - 4}" text-anchor="end" fill="{colour}">'
                f"{escape(marker.label)}</text></g>"
            )
            continue
        marked = lane_of.get(marker.domain)
        if marked is None:
            continue
        parts.append(
            f'<g class="marker" data-kind="{marker.kind}"><title>{escape(marker.label)}</title>'
            f"{_marker_shape(marker.kind, x_of(marker.at), row_middle(marked.offset))}</g>"
        )
    statuses = [status for status in STATUS_COLOURS if any(b.status == status for b in model.bars)]
    kinds = [k for k in _MARKER_COLOURS if any(m.kind == k and m.domain for m in model.markers)]
    return (
        f'<svg id="timeline" class="chart" xmlns="http://www.w3.org/2000/svg" '
        f'width="{TIMELINE_WIDTH}" height="{height}" viewBox="0 0 {TIMELINE_WIDTH} {height}" '
        f'role="img" aria-label="timeline of the job">{_legend(statuses, kinds)}'
        f"{''.join(parts)}</svg>"
    )


# -- the budget chart ----------------------------------------------------------------------

_PANEL_HEIGHT = 90
_PANEL_GAP = 26


def _step_path(
    points: Sequence[BudgetPoint],
    value: Callable[[BudgetPoint], float],
    x_of: Callable[[float], float],
    y_of: Callable[[float], float],
    end: float,
) -> str:
    if not points:
        return ""
    d = f"M{_n(x_of(points[0].at))},{_n(y_of(value(points[0])))}"
    for point in points[1:]:
        d += f"H{_n(x_of(point.at))}V{_n(y_of(value(point)))}"
    return d + f"H{_n(x_of(end))}"


def budget_svg(model: ReportModel) -> str:
    """Tokens, cost and agent runs over the job, one panel each, with their limits."""
    points = model.budget
    end = max(model.summary.duration, points[-1].at if points else 0.0, 0.001) * 1.03
    plot_width = TIMELINE_WIDTH - _LEFT - _RIGHT
    panels: list[tuple[str, str, Callable[[BudgetPoint], float], str]] = [
        ("tokens", "tokens", lambda p: float(p.tokens), "#3b6fb6"),
        ("cost", "cost", lambda p: p.cost, "#c2410c"),
        ("agent_runs", "agent runs", lambda p: float(p.agent_runs), "#2e9d57"),
    ]
    height = 16 + len(panels) * (_PANEL_HEIGHT + _PANEL_GAP) + 30

    def x_of(seconds: float) -> float:
        return _LEFT + min(max(seconds, 0.0), end) / end * plot_width

    parts: list[str] = []
    for index, (key, title, value, colour) in enumerate(panels):
        top = 16 + index * (_PANEL_HEIGHT + _PANEL_GAP)
        limit = model.budget_limit.get(key)
        highest = max([value(p) for p in points] + [limit or 0.0, 0.0])
        scale = highest * 1.1 or 1.0

        def y_of(amount: float, top: float = top, scale: float = scale) -> float:
            return top + _PANEL_HEIGHT - amount / scale * _PANEL_HEIGHT

        shown = f"{value(points[-1]):g}" if points else "0"
        parts.append(
            f'<g class="panel" data-series="{key}"><rect x="{_LEFT}" y="{top}" '
            f'width="{plot_width}" height="{_PANEL_HEIGHT}" fill="#fafbfc" stroke="#e5e7eb"/>'
            f'<text x="{_LEFT - 8}" y="{top + _PANEL_HEIGHT / 2}" text-anchor="end" '
            f'dominant-baseline="central">{escape(title)}</text>'
            f'<text x="{_LEFT - 8}" y="{top + 8}" text-anchor="end" class="note">'
            f"{_n(scale)}</text>"
            f'<title>{escape(title)}: {shown} at the end</title>'
            f'<path d="{_step_path(points, value, x_of, y_of, end)}" fill="none" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
        if limit is not None:
            y = y_of(limit)
            parts.append(
                f'<line x1="{_LEFT}" x2="{_LEFT + plot_width}" y1="{_n(y)}" y2="{_n(y)}" '
                f'stroke="#7b3fa0" stroke-dasharray="5 4"/><text x="{_LEFT + plot_width - 4}" '
                f'y="{_n(y - 4)}" text-anchor="end" fill="#7b3fa0">{escape(title)} limit '
                f"{limit:g}</text>"
            )
        parts.append("</g>")
    bottom = 16 + len(panels) * (_PANEL_HEIGHT + _PANEL_GAP) - _PANEL_GAP
    for tick in _ticks(end):
        x = x_of(tick)
        parts.append(
            f'<text x="{_n(x)}" y="{bottom + 14}" text-anchor="middle">{_seconds_label(tick)}'
            "</text>"
        )
    return (
        f'<svg id="budget-chart" class="chart" xmlns="http://www.w3.org/2000/svg" '
        f'width="{TIMELINE_WIDTH}" height="{height}" viewBox="0 0 {TIMELINE_WIDTH} {height}" '
        f'role="img" aria-label="budget over time">{"".join(parts)}'
        f'<text x="{_n(_LEFT + plot_width / 2)}" y="{height - 6}" text-anchor="middle">'
        "seconds since the job started</text></svg>"
    )
