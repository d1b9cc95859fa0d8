"""Checks that need more than the schema: expressions, env, parallelism, steps, references.

They run on the raw document next to the schema validation, so one run reports every
problem in a file: a misspelt key elsewhere does not hide a bad filter here. Each check
reads the document defensively (:mod:`treefork.workflow.layout`) and points at the exact key
or value, inside the string for filter, sort_by and ``${...}`` references.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from treefork.core.filter import FilterError, parse_field_path, parse_filter
from treefork.core.items import compile_json_path
from treefork.core.naming import is_valid_name
from treefork.core.sorting import SortError, parse_sort_spec
from treefork.core.validation import RESERVED_VARIABLES, glob_problem
from treefork.errors import Problem
from treefork.workflow.env import env_text, resolve_count, resolve_env, substitute_env
from treefork.workflow.layout import (
    COMMAND_KEYS,
    DomainLayout,
    StepAt,
    domain_layouts,
    domain_name_for,
    get,
    phase_steps,
    walk_steps,
)
from treefork.workflow.references import (
    ITEM_ROOTS,
    PhaseScope,
    phase_reference_problems,
)
from treefork.workflow.schema import POLICY_SHORTCUTS, REFUSED_STEP_KINDS
from treefork.workflow.source import DataPath, SourceMap, dotted
from treefork.workflow.sources import EnvSources
from treefork.workflow.unsupported import unsupported_warnings

__all__ = (
    "Findings",
    "ResolvedEnv",
    "check_document",
    "parse_file_mode",
    "resolve_envs",
)

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED_CAPTURES = RESERVED_VARIABLES


@dataclass(frozen=True)
class Findings:
    """Problems (the file cannot be used) and warnings (it can, with caveats)."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    resolved: ResolvedEnv | None = None
    """The env values with references resolved (None for a document that is no mapping)."""


@dataclass(frozen=True)
class ResolvedEnv:
    """Env values with their references resolved."""

    workflow: dict[str, str]
    """The workflow's own ``env``."""
    domains: dict[str, dict[str, str]]
    """Per domain: the workflow env overlaid with the domain's ``env``."""
    process: Mapping[str, str]
    """The process environment the workflow was loaded with (the env files over it)."""
    secrets: Mapping[str, str] = field(default_factory=dict)
    """Each secret's value: the ``secrets`` block and env entries with ``secret: true``
    (already in ``workflow`` and ``domains``, over every other value)."""
    profile: str | None = None
    """The active profile, if any."""

    def chain(self, domain: str | None) -> list[Mapping[str, str]]:
        """Where names are looked up for a domain (None: the workflow level)."""
        first = self.domains.get(domain, self.workflow) if domain else self.workflow
        return [first, self.process]


def _raw_env(node: Any) -> dict[str, str]:
    if not isinstance(node, dict):
        return {}
    return {str(name): env_text(value) for name, value in node.items()}


def _marked_secrets(block: Any, values: Mapping[str, str]) -> dict[str, str]:
    """The resolved values of an env block's entries with ``secret: true``."""
    if not isinstance(block, dict):
        return {}
    return {
        str(name): values[str(name)]
        for name, value in block.items()
        if isinstance(value, dict) and value.get("secret") is True and str(name) in values
    }


def resolve_envs(
    data: Any, sources: EnvSources
) -> tuple[ResolvedEnv, list[tuple[DataPath, str]], list[tuple[DataPath, str]]]:
    """Resolve the workflow env and every domain env.

    The active profile's variables are entries of the workflow env (over its own), and the
    secrets are laid over every resolved env.

    Returns:
        The resolved env, problems (cycles) and warnings (unknown names), each with the path
        of the env entry.
    """
    process = sources.process
    raw = _raw_env(get(data, ("env",)))
    paths: dict[str, DataPath] = {name: ("env", name) for name in raw}
    for name in sources.profile_env:
        paths[name] = ("profiles", str(sources.profile), name)
    workflow = resolve_env({**raw, **sources.profile_env}, outer=[process])
    problems = [(paths[name], message) for name, message in workflow.problems]
    warnings = [(paths[name], message) for name, message in workflow.warnings]
    secrets = _marked_secrets(get(data, ("env",)), workflow.values)
    per_domain: dict[str, dict[str, str]] = {}
    files = sources.file_values
    for domain in domain_layouts(data):
        if not domain.path:  # Prodigy's one domain: the workflow env is its env
            per_domain[domain.name] = {**files, **workflow.values}
            continue
        own_block = get(data, domain.at("env"))
        own = resolve_env(_raw_env(own_block), outer=[workflow.values, process])
        per_domain[domain.name] = {**files, **workflow.values, **own.values}
        problems += [(domain.at("env", name), message) for name, message in own.problems]
        warnings += [(domain.at("env", name), message) for name, message in own.warnings]
        secrets.update(_marked_secrets(own_block, own.values))
    secrets.update(sources.secrets)
    values = {**files, **workflow.values, **sources.secrets}
    per_domain = {name: {**env, **sources.secrets} for name, env in per_domain.items()}
    resolved = ResolvedEnv(values, per_domain, process, secrets, sources.profile)
    return resolved, problems, warnings


def parse_file_mode(mode: Any) -> int | None:
    """File permissions from ``"0644"``, ``"644"``, ``0o644`` or ``644`` (read as octal)."""
    if mode is None:
        return None
    text = str(mode).strip().removeprefix("0o")
    if isinstance(mode, bool) or not re.fullmatch(r"[0-7]{1,4}", text):
        raise ValueError(f"mode must be octal permissions such as '0644', got {mode!r}")
    return int(text, 8)


def _captures(step: Any) -> bool:
    if not isinstance(step, dict):
        return False
    return isinstance(step.get("capture"), str) or isinstance(step.get("capture_output"), str)


@dataclass
class _Checker:
    data: Any
    source: SourceMap
    findings: Findings

    def problem(self, path: DataPath, message: str, *, key: bool = False) -> None:
        self.findings.problems.append(self.source.problem(path, message, key=key))

    def problem_at(self, path: DataPath, offset: int, message: str) -> None:
        position = self.source.position_at_offset(path, offset)
        self.findings.problems.append(
            Problem(self.source.at(position), f"{dotted(path)}: {message}")
        )

    def warn(self, path: DataPath, message: str) -> None:
        where = self.source.where(path, key=not isinstance(get(self.data, path), str))
        self.findings.warnings.append(f"{where}: {dotted(path)}: {message}")

    def list_at(self, path: DataPath) -> list[Any]:
        value = get(self.data, path)
        return value if isinstance(value, list) else []

    # -- steps

    def check_step(self, at: StepAt) -> None:
        kinds = [key for key in COMMAND_KEYS if key in at.step]
        if not kinds and any(key in at.step for key in REFUSED_STEP_KINDS):
            pass  # the schema names the refused kind and why
        elif not kinds:
            self.problem(at.path, "a step needs one of shell, claude or write_file")
        elif len(kinds) > 1:
            self.problem(
                (*at.path, kinds[1]),
                f"a step runs exactly one of shell, claude or write_file; this one has "
                f"{' and '.join(kinds)} (make them separate steps)",
                key=True,
            )
        for kind in ("shell", "claude"):
            value = at.step.get(kind, "-")
            if value is None or (isinstance(value, str) and not value.strip()):
                self.problem((*at.path, kind), f"the {kind} command is empty")
        if "write_file" in at.step and at.step["write_file"] is None:
            self.problem((*at.path, "write_file"), "write_file needs path and content")
        self.check_capture(at)
        self.check_mode(at)

    def check_capture(self, at: StepAt) -> None:
        capture, output = at.step.get("capture"), at.step.get("capture_output")
        for key, name in (("capture", capture), ("capture_output", output)):
            if isinstance(name, str) and name != "shell.output":
                self.check_variable_name((*at.path, key), name)
        if isinstance(capture, str) and output not in (None, False):
            self.problem(
                (*at.path, "capture_output"),
                "use capture or capture_output, not both",
                key=True,
            )

    def check_variable_name(self, path: DataPath, name: str) -> None:
        if not _IDENTIFIER.fullmatch(name):
            self.problem(path, f"a variable name is letters, digits and _, got {name!r}")
        elif name in _RESERVED_CAPTURES:
            self.problem(path, f"{name!r} is reserved; capture into another name")

    def check_mode(self, at: StepAt) -> None:
        mode = get(at.step, ("write_file", "mode"))
        try:
            parse_file_mode(mode)
        except ValueError as error:
            self.problem((*at.path, "write_file", "mode"), str(error))

    def check_phase(self, path: DataPath) -> None:
        for at in walk_steps(phase_steps(self.data, path)):
            self.check_step(at)
        block = get(self.data, path)
        if isinstance(block, dict) and isinstance(block.get("capture_outputs"), dict):
            self.check_capture_outputs(path, block)

    def check_capture_outputs(self, path: DataPath, block: dict[str, Any]) -> None:
        commands = self.list_at((*path, "commands"))
        taken: dict[int, str] = {}
        for name, spec in block["capture_outputs"].items():
            where = (*path, "capture_outputs", name)
            self.check_variable_name(where, str(name))
            index = spec.get("command_index") if isinstance(spec, dict) else spec
            if not isinstance(index, int) or isinstance(index, bool):
                continue
            if index >= len(commands):
                count = len(commands)
                plural = "s" if count != 1 else ""
                message = f"command {index} does not exist: setup has {count} command{plural}"
                self.problem(where, f"{message} (counted from 0)")
            elif index in taken or _captures(commands[index]):
                other = taken.get(index) or "its own capture"
                self.problem(where, f"setup command {index} already captures into {other}")
            taken.setdefault(index, str(name))

    # -- map

    def check_expressions(self, path: DataPath) -> None:
        json_path = get(self.data, (*path, "json_path"))
        if isinstance(json_path, str):
            try:
                compile_json_path(json_path)
            except ValueError as error:
                self.problem((*path, "json_path"), str(error))
        self.check_parsed((*path, "filter"), parse_filter, "filter")
        self.check_parsed((*path, "sort_by"), parse_sort_spec, "sort_by")
        self.check_parsed((*path, "distinct"), parse_field_path, "distinct field")

    def check_parsed(self, path: DataPath, parse: Callable[[str], object], what: str) -> None:
        text = get(self.data, path)
        if not isinstance(text, str):
            return
        try:
            parse(text)
        except (FilterError, SortError) as error:
            column = error.position + 1
            self.problem_at(
                path,
                error.position,
                f"invalid {what}: {error.reason} (column {column} of {text!r})",
            )

    def check_map(self, domain: DomainLayout, resolved: ResolvedEnv) -> None:
        path = domain.at("map")
        if not isinstance(get(self.data, path), dict):
            return
        self.check_expressions(path)
        self.check_count((*path, "max_parallel"), resolved.chain(domain.name))
        self.check_input((*path, "input"), resolved.chain(domain.name))
        template = get(self.data, (*path, "agent_template"))
        steps = template.get("commands") if isinstance(template, dict) else template
        if isinstance(steps, list) and not steps:
            self.problem((*path, "agent_template"), "no steps: a map agent needs at least one step")
        self.check_phase((*path, "agent_template"))
        outer = get(self.data, (*path, "agent_timeout_secs"))
        inner = get(self.data, (*path, "timeout_config", "agent_timeout_secs"))
        if outer is not None and inner is not None and outer != inner:
            self.problem(
                (*path, "timeout_config", "agent_timeout_secs"),
                f"conflicts with map.agent_timeout_secs ({outer!r}); set only one",
            )

    def check_count(self, path: DataPath, chain: list[Mapping[str, str]]) -> None:
        value = get(self.data, path)
        if isinstance(value, int | str) and not isinstance(value, bool):
            _, problem = resolve_count(value, chain)
            if problem is not None:
                self.problem(path, problem)

    def check_input(self, path: DataPath, chain: list[Mapping[str, str]]) -> None:
        text = get(self.data, path)
        if not isinstance(text, str):
            return
        if not text.strip():
            self.problem(path, "input is empty: give a JSON file or a command")
            return
        _, left = substitute_env(text, chain)
        for reference in left:
            if not reference.root.isupper():
                self.problem_at(
                    path,
                    reference.start,
                    f"${{{reference.expression}}} cannot be used here: map.input only takes "
                    "env variables (${NAME}), replaced when the workflow loads",
                )

    # -- references

    def check_references(self, domain: DomainLayout, resolved: ResolvedEnv) -> None:
        env = set(resolved.domains.get(domain.name, {}))
        setup = PhaseScope("setup", set(env))
        self.findings.problems.extend(
            phase_reference_problems(phase_steps(self.data, domain.at("setup")), setup, self.source)
        )
        captured = setup.known | self.capture_output_names(domain.at("setup"))
        for scope, path in (
            (PhaseScope("agent", captured | ITEM_ROOTS), domain.at("map", "agent_template")),
            (PhaseScope("reduce", captured | {"map"}), domain.at("reduce")),
        ):
            steps = phase_steps(self.data, path)
            self.findings.problems.extend(phase_reference_problems(steps, scope, self.source))

    def capture_output_names(self, path: DataPath) -> set[str]:
        names = get(self.data, (*path, "capture_outputs"))
        return {str(name) for name in names} if isinstance(names, dict) else set()

    def check_merge_references(self, resolved: ResolvedEnv) -> None:
        scope = PhaseScope("merge", set(resolved.workflow) | {"merge"})
        steps = phase_steps(self.data, ("merge",))
        self.findings.problems.extend(phase_reference_problems(steps, scope, self.source))

    # -- domains and the whole workflow

    def check_domain(self, domain: DomainLayout, resolved: ResolvedEnv) -> None:
        if domain.path:
            self.check_treefork_domain(domain)
        self.check_phase(domain.at("setup"))
        self.check_map(domain, resolved)
        self.check_phase(domain.at("reduce"))
        self.check_references(domain, resolved)

    def check_treefork_domain(self, domain: DomainLayout) -> None:
        if not is_valid_name(domain.name):
            self.problem(
                domain.path,
                f"{domain.name!r} cannot be a domain name: use letters, digits, '.', '_' and "
                "'-', starting with a letter or digit, at most 64 characters",
                key=True,
            )
        for index, keyword in enumerate(self.list_at(domain.at("keywords"))):
            if isinstance(keyword, str) and not keyword.strip():
                self.problem(domain.at("keywords", index), "a keyword must not be empty")
        for index, pattern in enumerate(self.list_at(domain.at("paths"))):
            problem = glob_problem(pattern) if isinstance(pattern, str) else None
            if problem is not None:
                self.problem(domain.at("paths", index), problem)

    def check_policy_shortcuts(self) -> None:
        policy = get(self.data, ("error_policy",))
        if not isinstance(policy, dict):
            return
        for name in POLICY_SHORTCUTS:
            if name in policy and name in self.data and policy[name] != self.data[name]:
                self.problem(
                    (name,),
                    f"conflicts with error_policy.{name} ({policy[name]!r}); set it in one place",
                    key=True,
                )

    def check_prodigy_name(self) -> None:
        name = self.data.get("name")
        if "domains" in self.data or not isinstance(name, str):
            return
        if domain_name_for(name) != name:
            self.warn(
                ("name",),
                f"{name!r} is used as the domain name {domain_name_for(name)!r} (branch names "
                "allow letters, digits, '.', '_' and '-')",
            )

    def check_workflow(self, resolved: ResolvedEnv) -> None:
        self.check_prodigy_name()
        if isinstance(self.data.get("domains"), dict) and not self.data["domains"]:
            self.problem(("domains",), "no domains: define at least one")
        self.check_count(("max_parallel",), resolved.chain(None))
        self.check_policy_shortcuts()
        for domain in domain_layouts(self.data):
            self.check_domain(domain, resolved)
        self.check_phase(("merge",))
        self.check_merge_references(resolved)


def check_document(
    data: Any, source: SourceMap, process_env: Mapping[str, str] | EnvSources
) -> Findings:
    """Every semantic problem and unsupported-feature warning in a workflow document.

    Args:
        data: The document (plain values); need not be valid.
        source: Positions in the file.
        process_env: The process environment (for ``max_parallel: ${NAME}`` and env
            values), or everything :func:`~treefork.workflow.sources.load_env_sources`
            found: env files, the active profile, secrets.

    Returns:
        Problems and warnings, each located at ``file:line:col``.
    """
    if not isinstance(data, dict):
        return Findings()
    sources = (
        process_env
        if isinstance(process_env, EnvSources)
        else EnvSources(process=dict(process_env))
    )
    resolved, env_problems, env_warnings = resolve_envs(data, sources)
    findings = Findings(resolved=resolved, warnings=list(sources.warnings))
    checker = _Checker(data, source, findings)
    for path, message in env_problems:
        checker.problem(path, message)
    for path, message in env_warnings:
        checker.warn(path, message)
    checker.check_workflow(resolved)
    findings.warnings.extend(unsupported_warnings(data, domain_layouts(data), source))
    unique = sorted(dict.fromkeys(findings.warnings), key=_warning_position)
    findings.warnings[:] = unique
    return findings


def _warning_position(warning: str) -> tuple[int, int]:
    parts = warning.split(": ", 1)[0].rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return int(parts[1]), int(parts[2])
    return 0, 0
