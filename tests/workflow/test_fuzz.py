"""Mutated workflows never crash ``validate``: exit 0 or 2, no traceback, bounded time and memory.

Every workflow of the corpora (Prodigy's own files, the treefork examples and the malformed
set) is mutated many times with a fixed seed: lines dropped, duplicated, swapped or
re-indented, values swapped for odd scalars, anchors and aliases, brackets, truncation.
Each mutant goes through the ``validate`` command, all of them in one fresh process: the
time of each is measured, and that process's peak memory bounds every one's.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from treefork.cli.app import _register, app
from treefork.workflow.source import MAX_ALIAS_EXPANSION, MAX_DEPTH, parse_yaml

HERE = Path(__file__).resolve().parent
CORPORA = (HERE / "prodigy_corpus", HERE / "examples", HERE / "malformed")
MUTANTS_PER_FILE = 7
MAX_SECONDS = 5.0
MAX_BYTES = 300 * 1024 * 1024

CRASH = re.compile(r"unexpected \w*(Error|Exception)|the traceback is in")

_register()

ODD_VALUES = (
    "",
    "~",
    "[]",
    "{}",
    "-1",
    "0",
    "1e309",
    "99999999999999999999999",
    "'${item}'",
    "${UNSET_VARIABLE}",
    "${map.sucessful}",
    '"$(rm -rf /)"',
    "*nowhere",
    "&anchor",
    "!!binary aGVsbG8=",
    "!custom tag",
    "|",
    ">-",
    "[[[[",
    "{a: {b: {c: [1, 2",
    "yes",
    "2026-12-07",
    "'\u202e\u0000'",
    "- - - -",
)


def _drop(lines: list[str], rng: random.Random) -> list[str]:
    del lines[rng.randrange(len(lines))]
    return lines


def _duplicate(lines: list[str], rng: random.Random) -> list[str]:
    index = rng.randrange(len(lines))
    lines.insert(index, lines[index])
    return lines


def _swap(lines: list[str], rng: random.Random) -> list[str]:
    a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[a], lines[b] = lines[b], lines[a]
    return lines


def _reindent(lines: list[str], rng: random.Random) -> list[str]:
    index = rng.randrange(len(lines))
    lines[index] = " " * rng.choice((0, 1, 3, 5, 8)) + lines[index].lstrip()
    return lines


def _odd_value(lines: list[str], rng: random.Random) -> list[str]:
    candidates = [i for i, line in enumerate(lines) if ":" in line]
    if not candidates:
        return _drop(lines, rng)
    index = rng.choice(candidates)
    key, _, _ = lines[index].partition(":")
    lines[index] = f"{key}: {rng.choice(ODD_VALUES)}"
    return lines


def _alias_bomb(lines: list[str], rng: random.Random) -> list[str]:
    depth = rng.randint(3, 9)
    bomb = ["b0: &b0 [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 10)}]" for i in range(1, depth)]
    index = rng.randrange(len(lines) + 1)
    return [*lines[:index], *bomb, *lines[index:]]


def _nest(lines: list[str], rng: random.Random) -> list[str]:
    depth = rng.choice((MAX_DEPTH - 1, MAX_DEPTH + 1, 300))
    opener = rng.choice(("[", "{a: "))
    closer = "]" if opener == "[" else "}"
    return [*lines, f"deep: {opener * depth}1{closer * depth}"]


def _truncate(lines: list[str], rng: random.Random) -> list[str]:
    text = "\n".join(lines)
    return [text[: rng.randrange(len(text) + 1)]]


def _garble(lines: list[str], rng: random.Random) -> list[str]:
    index = rng.randrange(len(lines))
    line = lines[index]
    at = rng.randrange(len(line) + 1)
    lines[index] = (
        line[:at] + rng.choice(("\t", ":", "- ", "'", '"', "#", "%", "@", "`")) + line[at:]
    )
    return lines


MUTATORS: tuple[Callable[[list[str], random.Random], list[str]], ...] = (
    _drop,
    _duplicate,
    _swap,
    _reindent,
    _odd_value,
    _odd_value,
    _alias_bomb,
    _nest,
    _truncate,
    _garble,
)


def _corpus() -> list[Path]:
    files = sorted(
        path for root in CORPORA for path in root.rglob("*") if path.suffix in {".yml", ".yaml"}
    )
    assert len(files) >= 70, files
    return files


def _mutants() -> list[tuple[str, str]]:
    cases: list[tuple[str, str]] = []
    for number, path in enumerate(_corpus()):
        original = path.read_text(encoding="utf-8").splitlines() or [""]
        for round_ in range(MUTANTS_PER_FILE):
            rng = random.Random(f"{path.name}:{round_}")
            lines = list(original)
            for _ in range(rng.randint(1, 3)):
                lines = rng.choice(MUTATORS)(lines or [""], rng)
            cases.append((f"{number:03d}-{round_}-{path.stem}", "\n".join(lines) + "\n"))
    return cases


def test_the_limits_are_what_the_docs_say() -> None:
    assert (MAX_DEPTH, MAX_ALIAS_EXPANSION) == (64, 100_000)


def peak_rss_kb() -> int:
    """This process's peak resident memory. Not ``ru_maxrss``: Linux carries that across
    ``execve``, so a child of a big pytest process would report pytest's peak."""
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def _validate_each(folder: Path) -> dict[str, object]:
    """Run ``validate`` on every file of ``folder`` in this process; what happened to each."""
    runner = CliRunner()
    outcomes: dict[str, object] = {}
    for path in sorted(folder.glob("*.yml")):
        started = time.perf_counter()
        result = runner.invoke(app, ["validate", str(path)])
        seconds = time.perf_counter() - started
        crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
        outcomes[path.stem] = {
            "exit": result.exit_code,
            "seconds": seconds,
            "crash": repr(result.exception) if crashed else None,
            "output": result.output,
        }
    outcomes["peak_rss_kb"] = peak_rss_kb()
    return outcomes


def test_five_hundred_mutated_workflows_exit_0_or_2_quickly_and_without_a_traceback(
    tmp_path: Path,
) -> None:
    cases = _mutants()
    assert len(cases) >= 500
    for name, text in cases:
        (tmp_path / f"{name}.yml").write_text(text, encoding="utf-8")
    # A fresh process, so its peak memory bounds every single validation's.
    done = subprocess.run(
        [sys.executable, __file__, str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    outcomes = json.loads(done.stdout)
    assert outcomes.pop("peak_rss_kb") < MAX_BYTES // 1024
    failures: list[str] = []
    exits = {0: 0, 2: 0}
    for name, outcome in outcomes.items():
        output = outcome["output"]
        if outcome["exit"] not in exits or outcome["crash"]:
            failures.append(f"{name}: exit {outcome['exit']}, {outcome['crash']}\n{output}")
        elif "Traceback" in output or CRASH.search(output):
            failures.append(f"{name}: traceback or unexpected error\n{output}")
        elif outcome["seconds"] > MAX_SECONDS:
            failures.append(f"{name}: took {outcome['seconds']:.1f} s")
        else:
            exits[outcome["exit"]] += 1
    assert len(outcomes) == len(cases)
    assert not failures, "\n\n".join(failures[:10])
    # The mutations are not all fatal: some mutants stay valid workflows.
    assert exits[0] >= 15 and exits[2] >= 250, exits


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000])
def test_nesting_past_the_limit_is_refused_with_its_line(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "deep.yml"
    path.write_text(
        "name: deep\nsetup:\n  - shell: echo\n\nx: " + "[" * depth + "]" * depth + "\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}:5:" in result.output
    assert f"nest more than {MAX_DEPTH} levels deep" in result.output


def test_nesting_at_the_limit_is_read() -> None:
    # The top-level mapping is the first level.
    nested = "[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1)
    document = parse_yaml(f"x: {nested}\n", name="deep.yml")
    value = document.data["x"]
    for _ in range(MAX_DEPTH - 2):
        (value,) = value
    assert value == [1]


def test_an_alias_bomb_is_refused_in_under_a_second_and_200_mb(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yml"
    lines = ["name: bomb", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path.write_text("\n".join([*lines, "setup:", "  - shell: echo hi", ""]), encoding="utf-8")
    script = (
        "import sys, time\n"
        "from treefork.errors import WorkflowError\n"
        "from treefork.workflow import load_workflow\n"
        "started = time.perf_counter()\n"
        "try:\n"
        "    load_workflow(sys.argv[1], env={})\n"
        "except WorkflowError as error:\n"
        "    print(error)\n"
        "print(time.perf_counter() - started)\n"
        "print([line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')][0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    *message, seconds, kilobytes = done.stdout.strip().splitlines()
    text = "\n".join(message)
    assert f"{path}:6:" in text and "YAML aliases expand the document past 100,000" in text
    assert float(seconds) < 1.0
    assert int(kilobytes) < 200 * 1024


def test_anchors_and_aliases_within_the_limit_are_read() -> None:
    document = parse_yaml(
        "base: &base {timeout: 30, retries: 2}\nsteps:\n  - <<: *base\n    shell: make\n"
        "  - *base\n",
        name="anchors.yml",
    )
    assert document.data["steps"] == [
        {"timeout": 30, "retries": 2, "shell": "make"},
        {"timeout": 30, "retries": 2},
    ]


if __name__ == "__main__":
    print(json.dumps(_validate_each(Path(sys.argv[1]))))
