"""Scale: many items, and the orchestration overhead per item.

1. 2,000 items with worktrees on the 20-file repository at max_parallel 16; each agent only
   writes one file and commits it, so the wall time per item is all overhead (the agent's
   commit included). Target: at most 25 ms per item, peak RSS at most 400 MB.
2. 10,000 read-only items (``isolation: none``) whose agents do nothing. Target: at most
   2 ms per item.

Each job runs in its own Python process, whose peak RSS (``ru_maxrss``) is reported; the
wall time is that of the job alone (imports excluded). The peer runs the same agents in its
``Send`` fan-out (fewer items for the worktree case: its cost per item does not depend on
the count, and 2,000 would take minutes).

    .venv/bin/python benchmarks/scale.py [--runs 3] [--items 2000] [--readonly-items 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from common import PYTHON, Row, fresh_repository, print_rows, table, write_section
from peer import run_peer_readonly
from workloads import items, run_peer_job, run_treefork

MAX_PARALLEL = 16
WORKTREE_TARGET_MS = 25.0
RSS_TARGET_MB = 400.0
READONLY_TARGET_MS = 2.0
FILES = 20


async def _nothing(*_: object) -> None:
    await asyncio.sleep(0)


def child(kind: str, count: int) -> None:
    """Run one job in this process; print its wall time and this process's peak RSS."""
    repo = fresh_repository(FILES)
    jobs = {
        "treefork-worktree": lambda: run_treefork(
            repo, count, seconds=0.0, max_parallel=MAX_PARALLEL
        ),
        "peer-worktree": lambda: run_peer_job(repo, count, seconds=0.0, max_parallel=MAX_PARALLEL),
        "treefork-readonly": lambda: run_treefork(
            repo, count, seconds=0.0, max_parallel=MAX_PARALLEL, isolation="none"
        ),
        "treefork-worktree-nostore": lambda: run_treefork(
            repo, count, seconds=0.0, max_parallel=MAX_PARALLEL, store=False
        ),
        "treefork-readonly-nostore": lambda: run_treefork(
            repo, count, seconds=0.0, max_parallel=MAX_PARALLEL, isolation="none", store=False
        ),
        "peer-readonly": lambda: run_peer_readonly(repo, items(count), _nothing, MAX_PARALLEL),
    }
    started, cpu = time.perf_counter(), _cpu()
    asyncio.run(jobs[kind]())
    wall, cpu = time.perf_counter() - started, _cpu() - cpu
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall": wall, "cpu": cpu, "rss_mb": rss}))


def _cpu() -> float:
    """CPU seconds used by this process and the processes it waited for (git, agents)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _run_child(kind: str, count: int) -> dict[str, float]:
    result = subprocess.run(
        [PYTHON, __file__, "--child", kind, str(count)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{kind} failed: {result.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def _measure(kind: str, count: int, runs: int) -> tuple[float, float, float]:
    """Median wall and CPU milliseconds per item, and peak RSS (MB), over ``runs`` jobs."""
    per_item, cpu, rss = [], [], []
    for index in range(1, runs + 1):
        figures = _run_child(kind, count)
        per_item.append(figures["wall"] / count * 1000)
        cpu.append(figures["cpu"] / count * 1000)
        rss.append(figures["rss_mb"])
        print(
            f"  {kind} x{count} run {index}/{runs}: {figures['wall']:.1f} s, "
            f"{per_item[-1]:.2f} ms per item ({cpu[-1]:.2f} ms CPU), "
            f"peak RSS {figures['rss_mb']:.0f} MB"
        )
    return statistics.median(per_item), statistics.median(cpu), statistics.median(rss)


def measure(count: int, peer_count: int, readonly: int, runs: int, nostore: int) -> list[Row]:
    """Per-item overhead and memory of both sides."""
    ours_ms, ours_cpu, ours_rss = _measure("treefork-worktree", count, runs)
    bare_ms, bare_cpu, _ = _measure("treefork-worktree-nostore", nostore, runs)
    bare_ro_ms, bare_ro_cpu, _ = _measure("treefork-readonly-nostore", readonly, runs)
    peer_ms, peer_cpu, peer_rss = _measure("peer-worktree", peer_count, runs)
    ours_ro_ms, ours_ro_cpu, ours_ro_rss = _measure("treefork-readonly", readonly, runs)
    peer_ro_ms, peer_ro_cpu, peer_ro_rss = _measure("peer-readonly", readonly, runs)
    cores = os.cpu_count() or 1
    return [
        Row(
            f"worktree items, per item ({count:,} items; peer {peer_count:,}), max_parallel 16",
            f"{ours_ms:.1f} ms",
            f"{peer_ms:.1f} ms",
            f"{peer_ms / ours_ms:.1f}x",
            f"<= {WORKTREE_TARGET_MS:g} ms",
            ours_ms <= WORKTREE_TARGET_MS,
        ),
        Row(
            f"worktree items without the job store, per item ({nostore:,} items)",
            f"{bare_ms:.1f} ms ({bare_cpu:.1f} ms CPU)",
            f"{peer_ms:.1f} ms",
            f"{peer_ms / bare_ms:.1f}x",
            "-",
            None,
        ),
        Row(
            f"worktree items, CPU per item (git included; / {cores} cores)",
            f"{ours_cpu:.1f} ms ({ours_cpu / cores:.1f} ms)",
            f"{peer_cpu:.1f} ms ({peer_cpu / cores:.1f} ms)",
            f"{peer_cpu / ours_cpu:.1f}x",
            "-",
            None,
        ),
        Row(
            "worktree items, peak RSS of the process",
            f"{ours_rss:.0f} MB",
            f"{peer_rss:.0f} MB",
            f"{peer_rss / ours_rss:.1f}x",
            f"<= {RSS_TARGET_MB:g} MB",
            ours_rss <= RSS_TARGET_MB,
        ),
        Row(
            f"read-only items, per item ({readonly:,} items)",
            f"{ours_ro_ms:.2f} ms",
            f"{peer_ro_ms:.2f} ms",
            f"{peer_ro_ms / ours_ro_ms:.1f}x",
            f"<= {READONLY_TARGET_MS:g} ms",
            ours_ro_ms <= READONLY_TARGET_MS,
        ),
        Row(
            "read-only items without the job store, per item",
            f"{bare_ro_ms:.2f} ms ({bare_ro_cpu:.2f} ms CPU)",
            f"{peer_ro_ms:.2f} ms",
            f"{peer_ro_ms / bare_ro_ms:.1f}x",
            "-",
            None,
        ),
        Row(
            f"read-only items, CPU per item (/ {cores} cores)",
            f"{ours_ro_cpu:.2f} ms ({ours_ro_cpu / cores:.2f} ms)",
            f"{peer_ro_cpu:.2f} ms ({peer_ro_cpu / cores:.2f} ms)",
            f"{peer_ro_cpu / ours_ro_cpu:.1f}x",
            "-",
            None,
        ),
        Row(
            "read-only items, peak RSS of the process",
            f"{ours_ro_rss:.0f} MB",
            f"{peer_ro_rss:.0f} MB",
            f"{peer_ro_rss / ours_ro_rss:.1f}x",
            "-",
            None,
        ),
    ]


def main() -> None:
    """Measure, print, and write the README section (or run one job with ``--child``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--peer-items", type=int, default=200)
    parser.add_argument("--readonly-items", type=int, default=10000)
    parser.add_argument("--nostore-items", type=int, default=500)
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "COUNT"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.child[0], int(options.child[1]))
        return
    rows = measure(
        options.items,
        options.peer_items,
        options.readonly_items,
        options.runs,
        options.nostore_items,
    )
    print_rows(rows)
    if not options.no_readme:
        body = (
            f"Worktree items: agents on the {FILES}-file repository that write one file and "
            "commit it, nothing else, at max_parallel 16: the wall time per item is all "
            "overhead (worktree, the agent's commit, merge, bookkeeping). Read-only items: "
            "`isolation: none` agents that do nothing. Each job runs in its own process; "
            "wall time excludes interpreter start and imports; peak RSS is that process's "
            f"`ru_maxrss`. Medians of {options.runs} runs. The peer's worktree figure comes "
            f"from {options.peer_items} items (its cost per item does not depend on the "
            "count). The rows *without the job store* show treefork with `build_graph(..., "
            "job_store=False)`: by default every agent's start, attempt and result are written to "
            "the job store (SQLite) before the run goes on, so that a killed job resumes. "
            "CPU per item counts this process and every process it waited for (git, the "
            "agents' commits); divided by the cores it is the wall time per item an idle "
            "machine could reach at best.\n\n" + table(rows)
        )
        write_section("scale", "Scale", body)


if __name__ == "__main__":
    sys.exit(main())
