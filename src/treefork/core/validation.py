"""Validation of domains and graph options given in Python: every problem at once."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from treefork.core.naming import is_valid_name
from treefork.domain import Budget, Domain, ErrorPolicy, Map
from treefork.errors import Problem
from treefork.steps import AgentStep, Claude, Shell, Step, StepOptions, WriteFile

__all__ = ("RESERVED_DOMAIN_NAMES", "RESERVED_VARIABLES", "glob_problem", "validate_definition")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def glob_problem(pattern: str) -> str | None:
    """What is wrong with a domain path glob, or None if it is usable."""
    if not isinstance(pattern, str) or not pattern.strip():
        return "a path glob must be a non-empty string"
    if pattern.startswith("/"):
        return f"glob {pattern!r} is absolute; globs are relative to the repository root"
    if ".." in pattern.split("/"):
        return f"glob {pattern!r} leaves the repository with '..'"
    depth_square = depth_brace = 0
    for character in pattern:
        depth_square += {"[": 1, "]": -1}.get(character, 0)
        depth_brace += {"{": 1, "}": -1}.get(character, 0)
        if depth_square < 0 or depth_brace < 0:
            break
    if depth_square != 0:
        return f"glob {pattern!r} has unbalanced '[' and ']'"
    if depth_brace != 0:
        return f"glob {pattern!r} has unbalanced '{{' and '}}'"
    return None


def _positive(value: object, where: str, what: str) -> Iterator[Problem]:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        yield Problem(where, f"{what} must be a positive number, got {value!r}")


def _step_problems(step: Any, where: str) -> Iterator[Problem]:
    if not isinstance(step, Shell | AgentStep | Claude | WriteFile):
        yield Problem(where, f"not a step: {step!r} (use Shell, AgentStep, Claude or WriteFile)")
        return
    if isinstance(step, Shell) and (not isinstance(step.command, str) or not step.command.strip()):
        yield Problem(where, "Shell needs a non-empty command")
    if isinstance(step, AgentStep) and not (hasattr(step.agent, "ainvoke") or callable(step.agent)):
        yield Problem(where, f"AgentStep needs an async callable or a Runnable, got {step.agent!r}")
    if isinstance(step, Claude) and not step.prompt.strip():
        yield Problem(where, "Claude needs a non-empty prompt")
    if isinstance(step, WriteFile) and not step.path.strip():
        yield Problem(where, "WriteFile needs a path")
    yield from _option_problems(step, where)


def _option_problems(step: StepOptions, where: str) -> Iterator[Problem]:
    yield from _positive(step.timeout, f"{where}.timeout", "timeout")
    if step.capture is not None and not _IDENTIFIER.fullmatch(step.capture):
        yield Problem(f"{where}.capture", f"capture name {step.capture!r} is not an identifier")
    elif step.capture in RESERVED_VARIABLES:
        yield Problem(
            f"{where}.capture",
            f"{step.capture!r} is a variable treefork sets; capture into another name "
            f"(reserved: {', '.join(sorted(RESERVED_VARIABLES))})",
        )
    if step.retry is not None and step.retry.attempts < 1:
        yield Problem(f"{where}.retry.attempts", "attempts must be at least 1")
    for index, handler in enumerate(step.on_failure):
        yield from _step_problems(handler, f"{where}.on_failure[{index}]")


def _steps_problems(steps: Sequence[Step], where: str) -> Iterator[Problem]:
    for index, step in enumerate(steps):
        yield from _step_problems(step, f"{where}[{index}]")


def _map_problems(map_: Map | None, where: str) -> Iterator[Problem]:
    if map_ is None:
        yield Problem(where, "a domain needs a map phase with at least one agent step")
        return
    if not map_.agent:
        yield Problem(f"{where}.agent", "no map agent: give at least one step")
    yield from _steps_problems(map_.agent, f"{where}.agent")
    if (
        isinstance(map_.max_parallel, bool)
        or not isinstance(map_.max_parallel, int)
        or map_.max_parallel < 1
    ):
        yield Problem(
            f"{where}.max_parallel", f"must be an integer >= 1, got {map_.max_parallel!r}"
        )
    yield from _positive(map_.agent_timeout, f"{where}.agent_timeout", "agent_timeout")
    for name in ("offset", "max_items"):
        value = getattr(map_, name)
        if value is not None and (not isinstance(value, int) or value < 0):
            yield Problem(f"{where}.{name}", f"must be an integer >= 0, got {value!r}")
    if isinstance(map_.input, str) and not map_.input.strip():
        yield Problem(f"{where}.input", "input is empty")
    if map_.isolation == "none" and any(step.commit_required for step in map_.agent):
        yield Problem(
            f"{where}.isolation",
            "isolation 'none' agents may not commit, but a step is commit_required",
        )
    if map_.isolation not in ("worktree", "none"):
        yield Problem(f"{where}.isolation", f"must be 'worktree' or 'none', got {map_.isolation!r}")


def _policy_problems(policy: ErrorPolicy, where: str) -> Iterator[Problem]:
    if policy.on_item_failure not in ("dlq", "retry", "skip", "stop"):
        yield Problem(
            f"{where}.on_item_failure",
            f"must be dlq, retry, skip or stop, got {policy.on_item_failure!r}",
        )
    if policy.max_failures is not None and policy.max_failures < 1:
        yield Problem(f"{where}.max_failures", "must be at least 1")
    threshold = policy.failure_threshold
    if threshold is not None and not 0 < threshold <= 1:
        yield Problem(f"{where}.failure_threshold", f"must be in (0, 1], got {threshold!r}")
    if policy.max_retries < 0:
        yield Problem(f"{where}.max_retries", "must be at least 0")


RESERVED_VARIABLES = frozenset(
    {
        "item", "item_json", "item_id", "item_index", "item_total", "map", "merge", "shell",
        "claude", "last", "step", "workflow", "worker", "env", "uuid",
    }
)  # fmt: skip
"""Variables treefork itself sets: no step may capture into them."""

RESERVED_DOMAIN_NAMES = frozenset({"supervisor", "dispatcher", "aggregator", "merge_review"})
"""Each domain is a node of the treefork graph named after it: these names are taken."""


def _domain_problems(domain: Any, where: str) -> Iterator[Problem]:
    if not isinstance(domain, Domain):
        yield Problem(where, f"not a Domain: {domain!r}")
        return
    if not isinstance(domain.name, str) or not is_valid_name(domain.name):
        yield Problem(
            f"{where}.name",
            f"{domain.name!r} is not a valid domain name (letters, digits, '.', '_', '-'; "
            "starting with a letter or digit; at most 64 characters)",
        )
    elif domain.name in RESERVED_DOMAIN_NAMES:
        yield Problem(
            f"{where}.name",
            f"{domain.name!r} names a node of the treefork graph; reserved: "
            f"{', '.join(sorted(RESERVED_DOMAIN_NAMES))}",
        )
    for index, keyword in enumerate(domain.keywords):
        if not isinstance(keyword, str) or not keyword.strip():
            yield Problem(f"{where}.keywords[{index}]", "a keyword must be a non-empty string")
    for index, pattern in enumerate(domain.paths):
        problem = glob_problem(pattern)
        if problem:
            yield Problem(f"{where}.paths[{index}]", problem)
    yield from _steps_problems(domain.setup, f"{where}.setup")
    yield from _map_problems(domain.map, f"{where}.map")
    yield from _steps_problems(domain.reduce, f"{where}.reduce")
    if domain.tests is not None and not isinstance(domain.tests, str | Shell):
        yield Problem(f"{where}.tests", "tests must be a command string or a Shell step")
    if isinstance(domain.tests, str) and not domain.tests.strip():
        yield Problem(f"{where}.tests", "tests command is empty")
    yield from _policy_problems(domain.error_policy, f"{where}.error_policy")


def validate_definition(
    domains: Sequence[Any], *, max_parallel: Any, budget: Budget | None
) -> list[Problem]:
    """Every problem with the arguments of :func:`treefork.build_graph`.

    Returns:
        The problems, empty when the definition is valid.
    """
    problems: list[Problem] = []
    if not domains:
        problems.append(Problem("domains", "define at least one domain"))
    seen: dict[str, int] = {}
    for index, domain in enumerate(domains):
        problems.extend(_domain_problems(domain, f"domains[{index}]"))
        name = getattr(domain, "name", None)
        if isinstance(name, str):
            if name in seen:
                problems.append(
                    Problem(
                        f"domains[{index}].name",
                        f"duplicate domain name {name!r} (also domains[{seen[name]}])",
                    )
                )
            seen.setdefault(name, index)
    if isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1:
        problems.append(Problem("max_parallel", f"must be an integer >= 1, got {max_parallel!r}"))
    if budget is not None:
        problems.extend(_positive(budget.tokens, "budget.tokens", "tokens"))
        problems.extend(_positive(budget.cost, "budget.cost", "cost"))
        problems.extend(_positive(budget.agent_runs, "budget.agent_runs", "agent_runs"))
    return problems
