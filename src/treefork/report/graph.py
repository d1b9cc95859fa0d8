"""The graph section of the report: treefork's graph drawn as SVG, coloured by the run (pure).

The shape comes from the compiled LangGraph graphs themselves (``graph.get_graph()``): the
top-level nodes in order, and the domain sub-graph's nodes in order. The dispatcher is drawn
opened up: one column per chosen domain with its sub-graph's nodes, between the dispatcher
and the node after it. Each node is coloured by what the job's events say happened there.

The SVG is written here rather than by a diagram library: the graph is a short chain with
one fan-out, so a fixed layout is enough, and the page stays free of another JavaScript
bundle (a mermaid renderer would add megabytes and render differently across versions).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

__all__ = ("GraphShape", "NodeBox", "flow_layout", "flow_svg", "topological_order")

_NODE_WIDTH = 132
_NODE_HEIGHT = 28
_COLUMN = 152
_ROW = 46
_MARGIN = 16
_TERMINALS = ("__start__", "__end__")


@dataclass(frozen=True, slots=True)
class GraphShape:
    """The nodes of treefork's graph, in the order they run."""

    nodes: tuple[str, ...]
    """Top-level nodes, ``__start__`` and ``__end__`` included."""
    domain_nodes: tuple[str, ...]
    """One domain sub-graph's nodes (without its start and end)."""
    expand: str = "dispatcher"
    """The top-level node that runs the domain sub-graphs."""


@dataclass(frozen=True, slots=True)
class NodeBox:
    """A node placed on the drawing."""

    key: str
    """Unique: the node name, or ``<domain>/<node>`` inside a domain."""
    label: str
    x: float
    """Centre."""
    y: float
    """Centre."""
    outcome: str
    """``ok``, ``failed``, ``running`` or ``pending``."""
    terminal: bool = False


def topological_order(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> list[str]:
    """Nodes ordered so that every edge goes forward (ties keep the given order).

    Edges that close a cycle are ignored: each node comes after every node that reaches it
    otherwise.
    """
    names = list(dict.fromkeys(nodes))
    incoming: dict[str, set[str]] = {name: set() for name in names}
    for source, target in edges:
        if source in incoming and target in incoming and source != target:
            incoming[target].add(source)
    ordered: list[str] = []
    remaining = list(names)
    while remaining:
        ready = next((n for n in remaining if incoming[n] <= set(ordered)), remaining[0])
        ordered.append(ready)
        remaining.remove(ready)
    return ordered


def flow_layout(
    shape: GraphShape,
    domains: Sequence[str],
    job_outcomes: Mapping[str, str],
    phase_outcomes: Mapping[str, Mapping[str, str]],
) -> tuple[list[NodeBox], list[tuple[str, str]], tuple[float, float]]:
    """Place the nodes: the top-level chain down the middle, one column per domain.

    Returns:
        The boxes, the edges between their keys, and the drawing's width and height.
    """
    columns = max(1, len(domains))
    width = columns * _COLUMN + 2 * _MARGIN
    middle = width / 2
    boxes: list[NodeBox] = []
    edges: list[tuple[str, str]] = []
    row = 0
    previous: list[str] = []
    for name in shape.nodes:
        y = _MARGIN + _NODE_HEIGHT / 2 + row * _ROW
        outcome = (
            _terminal_outcome(name, job_outcomes)
            if name in _TERMINALS
            else job_outcomes.get(name, "pending")
        )
        boxes.append(NodeBox(name, name.strip("_"), middle, y, outcome, name in _TERMINALS))
        edges += [(source, name) for source in previous]
        previous = [name]
        row += 1
        if name == shape.expand and domains and shape.domain_nodes:
            previous = _domain_columns(
                shape, domains, phase_outcomes, boxes=boxes, edges=edges, parent=name, first_row=row
            )
            row += len(shape.domain_nodes)
    height = _MARGIN * 2 + (row - 1) * _ROW + _NODE_HEIGHT
    return boxes, edges, (width, height)


def _terminal_outcome(name: str, job_outcomes: Mapping[str, str]) -> str:
    if name == "__start__":
        return "ok" if job_outcomes else "pending"
    return "ok" if job_outcomes.get("merge_review") == "ok" else "pending"


def _domain_columns(
    shape: GraphShape,
    domains: Sequence[str],
    phase_outcomes: Mapping[str, Mapping[str, str]],
    *,
    boxes: list[NodeBox],
    edges: list[tuple[str, str]],
    parent: str,
    first_row: int,
) -> list[str]:
    lasts = []
    for column, domain in enumerate(domains):
        x = _MARGIN + _COLUMN / 2 + column * _COLUMN
        source = parent
        outcomes = phase_outcomes.get(domain, {})
        for offset, node in enumerate(shape.domain_nodes):
            key = f"{domain}/{node}"
            y = _MARGIN + _NODE_HEIGHT / 2 + (first_row + offset) * _ROW
            label = f"{domain}: {node}" if offset == 0 else node
            boxes.append(NodeBox(key, label, x, y, outcomes.get(node, "pending")))
            edges.append((source, key))
            source = key
        lasts.append(source)
    return lasts


def _edge_path(source: NodeBox, target: NodeBox) -> str:
    start_y = source.y + (_NODE_HEIGHT / 2 if not source.terminal else 7)
    end_y = target.y - (_NODE_HEIGHT / 2 if not target.terminal else 7)
    middle_y = (start_y + end_y) / 2
    return (
        f"M{source.x:.1f},{start_y:.1f} C{source.x:.1f},{middle_y:.1f} "
        f"{target.x:.1f},{middle_y:.1f} {target.x:.1f},{end_y:.1f}"
    )


def _node_svg(box: NodeBox) -> str:
    key = escape(box.key, quote=True)
    if box.terminal:
        return (
            f'<g class="node terminal {box.outcome}" data-node="{key}">'
            f'<circle cx="{box.x:.1f}" cy="{box.y:.1f}" r="7"/>'
            f'<text x="{box.x + 12:.1f}" y="{box.y + 4:.1f}" text-anchor="start">'
            f"{escape(box.label)}</text></g>"
        )
    left = box.x - _NODE_WIDTH / 2
    top = box.y - _NODE_HEIGHT / 2
    return (
        f'<g class="node {box.outcome}" data-node="{key}">'
        f'<rect x="{left:.1f}" y="{top:.1f}" width="{_NODE_WIDTH}" height="{_NODE_HEIGHT}" rx="6"/>'
        f'<text x="{box.x:.1f}" y="{box.y + 4:.1f}" text-anchor="middle">{escape(box.label)}</text>'
        f"<title>{escape(box.label)}: {box.outcome}</title></g>"
    )


def flow_svg(
    shape: GraphShape,
    domains: Sequence[str],
    job_outcomes: Mapping[str, str],
    phase_outcomes: Mapping[str, Mapping[str, str]],
) -> str:
    """The graph as an SVG element (styled by the page's CSS classes ``ok``, ``failed``, ...)."""
    boxes, edges, (width, height) = flow_layout(shape, domains, job_outcomes, phase_outcomes)
    by_key = {box.key: box for box in boxes}
    paths = "".join(
        f'<path class="edge" d="{_edge_path(by_key[source], by_key[target])}" '
        'marker-end="url(#arrow)"/>'
        for source, target in edges
    )
    nodes = "".join(_node_svg(box) for box in boxes)
    return (
        f'<svg class="flow" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
        f'height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="treefork graph">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/>'
        "</marker></defs>"
        f"{paths}{nodes}</svg>"
    )
