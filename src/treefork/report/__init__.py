"""Run reports: one self-contained HTML page per job, from its events.

::

    build_report_model(job, events)   model.py     pure: summary, budget, failures, outcomes
      ├─ the page's records           records.py   frozen values, no behaviour
      └─ placing on the timeline      timeline.py  bars on lanes and tracks, phases, markers
    render_report(model, shape)       html.py      the page; charts.py and graph.py (inline SVG)
    graph_shape()                                  the node order of treefork's compiled graphs
    write_report(path, job, events)                all of the above, written to one file
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from treefork.domain import Domain, Map
from treefork.graph import build_graph
from treefork.report.graph import GraphShape, topological_order
from treefork.report.html import render_report
from treefork.report.model import ReportModel, build_report_model
from treefork.steps import Shell

__all__ = (
    "GraphShape",
    "ReportModel",
    "build_report_model",
    "graph_shape",
    "render_report",
    "write_report",
)


def graph_shape() -> GraphShape:
    """The order of the nodes of treefork's graph and of a domain's sub-graph.

    Read from the compiled graphs themselves, so the report draws the graph that ran.
    """
    graph = build_graph([Domain("domain", map=Map(input=["item"], agent=[Shell("true")]))])
    top = graph.get_graph()
    # The domains run as nodes beside each other below the dispatcher: the report draws
    # them as columns, so the top-level chain leaves them out.
    top_nodes = topological_order(
        [node for node in top.nodes if node != "domain"],
        [(edge.source, edge.target) for edge in top.edges]
        + [("dispatcher", "aggregator")],
    )
    domain = graph.get_graph(xray=True)
    prefix = "domain:"
    inner_names = [node[len(prefix) :] for node in domain.nodes if node.startswith(prefix)]
    inner_edges = [
        (edge.source[len(prefix) :], edge.target[len(prefix) :])
        for edge in domain.edges
        if edge.source.startswith(prefix) and edge.target.startswith(prefix)
    ]
    inner = tuple(topological_order(inner_names, inner_edges))
    return GraphShape(tuple(top_nodes), inner)


def write_report(
    path: str | Path,
    job: Mapping[str, Any] | None,
    events: Sequence[Mapping[str, Any]],
) -> Path:
    """Write the report of one job to ``path`` (one HTML file; folders created).

    Args:
        path: The HTML file to write.
        job: What is known of the job besides its events (job store row or final state).
        events: The job's events in the order they were emitted.

    Returns:
        The path written.
    """
    target = Path(path)
    page = render_report(build_report_model(job, events), graph_shape())
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return target
