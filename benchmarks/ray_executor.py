"""The Ray executor against the local one, on a loopback cluster on this machine.

A head (no CPUs) and two workers with 2 CPUs each, in a private network namespace; each
worker sees neither the repositories nor the coordinator's home (see
``tests/support/raycluster.py``). The same workflow runs with ``--executor local`` and
``--executor ray`` in the same run, alternated:

- *efficiency*: 24 items of 0.5 s and of 2 s at k=4, ideal time / time from the first
  agent's start to the last agent's end, with how busy the machine's cores were;
- *fixed cost per agent*: 40 items that run ``true`` at k=4: agent-slot seconds per agent
  (span * k / items), and where a Ray agent's time goes on its node;
- *bytes moved*: the base bundle sent per domain, and the bundle each agent sends back,
  on repositories of 2,000 and 20,000 files; a second job on the same base sends nothing.

    .venv/bin/python benchmarks/ray_executor.py
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from common import WORK, repository, run_git, write_section

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))
from raycluster import ADDRESS, BIN, RayCluster, can_run

from treefork.store import JobStore

ROUNDS = 3
BASE = Path("/tmp/tfr-bench")


def _workflow(folder: Path, step: str, k: int) -> Path:
    path = folder / "wf.yml"
    path.write_text(
        "name: bench\nmode: mapreduce\nmap:\n  input: items.json\n  json_path: \"$[*]\"\n"
        f"  max_parallel: {k}\n  agent_template:\n    - shell: {json.dumps(step)}\n"
    )
    return path


def _repo(folder: Path, files: int, items: int) -> Path:
    """A copy of the cached benchmark repository (``files`` files) with ``items`` items."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    repo = folder / "repo"
    run_git(folder, "clone", "-q", str(repository(files)), str(repo))
    run_git(repo, "config", "user.name", "Bench")
    run_git(repo, "config", "user.email", "bench@localhost")
    (repo / "items.json").write_text(json.dumps([{"n": n} for n in range(items)]))
    run_git(repo, "add", "items.json")
    run_git(repo, "commit", "-qm", "items")
    return repo


_TICKS = os.sysconf("SC_CLK_TCK")
DAEMONS = ("raylet", "gcs_server", "log_monitor", "monitor.py", "dashboard", "runtime_env")
"""Ray's own long-lived processes (the workers running agents are not among them)."""
BUSY: dict[str, list[float]] = {"local": [], "ray": []}
"""The machine's CPU busy fraction during each run."""
DAEMON_CPU: list[float] = []
"""CPU seconds Ray's own processes used per agent, in each Ray run."""


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / _TICKS, sum(fields) / _TICKS


def _daemon_cpu(cluster: RayCluster) -> float:
    total = 0.0
    for pid in cluster.processes():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if any(name.encode() in command for name in DAEMONS):
            total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def _run(
    cluster: RayCluster, folder: Path, executor: str, step: str, k: int
) -> tuple[float, list[dict[str, object]], list[dict[str, object]]]:
    """Run the workflow; the agents' span and the job's agent rows and events."""
    busy_before, total_before = _machine_cpu()
    daemons_before = _daemon_cpu(cluster)
    repo = folder / "repo"
    home = folder / f"home-{executor}-{time.monotonic_ns()}"
    workflow = _workflow(folder, step, k)
    env = {"TREEFORK_HOME": str(home), "PATH": f"{BIN}:/usr/bin:/bin"}
    done = cluster.run(
        [str(BIN / "treefork"), "run", str(workflow), "--repo", str(repo), "--executor",
         executor, "--ray-address", ADDRESS, "--no-merge", "--json"],
        capture_output=True, env=env, timeout=900,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    job_id = json.loads(done.stdout)["job_id"]
    store = JobStore.in_home(home)
    try:
        rows, events = store.agents(job_id), store.events(job_id)
    finally:
        store.close()
    busy_after, total_after = _machine_cpu()
    BUSY[executor].append((busy_after - busy_before) / (total_after - total_before))
    if executor == "ray":
        DAEMON_CPU.append((_daemon_cpu(cluster) - daemons_before) / len(rows))
    results = [row["result"] for row in rows]
    span = max(r["finished_at"] for r in results) - min(r["started_at"] for r in results)
    return span, results, events


def _efficiency(cluster: RayCluster) -> str:
    folder = BASE / "coord" / "efficiency"
    _repo(folder, 20, 24)
    lines = [
        "| item length | executor | span (median of 3) | efficiency |",
        "|---|---|---|---|",
    ]
    ratios = []
    for seconds in (0.5, 2.0):
        step = (
            f"sleep {seconds} && echo ${{item.n}} > out-${{item.n}}.txt && git add . && "
            "git commit -qm i"
        )
        ideal = 24 * seconds / 4
        spans: dict[str, list[float]] = {"local": [], "ray": []}
        for _ in range(ROUNDS):
            for executor in ("local", "ray"):
                spans[executor].append(_run(cluster, folder, executor, step, 4)[0])
        median = {name: statistics.median(values) for name, values in spans.items()}
        for name in ("local", "ray"):
            lines.append(
                f"| {seconds} s | {name} | {median[name]:.2f} s | {ideal / median[name]:.2f} |"
            )
        ratios.append(f"{median['local'] / median['ray']:.2f} at {seconds} s")
    return "\n".join(lines) + f"\n\nRay / local efficiency: {', '.join(ratios)}."


def _fixed_cost(cluster: RayCluster) -> str:
    folder = BASE / "coord" / "fixed"
    _repo(folder, 2000, 40)
    step = "echo ${item.n} > out-${item.n}.txt && git add . && git commit -qm i"
    costs: dict[str, list[float]] = {"local": [], "ray": []}
    parts: dict[str, list[float]] = {}
    for _ in range(ROUNDS):
        for executor in ("local", "ray"):
            span, _, events = _run(cluster, folder, executor, step, 4)
            costs[executor].append(span * 4 / 40 * 1000)
            for event in events:
                if event.get("event") == "agent_remote":
                    timings = {
                        **dict(event["seconds"]),  # type: ignore[arg-type]
                        "to the node": event["to_node"],
                        "back from it": event["from_node"],
                    }
                    for part, seconds in timings.items():
                        parts.setdefault(part, []).append(float(seconds) * 1000)
    median = {name: statistics.median(values) for name, values in costs.items()}
    lines = [
        "| executor | agent-slot time per agent (median of 3) |",
        "|---|---|",
        *(f"| {name} | {median[name]:.0f} ms |" for name in ("local", "ray")),
        "",
        "Median per Ray agent, on its node and on the way (coordinator to node, node back "
        "to the coordinator): "
        + ", ".join(f"{part} {statistics.median(v):.0f} ms" for part, v in parts.items())
        + ".",
    ]
    return "\n".join(lines)


def _bytes(cluster: RayCluster) -> str:
    lines = [
        "| files | base bundle (once per domain) | sent back per agent (median) "
        "| nodes that fetched the base, first job / second job |",
        "|---|---|---|---|",
    ]
    step = "echo ${item.n} >> src/d000/f0000${item.n}.txt && git add . && git commit -qm i"
    for files in (2000, 20000):
        folder = BASE / "coord" / f"bytes-{files}"
        _repo(folder, files, 8)
        fetched, base_size, back = [], 0, []
        for _ in range(2):
            _, _, events = _run(cluster, folder, "ray", step, 4)
            remote = [e for e in events if e.get("event") == "agent_remote"]
            fetched.append(sum(1 for e in remote if e["fetched_base"]))
            back.extend(int(e["bundle_bytes"]) for e in remote)  # type: ignore[call-overload]
            base_size = max(
                [base_size, *(int(e["bytes"]) for e in events if e.get("event") == "base_bundle")]  # type: ignore[call-overload]
            )
        lines.append(
            f"| {files:,} | {base_size / 1e6:.2f} MB | {statistics.median(back) / 1e3:.1f} KB "
            f"| {fetched[0]} / {fetched[1]} |"
        )
    return "\n".join(lines)


def main() -> None:
    reason = can_run()
    if reason is not None:
        raise SystemExit(f"cannot start a loopback Ray cluster here: {reason}")
    shutil.rmtree(BASE, ignore_errors=True)
    (BASE / "coord").mkdir(parents=True)
    started = time.monotonic()
    cluster = RayCluster(BASE, workers=2, cpus=2, hidden=[BASE / "coord"]).start()
    up = time.monotonic() - started
    try:
        efficiency = _efficiency(cluster)
        print(efficiency)
        fixed = _fixed_cost(cluster)
        print(fixed)
        moved = _bytes(cluster)
        print(moved)
        load = (
            f"The machine's 2 cores were {statistics.median(BUSY['local']) * 100:.0f}% busy "
            f"during local runs and {statistics.median(BUSY['ray']) * 100:.0f}% during Ray "
            f"runs (medians); Ray's own processes (raylets, GCS) used "
            f"{statistics.median(DAEMON_CPU) * 1000:.0f} ms of CPU per agent."
        )
        print(load)
    finally:
        cluster.stop()
        shutil.rmtree(BASE, ignore_errors=True)
    write_section(
        "ray",
        "Ray executor: loopback cluster against the local executor",
        f"A head (no CPUs) and two workers of 2 CPUs each, all on this 2-core machine, came "
        f"up in {up:.0f} s. Work folder for the cached repositories: {WORK}.\n\n"
        f"### Efficiency, 24 items at k=4 on 20 files\n\n{efficiency}\n\n{load}\n\n"
        f"### Fixed cost per agent, 40 items at k=4 on 2,000 files\n\n{fixed}\n\n"
        f"### Bytes moved through the object store\n\n{moved}\n",
    )


if __name__ == "__main__":
    main()
