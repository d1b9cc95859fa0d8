"""What finding a step's escaped processes costs: ``run_process(["true"])`` with the scan of
``/proc/*/environ`` for the command's tag, and with the scan replaced by one that finds
nothing, alternated in the same run. Medians of 5 rounds of 100 commands.

    .venv/bin/python benchmarks/process_tag.py
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import anyio

from treefork.environment import scrubbed_environment
from treefork.runners import process

ROUNDS = 5
COMMANDS = 100


async def _per_command(count: int) -> float:
    environment = scrubbed_environment()
    started = time.perf_counter()
    for _ in range(count):
        await process.run_process(["true"], cwd=Path("/tmp"), env=environment)
    return (time.perf_counter() - started) / count * 1000


def _finds_nothing(entry: bytes) -> list[int]:
    del entry
    return []


async def main() -> None:
    scan = process._tagged
    results: dict[str, list[float]] = {"with the scan": [], "without it": []}
    for _ in range(ROUNDS):
        process._tagged = scan
        results["with the scan"].append(await _per_command(COMMANDS))
        process._tagged = _finds_nothing
        results["without it"].append(await _per_command(COMMANDS))
    process._tagged = scan
    for name, values in results.items():
        print(f"{name}: {statistics.median(values):.2f} ms per command")


def _processes() -> int:
    return sum(entry.name.isdigit() for entry in Path("/proc").iterdir())


if __name__ == "__main__":
    anyio.run(main)
    print(f"({_processes()} processes on the machine)")
