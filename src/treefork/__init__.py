"""treefork: run many agents in parallel on one git repository.

A supervisor reads a task and picks the domains it touches; a dispatcher runs each domain's
sub-graph (setup, parallel map agents, reduce) concurrently, each in its own git worktree;
an aggregator merges the results into :class:`ParallelState`; merge review brings the work
into your branch only when approved.
"""

from treefork.core.routing import Analyzer, DomainSpec, RuleAnalyzer, Selection
from treefork.domain import Budget, Command, Domain, ErrorPolicy, JsonFile, Map
from treefork.errors import (
    DefinitionError,
    GitError,
    InputError,
    MergeConflictError,
    MergeRefusedError,
    RepositoryError,
    StepError,
    TreeforkError,
    WorkflowError,
)
from treefork.graph import build_graph
from treefork.state import ParallelState
from treefork.steps import (
    AgentContext,
    AgentOutput,
    AgentStep,
    Claude,
    Retry,
    Shell,
    Usage,
    WriteFile,
)

__version__ = "0.1.0"

__all__ = (
    "AgentContext",
    "AgentOutput",
    "AgentStep",
    "Analyzer",
    "Budget",
    "Claude",
    "Command",
    "DefinitionError",
    "Domain",
    "DomainSpec",
    "ErrorPolicy",
    "GitError",
    "InputError",
    "JsonFile",
    "Map",
    "MergeConflictError",
    "MergeRefusedError",
    "ParallelState",
    "RepositoryError",
    "Retry",
    "RuleAnalyzer",
    "Selection",
    "Shell",
    "StepError",
    "TreeforkError",
    "Usage",
    "WorkflowError",
    "WriteFile",
    "__version__",
    "build_graph",
)
