"""treefork: run many agents in parallel on one git repository.

A supervisor reads a task and picks the domains it touches; a dispatcher runs each domain's
sub-graph (setup, parallel map agents, reduce) concurrently, each in its own git worktree;
an aggregator merges the results into :class:`ParallelState`; merge review brings the work
into your branch only when approved.
"""

import importlib as _importlib
import typing as _typing
import warnings as _warnings

if _typing.TYPE_CHECKING:
    from treefork.context import TreeforkContext
    from treefork.core.routing import Analyzer, DomainSpec, RuleAnalyzer, Selection
    from treefork.domain import Budget, CommandItems, Domain, ErrorPolicy, JsonFile, Map
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
    from treefork.notebook import view
    from treefork.state import ParallelInput, ParallelOutput, ParallelState
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
    "CommandItems",
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
    "ParallelInput",
    "ParallelOutput",
    "ParallelState",
    "RepositoryError",
    "Retry",
    "RuleAnalyzer",
    "Selection",
    "Shell",
    "StepError",
    "TreeforkContext",
    "TreeforkError",
    "Usage",
    "WorkflowError",
    "WriteFile",
    "__version__",
    "build_graph",
    "view",
)

# Names are imported on first use (PEP 562): ``import treefork`` and the command line's
# ``validate`` stay fast, and langgraph is loaded only by what needs the graph.
_MODULES = {
    "Analyzer": "treefork.core.routing",
    "DomainSpec": "treefork.core.routing",
    "RuleAnalyzer": "treefork.core.routing",
    "Selection": "treefork.core.routing",
    "Budget": "treefork.domain",
    "CommandItems": "treefork.domain",
    "Domain": "treefork.domain",
    "ErrorPolicy": "treefork.domain",
    "JsonFile": "treefork.domain",
    "Map": "treefork.domain",
    "DefinitionError": "treefork.errors",
    "GitError": "treefork.errors",
    "InputError": "treefork.errors",
    "MergeConflictError": "treefork.errors",
    "MergeRefusedError": "treefork.errors",
    "RepositoryError": "treefork.errors",
    "StepError": "treefork.errors",
    "TreeforkError": "treefork.errors",
    "WorkflowError": "treefork.errors",
    "build_graph": "treefork.graph",
    "ParallelInput": "treefork.state",
    "ParallelOutput": "treefork.state",
    "ParallelState": "treefork.state",
    "TreeforkContext": "treefork.context",
    "AgentContext": "treefork.steps",
    "AgentOutput": "treefork.steps",
    "AgentStep": "treefork.steps",
    "Claude": "treefork.steps",
    "Retry": "treefork.steps",
    "Shell": "treefork.steps",
    "Usage": "treefork.steps",
    "WriteFile": "treefork.steps",
    "view": "treefork.notebook",
}


_DEPRECATED = {
    # old name: (new name, why)
    "Command": ("CommandItems", "LangGraph's Command is another thing"),
}


def __getattr__(name: str) -> _typing.Any:
    if name in _DEPRECATED:
        new, why = _DEPRECATED[name]
        _warnings.warn(
            f"treefork.{name} is deprecated; use treefork.{new} ({why})",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(_importlib.import_module(_MODULES[new]), new)
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'treefork' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
