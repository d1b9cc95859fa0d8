"""Static check of ``${...}`` references: every name a step uses must exist when it runs.

What is in scope, phase by phase (``env`` is the workflow's and the domain's env names, and
a step's own ``env`` names for that step):

- setup: env, and variables captured by earlier setup steps;
- map agents: env, everything setup captured, ``item`` / ``item_json`` / ``item_id`` /
  ``item_index`` / ``item_total``, and variables captured by earlier agent steps;
- reduce: env, everything setup captured, ``map`` (``map.successful``, ``map.results``, ...)
  and variables captured by earlier reduce steps;
- merge: the workflow env, ``merge`` and variables captured by earlier merge steps;
- everywhere, ``shell`` (``${shell.output}``) once a shell step has run in the phase, and in
  the ``on_failure`` steps of a shell step.

The check renders each template with :mod:`treefork.core.interpolate` itself, every name in
scope standing for a value that has every field, so the rules are exactly the ones used at
run time: names a shell script assigns itself, references in shell comments, ``$${``
escapes and defaults (``${name:-x}``, ``${name|default:x}``) are all fine. Upper-case
names (``${HOME}``) are left to the process environment and never reported.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from treefork.core.interpolate import references, render_shell, render_text
from treefork.core.items import MAP_FIELDS
from treefork.errors import InterpolationError, Problem
from treefork.workflow.layout import PhaseKind, StepAt, handler_steps, step_kind, success_steps
from treefork.workflow.source import DataPath, SourceMap, dotted

__all__ = ("ITEM_ROOTS", "PhaseScope", "capture_root", "phase_reference_problems")

ITEM_ROOTS = frozenset({"item", "item_json", "item_id", "item_index", "item_total"})
"""Names every map agent has."""

_ENVIRONMENT_STYLE = re.compile(r"[A-Z_][A-Z0-9_]*")
_ROOT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_ROUNDS = 64
_PHASE_NAMES: dict[str, str] = {
    "setup": "setup",
    "agent": "map.agent_template",
    "reduce": "reduce",
    "merge": "merge",
}


class _AnyValue(int, Mapping[str, Any]):
    """Stands for a variable's value during the check: has every field, renders as ``0``."""

    __hash__ = int.__hash__
    __eq__ = int.__eq__

    def __getitem__(self, key: str) -> _AnyValue:
        return self

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


_ANY = _AnyValue(0)


def _root(expression: str) -> str:
    match = _ROOT.match(expression)
    return match.group(0) if match else expression


def capture_root(name: Any) -> str | None:
    """The variable a ``capture`` / ``capture_output`` name puts in scope."""
    if not isinstance(name, str) or not name.strip():
        return None
    return _root(name.strip())


FIXED_FIELDS: Mapping[str, frozenset[str]] = {
    "map": frozenset(MAP_FIELDS),
    "workflow": frozenset({"name", "id", "iteration"}),
    "worker": frozenset({"id"}),
    "step": frozenset({"name", "index"}),
    "last": frozenset({"output", "exit_code"}),
    "claude": frozenset({"output"}),
}
"""Variables with a fixed set of fields: a reference to another field is a typo."""

ALWAYS = frozenset({"workflow", "worker", "env", "uuid", "step"})
"""Names every step has (computed at run time)."""


def _stand_in(name: str) -> Any:
    fields = FIXED_FIELDS.get(name)
    return dict.fromkeys(fields, _ANY) if fields is not None else _ANY


def _unresolved(template: str, names: Collection[str], *, shell: bool) -> list[InterpolationError]:
    scope: dict[str, Any] = {name: _stand_in(name) for name in names}
    found: list[InterpolationError] = []
    seen: set[tuple[str, str]] = set()
    for _ in range(_MAX_ROUNDS):
        try:
            if shell:
                render_shell(template, scope)
            else:
                render_text(template, scope)
        except InterpolationError as error:
            if (error.reference, error.reason) in seen:
                break
            seen.add((error.reference, error.reason))
            root = _root(error.reference)
            if not _ENVIRONMENT_STYLE.fullmatch(root):
                found.append(error)
            scope[root] = _ANY
        else:
            break
    return found


def _fragment(template: str, reference: str) -> tuple[str, int]:
    """The text of the first reference to ``reference`` (or its root) and its occurrence."""
    root = _root(reference)
    for candidate in references(template):
        if candidate.expression == reference or candidate.root == root:
            text = template[candidate.start : candidate.end]
            return text, template.count(text, 0, candidate.start)
    return "${" + reference, 0


@dataclass
class PhaseScope:
    """The names in scope while walking one phase's steps in order."""

    kind: PhaseKind
    known: set[str]
    later_captures: dict[str, DataPath] = field(default_factory=dict)
    """Variables captured by steps not yet reached (for a better message)."""
    shell_ran: bool = False
    ran: set[str] = field(default_factory=set)
    """The kinds of step that ran before (``last`` once any has, ``claude`` after one)."""

    def names_for(self, step: Mapping[str, Any]) -> set[str]:
        env = step.get("env")
        names = set(self.known) | ALWAYS | ({"shell"} if self.shell_ran else set())
        names |= ({"last"} if self.ran else set()) | ({"claude"} & self.ran)
        return names | ({str(name) for name in env} if isinstance(env, dict) else set())

    def _map_problem(self, error: InterpolationError, shown: str, phase: str) -> str | None:
        if self.kind != "reduce":
            return f"{shown} is not available in {phase}: map results exist only in reduce"
        if "has no field" in error.reason:
            return _unknown_map_field(error.reference, shown)
        return None

    def explain(self, error: InterpolationError, fragment: str) -> str:
        root, phase = _root(error.reference), _PHASE_NAMES[self.kind]
        shown = fragment if fragment.endswith("}") else f"${{{error.reference}}}"
        if root in ITEM_ROOTS and self.kind != "agent":
            hint = "; ${map.results} holds every item's result" if self.kind == "reduce" else ""
            return f"{shown} is not available in {phase}: only map agents have an item{hint}"
        if root in FIXED_FIELDS and (problem := self._field_problem(error, root, shown, phase)):
            return problem
        if root == "merge" and self.kind != "merge":
            return f"{shown} is only available in merge steps"
        if root in _NEEDS_EARLIER:
            return f"{shown} needs {_NEEDS_EARLIER[root]}, and none runs before this one in {phase}"
        if root in self.later_captures:
            where = dotted(self.later_captures[root])
            return f"unknown variable ${{{root}}}: it is captured only later, by {where}"
        return error.reason

    def _field_problem(
        self, error: InterpolationError, root: str, shown: str, phase: str
    ) -> str | None:
        if root == "map":
            return self._map_problem(error, shown, phase)
        if "has no field" in error.reason:
            return _unknown_field(root, error.reference, shown)
        return None


_NEEDS_EARLIER = {
    "shell": "the output of an earlier shell step",
    "claude": "the output of an earlier claude step",
    "last": "an earlier step",
}


def _unknown_field(root: str, reference: str, shown: str) -> str:
    """``${workflow.nam}``: the field, the one it was probably meant to be, and the list."""
    field_name = _ROOT.match(reference[len(root) + 1 :] or "?")
    wrong = field_name.group(0) if field_name else reference
    fields = sorted(FIXED_FIELDS[root])
    close = difflib.get_close_matches(wrong, fields, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{shown}: {root} has no field {wrong!r}{hint} (its fields: {', '.join(fields)})"


def _unknown_map_field(reference: str, shown: str) -> str:
    """``${map.sucessful}``: the field, the one it was probably meant to be, and the list."""
    field_name = _ROOT.match(reference[len("map.") :] or "?")
    wrong = field_name.group(0) if field_name else reference
    close = difflib.get_close_matches(wrong, sorted(MAP_FIELDS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    fields = ", ".join(sorted(MAP_FIELDS))
    return f"{shown}: map has no field {wrong!r}{hint} (its fields: {fields})"


_TEXT_FIELDS: tuple[tuple[tuple[str, ...], bool], ...] = (
    (("shell",), True),
    (("claude",), False),
    (("write_file", "path"), False),
    (("write_file", "content"), False),
    (("when",), False),
    (("working_dir",), False),
)


def _templates(step: Mapping[str, Any]) -> Iterator[tuple[tuple[str, ...], str, bool]]:
    for keys, shell in _TEXT_FIELDS:
        value: Any = step
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str):
            yield keys, value, shell
    env = step.get("env")
    if isinstance(env, dict):
        for name, value in env.items():
            if isinstance(value, str):
                yield ("env", name), value, False


_COMPUTED_FORM = re.compile(r"\$\{(?P<kind>date|file|cmd|json|env):")
_COMPUTED_REFUSALS = {
    "date": "is not supported: use $(date +FORMAT) in a shell command",
    "file": "is not supported: read the file in a shell command ($(cat PATH)), or capture "
    "it in an earlier step",
    "cmd": "is not supported: commands run only as shell steps (an earlier step with "
    "capture: NAME keeps the output for ${NAME})",
    "json": "is not supported: capture the JSON (capture_format: json) and use "
    "${NAME.field}, or jq in a shell command",
    "env": "is for secrets: in a step write ${NAME} or ${env.NAME}",
}


def _computed_form_problems(path: DataPath, template: str, source: SourceMap) -> Iterator[Problem]:
    """Prodigy's ``${date:...}``-style computed variables, which treefork refuses."""
    for match in _COMPUTED_FORM.finditer(template):
        kind = match.group("kind")
        end = template.find("}", match.end())
        fragment = template[match.start() : end + 1 if end != -1 else match.end()]
        occurrence = template.count(fragment, 0, match.start())
        position = source.position_in_value(path, fragment, occurrence)
        message = f"{fragment} {_COMPUTED_REFUSALS[kind]}"
        yield Problem(source.at(position), f"{dotted(path)}: {message}")


def _step_problems(
    at: StepAt, names: set[str], scope: PhaseScope, source: SourceMap
) -> Iterator[Problem]:
    for keys, template, shell in _templates(at.step):
        path = (*at.path, *keys)
        yield from _computed_form_problems(path, template, source)
        for error in _unresolved(template, names, shell=shell):
            fragment, occurrence = _fragment(template, error.reference)
            position = source.position_in_value(path, fragment, occurrence)
            message = scope.explain(error, fragment)
            yield Problem(source.at(position), f"{dotted(path)}: {message}")


def _handler_problems(
    at: StepAt, names: set[str], scope: PhaseScope, source: SourceMap
) -> Iterator[Problem]:
    kind = step_kind(at.step)
    inner = names | {"last"} | ({"shell"} if kind == "shell" else set())
    after_success = inner | ({"claude"} if kind == "claude" else set())
    for after in success_steps(at):
        after_names = after_success | scope.names_for(after.step)
        yield from _step_problems(after, after_names, scope, source)
        yield from _handler_problems(after, after_names, scope, source)
    for handler in handler_steps(at):
        handler_names = inner | scope.names_for(handler.step)
        yield from _step_problems(handler, handler_names, scope, source)
        yield from _handler_problems(handler, handler_names, scope, source)


def phase_reference_problems(
    steps: list[StepAt], scope: PhaseScope, source: SourceMap
) -> Iterator[Problem]:
    """Check the references of a phase's steps in order, adding captures as they happen.

    ``scope`` is updated: after the walk, ``scope.known`` holds the phase's captures too.
    """
    for at in steps:
        root = capture_root(at.step.get("capture")) or _captured_by_output(at.step)
        if root is not None and root not in scope.known:
            scope.later_captures.setdefault(root, at.path)
    for at in steps:
        names = scope.names_for(at.step)
        yield from _step_problems(at, names, scope, source)
        yield from _handler_problems(at, names, scope, source)
        for root in (capture_root(at.step.get("capture")), _captured_by_output(at.step)):
            if root is not None:
                scope.known.add(root)
                scope.later_captures.pop(root, None)
        scope.shell_ran = scope.shell_ran or step_kind(at.step) == "shell"
        scope.ran.add(str(step_kind(at.step)))


def _captured_by_output(step: Mapping[str, Any]) -> str | None:
    value = step.get("capture_output")
    return capture_root(value) if isinstance(value, str) else None
