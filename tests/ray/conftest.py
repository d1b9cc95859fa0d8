"""One real Ray cluster for every Ray test of the session: a head and two workers.

The cluster and every coordinator run inside a private network namespace (see
:mod:`raycluster`); the workers cannot see the coordinator's folders (a tmpfs is mounted
over them in each worker's mount namespace), so all they know of a repository came through
Ray. At the end no Ray process of the cluster may be left.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gitutil import make_repo
from raycluster import ADDRESS, BIN, RayCluster, alive, can_run

WORKERS = 2


@pytest.fixture(scope="session")
def cluster() -> Iterator[RayCluster]:
    reason = can_run()
    if reason is not None:
        pytest.skip(f"no Ray cluster here: {reason}")
    base = Path(f"/tmp/tfr-{os.getpid()}")
    shutil.rmtree(base, ignore_errors=True)
    (base / "coord").mkdir(parents=True)
    (base / "shared").mkdir()
    started = RayCluster(base, workers=WORKERS, cpus=2, hidden=[base / "coord"]).start()
    try:
        yield started
    finally:
        members = started.processes()
        started.stop()
        left = [pid for pid in members if alive(pid)]
        shutil.rmtree(base, ignore_errors=True)
        assert not left, f"Ray processes left behind: {left}"


@dataclass
class Job:
    """A repository, a treefork home and a workflow, where the workers cannot see them."""

    cluster: RayCluster
    root: Path
    repo: Path
    home: Path
    shared: Path
    """A folder every node sees (the agents leave traces there for the tests)."""

    def env(self) -> dict[str, str]:
        return {**os.environ, "TREEFORK_HOME": str(self.home), "RAY_ADDRESS": ADDRESS}

    def workflow(self, text: str, name: str = "wf.yml") -> Path:
        path = self.root / name
        path.write_text(text)
        return path

    def argv(self, *args: str) -> list[str]:
        return [str(BIN / "treefork"), *args]

    def treefork(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self.cluster.run(
            self.argv(*args), capture_output=True, env=self.env(), timeout=timeout
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        return self.cluster.popen(
            self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env()
        )

    def agents(self, job_id: str) -> list[dict[str, object]]:
        from treefork.store import JobStore

        store = JobStore.in_home(self.home)
        try:
            return store.agents(job_id)
        finally:
            store.close()

    def wait_for(self, predicate: object, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting")
            time.sleep(0.2)

    def runs(self, name: str) -> list[str]:
        path = self.shared / name
        return path.read_text().split() if path.exists() else []


@pytest.fixture
def job(cluster: RayCluster, request: pytest.FixtureRequest) -> Job:
    name = request.node.name
    folder = f"{name[:32]}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"
    root = cluster.base / "coord" / folder
    shared = cluster.base / "shared" / folder
    shared.mkdir(parents=True)
    items = [{"n": n} for n in range(12)]
    repo = make_repo(
        root / "repo", {"README.md": "# sample\n", "items.json": json.dumps(items) + "\n"}
    )
    return Job(cluster, root, repo, root / "home", shared)
