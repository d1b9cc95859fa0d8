"""Steps: the units of work that setup, map agents and reduce are made of.

A step is a frozen value; running it is the job of :mod:`treefork.runners`. Four kinds exist:

- :class:`Shell` runs a bash script in its worktree.
- :class:`AgentStep` runs any async callable or LangChain ``Runnable`` given an
  :class:`AgentContext`.
- :class:`Claude` runs the Claude CLI (or any configured command) with a prompt.
- :class:`WriteFile` writes a file in the worktree.

Every kind shares the step options in :class:`StepOptions` (timeout, commit_required,
on_failure, on_success, capture, retry, env, when, working_dir).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

__all__ = (
    "AgentCallable",
    "AgentContext",
    "AgentOutput",
    "AgentStep",
    "CaptureFormat",
    "Claude",
    "Retry",
    "Shell",
    "Step",
    "Usage",
    "WriteFile",
)

CaptureFormat: TypeAlias = Literal["string", "number", "json", "lines", "boolean"]
"""How captured output is turned into a variable's value."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Resources one step or agent used; they count against the budget."""

    tokens_in: int = 0
    """Prompt (input) tokens."""
    tokens_out: int = 0
    """Completion (output) tokens."""
    cost: float = 0.0
    """Cost in the caller's currency (USD for the Claude CLI)."""

    @property
    def tokens(self) -> int:
        """Input and output tokens together."""
        return self.tokens_in + self.tokens_out

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.tokens_in + other.tokens_in,
            self.tokens_out + other.tokens_out,
            self.cost + other.cost,
        )


@dataclass(frozen=True, slots=True)
class Retry:
    """Retry a failed step with exponential backoff."""

    attempts: int = 3
    """Total attempts, the first one included (1 means no retry)."""
    backoff: float = 1.0
    """Seconds before the second attempt; doubles after each further failure."""
    max_delay: float = 30.0
    """Upper bound on the delay between two attempts, in seconds."""


def _as_tuple(value: Sequence[Any] | None) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, str | bytes):
        raise TypeError(f"expected a list, got a string: {value!r}")
    return tuple(value)


@dataclass(frozen=True, kw_only=True)
class StepOptions:
    """Options every kind of step accepts."""

    name: str | None = None
    """A short label for logs and events; defaults to the start of the command."""
    timeout: float | None = None
    """Seconds the step may run; past it the whole process group is killed."""
    commit_required: bool = False
    """The step must move HEAD of its worktree (commit), else it fails saying so."""
    on_failure: Sequence[Step] = ()
    """Steps run when this one fails; if they all succeed, the failure is handled."""
    on_success: Sequence[Step] = ()
    """Steps run after this one succeeds; if one of them fails, this step fails."""
    continue_on_failure: bool = False
    """A failure of this step, handled or not, does not stop the steps after it (its result
    names the failure, as for a handled one); Prodigy's ``on_failure: {fail_workflow:
    false}``."""
    capture: str | None = None
    """Store the step's output in this variable for later steps (``${name}``)."""
    capture_format: CaptureFormat = "string"
    """How the captured output is parsed."""
    capture_streams: Literal["stdout", "stderr", "both"] = "stdout"
    """Which output streams are captured."""
    retry: Retry | None = None
    """Retry the step when it fails."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables for this step (values may use ``${...}``)."""
    when: str | None = None
    """Run the step only when this condition (after interpolation) holds."""
    working_dir: str | None = None
    """Directory inside the worktree to run in (relative to the worktree root)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "on_failure", _as_tuple(self.on_failure))
        object.__setattr__(self, "on_success", _as_tuple(self.on_success))
        object.__setattr__(self, "env", dict(self.env))

    @property
    def label(self) -> str:
        """The name shown in logs and events."""
        return self.name or self._default_label()

    def _default_label(self) -> str:
        return type(self).__name__.lower()


@dataclass(frozen=True)
class Shell(StepOptions):
    """Run a bash script with the worktree as its working directory.

    Args:
        command: The script. ``${...}`` references are interpolated quote-aware: the
            shell receives exactly the value and never runs it as code.
    """

    command: str


    def _default_label(self) -> str:
        first = self.command.strip().splitlines()[0] if self.command.strip() else ""
        return first if len(first) <= 60 else first[:57] + "..."


@dataclass(frozen=True, slots=True)
class AgentContext:
    """What an agent step is given: its item, its worktree and the variables in scope."""

    item: Any
    """The work item (a string, number or JSON object); None outside the map phase."""
    item_id: str | None
    """A stable id for the item (its ``id`` field, else its index)."""
    item_index: int | None
    """Position of the item among the selected items."""
    worktree: Path
    """The agent's own worktree; its current directory for every command."""
    variables: Mapping[str, Any]
    """Variables in scope: captures of earlier steps, workflow env, map results."""
    domain: str
    """Name of the domain the step runs for."""
    job_id: str
    """The job the step belongs to."""
    prompt: str | None = None
    """The step's prompt with ``${...}`` references resolved, if it has one."""
    allow_commits: bool = True
    """False for read-only agents (``isolation: none``): they must not commit."""


@dataclass(frozen=True, slots=True)
class AgentOutput:
    """What an agent step returns (a plain string or dict is accepted too)."""

    output: str = ""
    """Text output, used for capture and shown in the result's output tail."""
    usage: Usage = field(default_factory=Usage)
    """Tokens and cost spent, counted against the budget."""
    variables: Mapping[str, Any] = field(default_factory=dict)
    """Extra variables to put in scope for later steps."""


@runtime_checkable
class AgentCallable(Protocol):
    """An agent: an async callable that receives the agent context."""

    def __call__(self, context: AgentContext) -> Awaitable[Any]: ...


@dataclass(frozen=True)
class AgentStep(StepOptions):
    """Run an agent: any async callable or LangChain ``Runnable``.

    Args:
        agent: ``async def agent(ctx: AgentContext) -> AgentOutput | str | dict | None``,
            or a LangChain ``Runnable`` (a compiled LangGraph graph, a chat model chain,
            ...). A Runnable receives ``{"item", "item_id", "worktree", "variables",
            "prompt"}``; an ``AIMessage`` result's ``usage_metadata`` counts as usage.
        prompt: Optional prompt template (``${item.title}`` etc.) resolved into
            ``AgentContext.prompt``.
    """

    agent: AgentCallable | Callable[[AgentContext], Awaitable[Any]] | Any
    _: KW_ONLY
    prompt: str | None = None


    def _default_label(self) -> str:
        return getattr(self.agent, "__name__", None) or getattr(
            self.agent, "name", None
        ) or type(self.agent).__name__


@dataclass(frozen=True)
class Claude(StepOptions):
    """Run the Claude CLI (or the configured command) in the worktree with a prompt.

    The command is ``claude -p <prompt> --output-format json`` unless ``TREEFORK_CLAUDE``
    or the runner's configuration names another; tokens and cost are read from its JSON.
    """

    prompt: str


    def _default_label(self) -> str:
        first = self.prompt.strip().splitlines()[0] if self.prompt.strip() else ""
        return "claude: " + (first if len(first) <= 50 else first[:47] + "...")


@dataclass(frozen=True)
class WriteFile(StepOptions):
    """Write ``content`` to ``path`` (relative to the worktree); both may use ``${...}``."""

    path: str
    content: str
    _: KW_ONLY
    mode: int = 0o644


    def _default_label(self) -> str:
        return f"write_file: {self.path}"


Step: TypeAlias = Shell | AgentStep | Claude | WriteFile
"""Any step."""
