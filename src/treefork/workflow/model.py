"""A loaded workflow: domains, merge steps and whole-job settings, ready for the engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from treefork.domain import Budget, Domain
from treefork.steps import Step

__all__ = ("Workflow",)


@dataclass(frozen=True)
class Workflow:
    """A workflow file compiled into treefork's objects.

    A Prodigy file (``mode: mapreduce``) gives exactly one domain, named after its ``name``
    and without keywords or paths (the engine runs a single-domain workflow whatever the
    task says); a treefork file gives one domain per entry of ``domains``.
    """

    path: Path
    """The file it was loaded from."""
    name: str
    """``name`` from the file (for treefork's format, the file's stem when absent)."""
    format: Literal["prodigy", "treefork"]
    """Which format the file is in (treefork's when it has ``domains``)."""
    task: str | None
    """The task the file states, if any."""
    budget: Budget | None
    """Limits for the whole job, if any."""
    max_parallel: int | None
    """Agents at once across every domain (treefork's format), if set."""
    env: dict[str, str]
    """The workflow's ``env`` with references resolved; each domain's ``env`` already
    includes it (domain values win)."""
    domains: tuple[Domain, ...]
    """The domains, in file order."""
    merge: tuple[Step, ...]
    """Steps run before the result merges into the user's branch (Prodigy's ``merge``)."""
    warnings: tuple[str, ...]
    """Things the file asks for that treefork does not do, or reads leniently
    (``file:line:col: ...``)."""
    origins: Mapping[str, str] = field(default_factory=dict)
    """Where each step was defined: ``"<domain>.setup[0]"``, ``"<domain>.map.agent[2]"``,
    ``"<domain>.reduce[1].on_failure[0]"``, ``"merge[0]"`` to ``file:line:col``."""
    history: Literal["merges", "squash"] = "merges"
    """``merge: {history: ...}``: a merge commit per agent, or one commit per domain."""
    secrets: Mapping[str, str] = field(default_factory=dict)
    """Each secret's value (``secrets`` and env entries with ``secret: true``): already in
    the domains' ``env`` and :attr:`env`; pass them to ``build_graph(secrets=...)`` so that
    they are masked."""
    profile: str | None = None
    """The active profile (``profiles``), if any."""

    def origin(self, location: str) -> str | None:
        """``file:line:col`` of the step at ``location`` (see :attr:`origins`), if known."""
        return self.origins.get(location)

    def domain(self, name: str) -> Domain:
        """The domain called ``name``.

        Raises:
            KeyError: There is no such domain.
        """
        for domain in self.domains:
            if domain.name == name:
                return domain
        raise KeyError(name)
