"""Isolation cost per agent: create its worktree, merge its one-file commit back, clean up.

Agents do no work besides writing one file and committing it; they run one at a time
(max_parallel 1), so every figure is git's cost and the orchestration around it. *Per
agent* is the median time between one agent's end and the next one's, the steady state of a
stream of agents: for the peer, ``worktree add -b``, commit, ``merge --no-ff`` into the
parent worktree and ``worktree remove``; for treefork, a pooled worktree switched to the
agent's branch, the commit, one ``status``, the merge in the object store and handing the
worktree back (the next agent's worktree is switched while this one merges). *First agent*
is the time from the job's start to the first agent's end: for treefork it includes the
pool's first worktree. *Whole job / agents*
includes every fixed cost (treefork also removes the pool and merges into the original
branch). Targets (steady state): at least 8x below the peer on 20,000 files, 3x on 2,000.

    .venv/bin/python benchmarks/isolation.py [--runs 3] [--files 2000 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import time
from dataclasses import dataclass
from typing import Any

from common import Row, fresh_repository, print_rows, table, write_section
from workloads import run_peer_job, run_treefork

TARGETS = {2000: 3.0, 20000: 8.0}
AGENTS = {20: 20, 2000: 10, 20000: 4}


@dataclass(frozen=True)
class Run:
    """One measured job."""

    wall: float
    first: float
    steady: float


def _steady(ends: list[float]) -> float:
    """Median time between consecutive agents' ends."""
    ends = sorted(ends)
    gaps = [later - earlier for earlier, later in itertools.pairwise(ends)]
    return statistics.median(gaps) if gaps else ends[0]


def _treefork_run(files: int, count: int) -> Run:
    repo = fresh_repository(files)
    events: list[dict[str, Any]] = []
    started = time.time()
    asyncio.run(run_treefork(repo, count, seconds=0.0, max_parallel=1, events=events))
    wall = time.time() - started
    ends = [event["finished_at"] for event in events if event["event"] == "agent_end"]
    return Run(wall, min(ends) - started, _steady(ends))


def _peer_run(files: int, count: int) -> Run:
    repo = fresh_repository(files)
    spans: list[tuple[float, float]] = []
    started = time.perf_counter()
    asyncio.run(run_peer_job(repo, count, seconds=0.0, max_parallel=1, spans=spans))
    wall = time.perf_counter() - started
    ends = [end for _, end in spans]
    return Run(wall, min(ends) - started, _steady(ends))


def _median_runs(runs: int, measure: Any, label: str) -> Run:
    results = []
    for index in range(1, runs + 1):
        result = measure()
        results.append(result)
        print(
            f"  {label} run {index}/{runs}: wall {result.wall:.2f} s, first agent "
            f"{result.first * 1000:.0f} ms, steady {result.steady * 1000:.0f} ms"
        )
    return Run(
        statistics.median(r.wall for r in results),
        statistics.median(r.first for r in results),
        statistics.median(r.steady for r in results),
    )


def measure(files_list: list[int], runs: int) -> list[Row]:
    """Per-agent isolation cost on each repository size."""
    rows = []
    for files in files_list:
        count = AGENTS.get(files, 10)
        print(f"{files} files, {count} agents one at a time")
        ours = _median_runs(runs, lambda f=files, c=count: _treefork_run(f, c), "treefork")
        peer = _median_runs(runs, lambda f=files, c=count: _peer_run(f, c), "peer")
        target = TARGETS.get(files)
        ratio = peer.steady / ours.steady
        rows.append(
            Row(
                f"per agent, {files:,} files",
                f"{ours.steady * 1000:.0f} ms",
                f"{peer.steady * 1000:.0f} ms",
                f"{ratio:.1f}x",
                f">= {target:g}x" if target else "-",
                None if target is None else ratio >= target,
            )
        )
        rows.append(
            Row(
                f"job start to first agent done, {files:,} files",
                f"{ours.first * 1000:.0f} ms",
                f"{peer.first * 1000:.0f} ms",
                f"{peer.first / ours.first:.1f}x",
                "-",
                None,
            )
        )
        rows.append(
            Row(
                f"whole job / agents ({count} agents, fixed costs included), {files:,} files",
                f"{ours.wall / count * 1000:.0f} ms",
                f"{peer.wall / count * 1000:.0f} ms",
                f"{peer.wall / ours.wall:.1f}x",
                "-",
                None,
            )
        )
    return rows


def main() -> None:
    """Measure, print, and write the README section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--no-readme", action="store_true")
    options = parser.parse_args()
    rows = measure(options.files, options.runs)
    print_rows(rows)
    if not options.no_readme:
        body = (
            "Agents write one file and commit it, one at a time (max_parallel 1), with no "
            "other work, so every figure is git's cost plus orchestration. Peer: `worktree "
            "add -b`, commit, `merge --no-ff` into the parent worktree, `worktree remove`. "
            "treefork: a pooled worktree switched to the agent's branch, the commit, one "
            "`status` (the commits and the files they changed are read in process), a merge "
            "in the object store (`merge-tree`, the merge commit written in process, "
            "`update-ref`); the next agent's worktree is switched while this one merges. "
            "*Per agent* is the median time from one agent's end to the next one's (the "
            "steady state); *first agent* is the time from the job's start to the first "
            "agent's end (treefork: the pool's first worktree created; a domain of listed "
            "items and nothing else needs no worktree of its own, and an auto-approved job no "
            "session worktree); *whole job / agents* includes every fixed cost (treefork also "
            "removes the pool and merges into the original branch). Medians of "
            f"{options.runs} runs.\n\n" + table(rows)
        )
        write_section("isolation", "Isolation cost per agent", body)


if __name__ == "__main__":
    main()
