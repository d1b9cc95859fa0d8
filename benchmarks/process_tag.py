"""What finding a step's escaped processes costs: ``run_process(["true"])`` with the scan of
``/proc/*/environ`` for the command's tag, and with the scan replaced by one that finds
nothing, alternated in the same run. Medians of 5 rounds of 100 commands.

    .venv/bin/python benchmarks/process_tag.py
"""

import statistics
import time
from pathlib import Path

import anyio

import treefork.runners.process as p
from treefork.environment import scrubbed_environment


async def run(n):
    env = scrubbed_environment()
    t = time.perf_counter()
    for _ in range(n):
        await p.run_process(["true"], cwd=Path("/tmp"), env=env)
    return (time.perf_counter() - t) / n * 1000


async def main():
    real = p._tagged
    res = {"with tag scan": [], "without": []}
    for _ in range(5):
        p._tagged = real
        res["with tag scan"].append(await run(100))
        p._tagged = lambda entry: []
        res["without"].append(await run(100))
    for k, v in res.items():
        print(k, f"{statistics.median(v):.2f} ms per command")


anyio.run(main)
