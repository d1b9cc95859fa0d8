"""``treefork graph``: a workflow's graph as an indented outline or as a Mermaid flowchart.

Both show what runs, in order: the supervisor and dispatcher, each domain's sub-graph with
its phases (setup, map with its input and agent steps, reduce, tests) and their steps (with
``on_failure`` handlers, retries and timeouts), then the aggregator, the merge review and
the workflow's merge steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from treefork.domain import CommandItems, Domain, JsonFile
from treefork.steps import AgentStep, Claude, Shell, Step, WriteFile

__all__ = ("workflow_mermaid", "workflow_outline")

_WIDTH = 72


def _short(text: str, width: int = _WIDTH) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 3] + "..."


def step_text(step: Step) -> str:
    """One line for a step: its kind and command (or its name)."""
    if isinstance(step, Shell):
        body = f"shell: {step.command}"
    elif isinstance(step, Claude):
        body = f"claude: {step.prompt}"
    elif isinstance(step, WriteFile):
        body = f"write_file: {step.path}"
    elif isinstance(step, AgentStep):
        body = f"agent: {step.name or getattr(step.agent, '__name__', 'agent')}"
    else:  # pragma: no cover - the definition checks refuse anything else
        body = repr(step)
    extras = [
        f"retry x{step.retry.attempts}" if step.retry and step.retry.attempts > 1 else "",
        f"timeout {step.timeout:g}s" if step.timeout else "",
        f"when {step.when}" if step.when else "",
        "may fail" if step.continue_on_failure else "",
        f"capture {step.capture}" if step.capture else "",
    ]
    shown = ", ".join(extra for extra in extras if extra)
    name = f"{step.name}: " if step.name and not isinstance(step, AgentStep) else ""
    return _short(f"{name}{body}") + (f"  [{shown}]" if shown else "")


def _steps(steps: Sequence[Step], indent: str) -> Iterator[str]:
    for number, step in enumerate(steps, start=1):
        yield f"{indent}{number}. {step_text(step)}"
        if step.on_success:
            yield f"{indent}   on_success:"
            yield from _steps(step.on_success, indent + "     ")
        if step.on_failure:
            yield f"{indent}   on_failure:"
            yield from _steps(step.on_failure, indent + "     ")


def _input(domain: Domain) -> str:
    assert domain.map is not None
    source = domain.map.input
    if isinstance(source, JsonFile):
        text = f"file {source.path}"
    elif isinstance(source, CommandItems):
        text = f"command {_short(source.command, 40)}"
    elif isinstance(source, str):
        text = _short(source, 40)
    else:
        text = f"{len(source)} items"
    selection = [
        f"json_path {domain.map.json_path}" if domain.map.json_path else "",
        f"filter {domain.map.filter}" if domain.map.filter else "",
        f"sort_by {domain.map.sort_by}" if domain.map.sort_by else "",
        f"max_items {domain.map.max_items}" if domain.map.max_items is not None else "",
    ]
    chosen = ", ".join(part for part in selection if part)
    return f"input {text}" + (f" ({chosen})" if chosen else "")


def _domain_lines(domain: Domain) -> Iterator[str]:
    traits = [
        "critical" if domain.critical else "",
        f"keywords {', '.join(domain.keywords)}" if domain.keywords else "",
        f"paths {', '.join(domain.paths)}" if domain.paths else "",
    ]
    shown = "; ".join(trait for trait in traits if trait)
    yield f"  domain {domain.name}" + (f"  [{shown}]" if shown else "") + " (sub-graph)"
    if domain.setup:
        yield "    setup (domain worktree)"
        yield from _steps(domain.setup, "      ")
    if domain.map is not None:
        yield (
            f"    map: {_input(domain)}, {domain.map.max_parallel} agents at once, "
            "each in its own worktree"
        )
        yield from _steps(domain.map.agent, "      ")
    if domain.reduce:
        yield "    reduce (domain worktree, after the agents merged)"
        yield from _steps(domain.reduce, "      ")
    if domain.tests is not None:
        tests = domain.tests.command if isinstance(domain.tests, Shell) else domain.tests
        yield f"    tests: {_short(tests)}"


def workflow_outline(workflow: Any) -> str:
    """The outline of a loaded :class:`~treefork.workflow.Workflow`."""
    lines = [
        f"workflow {workflow.name} ({workflow.format} format, {workflow.path})",
        "supervisor: chooses the domains the task touches",
        "dispatcher: runs the chosen domains at once",
    ]
    for domain in workflow.domains:
        lines.extend(_domain_lines(domain))
    lines.append("aggregator: results, budget and failures of every domain")
    lines.append("merge_review: asks before anything reaches your branch")
    if workflow.merge:
        lines.append("  merge steps (session worktree, after approval)")
        lines.extend(_steps(workflow.merge, "    "))
    return "\n".join(lines)


_ENTITIES = {char: f"#{ord(char)};" for char in '#"<>{}[]|`'}


def _label(text: str) -> str:
    """Text for a Mermaid node label, with its markup characters as entity codes."""
    return "".join(_ENTITIES.get(char, char) for char in _short(text, 48))


class _Chart:
    def __init__(self) -> None:
        self.lines = ["flowchart TD"]
        self.count = 0

    def node(self, text: str, indent: str = "  ") -> str:
        self.count += 1
        name = f"n{self.count}"
        self.lines.append(f'{indent}{name}["{_label(text)}"]')
        return name

    def chain(self, steps: Sequence[Step], first: str, indent: str) -> str:
        """Steps one after the other from ``first``; returns the last node."""
        last = first
        for step in steps:
            node = self.node(step_text(step), indent)
            self.lines.append(f"{indent}{last} --> {node}")
            for after in step.on_success:
                then = self.node(f"on_success: {step_text(after)}", indent)
                self.lines.append(f"{indent}{node} -. succeeds .-> {then}")
            for handler in step.on_failure:
                failed = self.node(f"on_failure: {step_text(handler)}", indent)
                self.lines.append(f"{indent}{node} -. fails .-> {failed}")
            last = node
        return last


def workflow_mermaid(workflow: Any) -> str:
    """A Mermaid flowchart of a loaded workflow: one subgraph per domain."""
    chart = _Chart()
    chart.lines.append('  supervisor(["supervisor"]) --> dispatcher(["dispatcher"])')
    for index, domain in enumerate(workflow.domains):
        chart.lines.append(f'  subgraph d{index}["domain {_label(domain.name)}"]')
        start = chart.node("start", "    ")
        last = start
        if domain.setup:
            head = chart.node("setup", "    ")
            chart.lines.append(f"    {start} --> {head}")
            last = chart.chain(domain.setup, head, "    ")
        if domain.map is not None:
            fan = chart.node(f"map: {_input(domain)}, {domain.map.max_parallel} at once", "    ")
            chart.lines.append(f"    {last} --> {fan}")
            last = chart.chain(domain.map.agent, fan, "    ")
        if domain.reduce:
            head = chart.node("reduce", "    ")
            chart.lines.append(f"    {last} --> {head}")
            last = chart.chain(domain.reduce, head, "    ")
        if domain.tests is not None:
            tests = domain.tests.command if isinstance(domain.tests, Shell) else domain.tests
            node = chart.node(f"tests: {tests}", "    ")
            chart.lines.append(f"    {last} --> {node}")
            last = node
        chart.lines.append("  end")
        chart.lines.append(f"  dispatcher --> {start}")
        chart.lines.append(f'  {last} --> aggregator(["aggregator"])')
    chart.lines.append('  aggregator --> merge_review(["merge_review"])')
    if workflow.merge:
        head = chart.node("merge steps")
        chart.lines.append(f"  merge_review --> {head}")
        chart.chain(workflow.merge, head, "  ")
    return "\n".join(chart.lines)
