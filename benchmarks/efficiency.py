"""Parallel efficiency: 200 items x 0.2 s of work at max_parallel 8.

Efficiency is the ideal wall time (items x work / max_parallel = 5 s) over the measured wall
time of the whole job: for treefork, ``build_graph(...).ainvoke`` from routing to the
approved merge into the original branch; for the peer, its graph from the parent worktree to
the last merge. Targets: at least 0.85 on the 20-file repository, 0.6 on the 2,000-file one.

    .venv/bin/python benchmarks/efficiency.py [--runs 3] [--files 20 2000] [--items 200]
"""

from __future__ import annotations

import argparse
import asyncio

from common import Row, fresh_repository, median_of, print_rows, table, timed, write_section
from workloads import run_peer_job, run_treefork

WORK_SECONDS = 0.2
MAX_PARALLEL = 8
TARGETS = {20: 0.85, 2000: 0.6}


def _treefork_wall(files: int, count: int) -> float:
    repo = fresh_repository(files)
    return timed(
        lambda: asyncio.run(
            run_treefork(repo, count, seconds=WORK_SECONDS, max_parallel=MAX_PARALLEL)
        )
    )


def _peer_wall(files: int, count: int) -> float:
    repo = fresh_repository(files)
    return timed(
        lambda: asyncio.run(
            run_peer_job(repo, count, seconds=WORK_SECONDS, max_parallel=MAX_PARALLEL)
        )
    )


def measure(files_list: list[int], count: int, runs: int) -> list[Row]:
    """Efficiency of both sides on each repository size."""
    ideal = count * WORK_SECONDS / MAX_PARALLEL
    rows = []
    for files in files_list:
        print(f"{files} files, {count} items x {WORK_SECONDS}s, max_parallel {MAX_PARALLEL}")
        ours = median_of(runs, lambda f=files: _treefork_wall(f, count), "treefork wall s")
        peer = median_of(runs, lambda f=files: _peer_wall(f, count), "peer wall s")
        target = TARGETS.get(files)
        rows.append(
            Row(
                f"efficiency, {files:,} files ({count} items)",
                f"{ideal / ours:.2f} ({ours:.1f} s)",
                f"{ideal / peer:.2f} ({peer:.1f} s)",
                f"{peer / ours:.1f}x",
                f">= {target}" if target else "-",
                None if target is None else ideal / ours >= target,
            )
        )
    return rows


def main() -> None:
    """Measure, print, and write the README section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, nargs="+", default=[20, 2000])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--no-readme", action="store_true")
    options = parser.parse_args()
    rows = measure(options.files, options.items, options.runs)
    print_rows(rows)
    if not options.no_readme:
        body = (
            f"{options.items} items, each {WORK_SECONDS} s of work then one file written and "
            f"committed, at max_parallel {MAX_PARALLEL}; efficiency = ideal wall time "
            f"({options.items} x {WORK_SECONDS} / {MAX_PARALLEL} s) / measured wall time "
            f"(median of {options.runs}). The ratio is the peer's wall time over treefork's.\n\n"
            + table(rows)
        )
        write_section("efficiency", "Parallel efficiency", body)


if __name__ == "__main__":
    main()
