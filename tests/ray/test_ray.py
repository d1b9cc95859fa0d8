"""Map agents on a real three-node Ray cluster (a head and two workers), for real.

Every agent runs on a worker node that cannot see the repository or the coordinator's home;
the coordinator runs ``treefork run --executor ray`` as a user would, inside the cluster's
network namespace.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from gitutil import run_git
from raycluster import alive

if TYPE_CHECKING:
    from conftest import Job

pytestmark = pytest.mark.timeout(420)


def _workflow(job: Job, *, sleep: float, max_parallel: int, extra: str = "") -> Path:
    """Items 0-11: each agent notes its run in the shared folder, sleeps, writes its file
    and whether it could see the repository, and commits."""
    runs = job.shared / "runs.log"
    agent = (
        f"echo ${{item.n}} >> {runs} && sleep {sleep} && mkdir -p out && "
        "echo ${item.n} > out/${item.n}.txt && "
        f"(test -e {job.repo}/.git && echo visible || echo hidden) > out/${{item.n}}.seen && "
        f"{extra}"
        "git add out && git commit -qm 'item ${item.n}'"
    )
    return job.workflow(
        "name: spread\n"
        "mode: mapreduce\n"
        "map:\n"
        "  input: items.json\n"
        '  json_path: "$[*]"\n'
        f"  max_parallel: {max_parallel}\n"
        "  agent_template:\n"
        f"    - shell: {json.dumps(agent)}\n"
    )


def _merges(repo: Path) -> Counter[str]:
    """How many times each item was merged into main."""
    subjects = run_git(repo, "log", "--format=%s", "main").splitlines()
    found = (re.match(r'treefork: merge \{"n":(\d+)\} into', s) for s in subjects)
    return Counter(match.group(1) for match in found if match)


def _assert_all_merged_once(job: Job) -> None:
    assert _merges(job.repo) == Counter({str(n): 1 for n in range(12)})
    for n in range(12):
        assert run_git(job.repo, "show", f"main:out/{n}.txt") == f"{n}\n"
        # The agent never saw the repository: it reached the node through Ray.
        assert run_git(job.repo, "show", f"main:out/{n}.seen") == "hidden\n"


def _merged_items(job: Job, job_id: str) -> set[str]:
    return {
        str(row["item_id"]) for row in job.agents(job_id) if row.get("merge") == "merged"
    }


def test_agents_spread_over_the_workers_and_every_result_is_merged(job: Job) -> None:
    workflow = _workflow(job, sleep=0.5, max_parallel=4)
    done = job.treefork(
        "run", str(workflow), "--repo", str(job.repo), "--executor", "ray", "--yes", "--json"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "succeeded"
    assert report["domains"]["spread"]["succeeded"] == 12
    _assert_all_merged_once(job)
    nodes = {row["result"]["node"] for row in job.agents(report["job_id"])}  # type: ignore[index]
    assert len(nodes) == 2, nodes
    # Each worker keeps its clone for the next agents and jobs.
    for worker in ("w1", "w2"):
        assert list((job.cluster.base / "nodes" / worker / "node").glob("*/clone.git"))
    # Nothing of Ray's reached the terminal but treefork's own lines.
    assert "INFO" not in done.stderr and "network_util" not in done.stderr


def test_a_worker_killed_mid_job_loses_nothing(job: Job) -> None:
    workflow = _workflow(job, sleep=1.5, max_parallel=4)
    running = job.start(
        "run", str(workflow), "--repo", str(job.repo), "--executor", "ray", "--yes",
        "--json", "--job-id", "killed-worker",
    )  # fmt: skip
    try:
        job.wait_for(lambda: len(_merged_items(job, "killed-worker")) >= 2)
        job.cluster.kill_worker("w1")
        out, err = running.communicate(timeout=300)
    finally:
        if running.poll() is None:
            running.kill()
        if "w1" not in job.cluster.nodes:
            job.cluster.start_worker("w1")
    assert running.returncode == 0, err
    # Ray's word on the lost node goes to standard error; standard output is the JSON.
    assert json.loads(out)["domains"]["spread"]["succeeded"] == 12
    _assert_all_merged_once(job)


def test_a_killed_coordinator_resumes_on_the_cluster_without_running_merged_agents_again(
    job: Job,
) -> None:
    workflow = _workflow(job, sleep=1, max_parallel=2)
    running = job.start(
        "run", str(workflow), "--repo", str(job.repo), "--executor", "ray", "--yes",
        "--job-id", "killed-coordinator",
    )  # fmt: skip
    try:
        job.wait_for(lambda: len(_merged_items(job, "killed-coordinator")) >= 3)
    finally:
        running.send_signal(signal.SIGKILL)
        running.communicate()
    merged_before = _merged_items(job, "killed-coordinator")
    resumed = job.treefork("resume", "killed-coordinator", "--yes", "--json")
    assert resumed.returncode == 0, resumed.stderr
    _assert_all_merged_once(job)
    runs = Counter(job.runs("runs.log"))
    ids = {str(row["item_id"]): str(row["item"]["n"]) for row in job.agents("killed-coordinator")}  # type: ignore[index]
    for item in merged_before:
        assert runs[ids[item]] == 1, (item, runs)


def _agent_processes(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return [pid for pid in found if alive(pid)]


def test_sigint_cancels_the_agents_on_the_cluster(job: Job) -> None:
    workflow = _workflow(job, sleep=97.25, max_parallel=4)
    running = job.start(
        "run", str(workflow), "--repo", str(job.repo), "--executor", "ray", "--yes",
        "--job-id", "cancelled",
    )  # fmt: skip
    try:
        job.wait_for(lambda: len(_agent_processes("97.25")) >= 4)
        running.send_signal(signal.SIGINT)
        _, err = running.communicate(timeout=60)
    finally:
        if running.poll() is None:
            running.kill()
    assert running.returncode == 130, err
    assert "treefork resume cancelled" in err
    deadline = time.monotonic() + 30
    while _agent_processes("97.25") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _agent_processes("97.25") == []
    assert _merges(job.repo) == Counter()


def test_an_agent_failure_on_the_cluster_goes_to_the_dlq(job: Job) -> None:
    workflow = _workflow(job, sleep=0, max_parallel=4, extra='test "${item.n}" != 5 && ')
    done = job.treefork(
        "run", str(workflow), "--repo", str(job.repo), "--executor", "ray", "--yes", "--json",
        "--job-id", "with-failure",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["domains"]["spread"]["succeeded"] == 11
    assert report["dlq"] == 1
    listed = job.treefork("dlq", "list", "with-failure", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [entry["item"] for entry in entries] == [{"n": 5}], entries


def test_an_unreachable_cluster_is_refused_before_anything_is_recorded(job: Job) -> None:
    workflow = _workflow(job, sleep=0, max_parallel=2)
    before = run_git(job.repo, "for-each-ref")
    done = job.treefork(
        "run", str(workflow), "--repo", str(job.repo), "--executor", "ray",
        "--ray-address", "127.0.0.1:1", "--yes",
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "error: ray cluster at 127.0.0.1:1: cannot connect" in done.stderr
    assert "Traceback" not in done.stderr
    assert run_git(job.repo, "for-each-ref") == before
    jobs = job.treefork("jobs", "--json")
    assert jobs.stdout.strip() == ""


@pytest.mark.parametrize("through", ["bundles", "a shared remote"])
def test_the_python_api_runs_agents_on_the_cluster(job: Job, through: str) -> None:
    remote = job.shared / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    options = f"remote_url={str(remote)!r}" if through == "a shared remote" else ""
    script = job.root / "app.py"
    script.write_text(
        f"""
import asyncio, json
from treefork import Domain, Map, Shell, build_graph
from treefork.executors import RayExecutor

domain = Domain(
    name="docs",
    map=Map(
        input=[{{"n": n}} for n in range(4)],
        agent=[Shell("echo ${{item.n}} > f${{item.n}}.txt && git add . && git commit -qm f")],
        max_parallel=4,
    ),
)
executor = RayExecutor({options})
graph = build_graph([domain], auto_approve=True, executor=executor, repo={str(job.repo)!r})
state = asyncio.run(graph.ainvoke({{"task": "write files"}}))
print(json.dumps({{"status": state["status"], "merge": state["merge"]["status"]}}))
"""
    )
    done = job.cluster.run(
        [str(Path(__import__("sys").executable)), str(script)],
        capture_output=True,
        env=job.env(),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"status": "succeeded", "merge": "merged"}
    for n in range(4):
        assert run_git(job.repo, "show", f"main:f{n}.txt") == f"{n}\n"
    # With a shared remote the base commit went through it, not the object store.
    pushed = run_git(remote, "for-each-ref", "--format=%(refname)", "refs/treefork/bases/")
    assert bool(pushed.strip()) == (through == "a shared remote")


def test_nothing_reaches_the_cluster_without_the_flag(job: Job) -> None:
    """The default executor is local: agents see the repository (they run here)."""
    workflow = _workflow(job, sleep=0, max_parallel=2)
    done = subprocess.run(
        job.argv("run", str(workflow), "--repo", str(job.repo), "--yes", "--json"),
        capture_output=True,
        text=True,
        env=job.env(),
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert run_git(job.repo, "show", "main:out/0.seen") == "visible\n"
