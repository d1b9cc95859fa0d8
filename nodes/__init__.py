"""The top-level graph's node functions: supervisor, dispatcher, aggregator, merge_review.

Each takes the :class:`~treefork.state.ParallelState` (and, where needed, the settings of the
built graph as a keyword argument bound by :func:`treefork.build_graph`) and returns a state
update.
"""

from treefork.nodes.aggregator import aggregator
from treefork.nodes.dispatcher import dispatcher, route_domains
from treefork.nodes.domain import build_domain_graph
from treefork.nodes.merge_review import merge_review
from treefork.nodes.supervisor import refuse_sync_invoke, supervisor

__all__ = (
    "aggregator",
    "build_domain_graph",
    "dispatcher",
    "merge_review",
    "refuse_sync_invoke",
    "route_domains",
    "supervisor",
)
