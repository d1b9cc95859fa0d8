"""A real multi-node Ray cluster on this machine, in a private network namespace.

Every Ray process of the cluster, and every coordinator that talks to it, runs inside one
network namespace that has only a loopback interface: Ray binds and talks on 127.0.0.1
alone (outside such a namespace it swaps 127.0.0.1 for the machine's interface address).
A process holds the namespace (``unshare -n sleep``); the nodes and the coordinators enter
it with ``nsenter``.

Each worker node also runs in a mount namespace of its own, with a tmpfs mounted over each
``hidden`` folder (the repositories and the coordinator's home): whatever a worker knows of
a repository reached it through Ray. Workers keep their treefork homes (clones, slots) in
``<base>/nodes/<name>``.

Nodes start one at a time, each awaited in ``ray status``. They are stopped through their
own process trees (never ``ray stop``, which stops every Ray process on the machine).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from procutil import is_running

PORT = 6379
ADDRESS = f"127.0.0.1:{PORT}"
BIN = Path(sys.executable).parent


def can_run() -> str | None:
    """Why no cluster can run here (None: one can): namespaces need root."""
    if os.geteuid() != 0:
        return "a private network namespace needs root"
    for tool in ("unshare", "nsenter", "ip"):
        if subprocess.run(["which", tool], check=False, capture_output=True).returncode != 0:
            return f"{tool} is not installed"
    if not (BIN / "ray").exists():
        return "ray is not installed (pip install 'treefork[ray]')"
    return None


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, or still in its session (``pid`` leads one):
    a process whose parent died is found by its session."""
    children: dict[int, list[int]] = {}
    in_session = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        if int(fields[3]) == pid:
            in_session.append(int(entry.name))
    found, pending = set(), [pid, *in_session]
    while pending:
        current = pending.pop()
        if current not in found:
            found.add(current)
            pending.extend(children.get(current, []))
    return sorted(found)


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to a process and everything below it, all at once."""
    _signal(set(descendants(pid)), sig)


def _signal(pids: set[int], sig: int) -> None:
    for member in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, sig)


alive = is_running


@dataclass
class Node:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class RayCluster:
    """A head (no CPUs: agents never run on it) and ``workers`` worker nodes."""

    base: Path
    workers: int = 2
    cpus: int = 2
    hidden: Sequence[Path] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    holder: subprocess.Popen[bytes] | None = None
    head: Node | None = None
    nodes: dict[str, Node] = field(default_factory=dict)

    # -- the namespace --------------------------------------------------------------------

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the cluster's network namespace."""
        assert self.holder is not None
        return ["nsenter", "-t", str(self.holder.pid), "-n", "--", *argv]

    def run(self, argv: Sequence[str], **options: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(argv), check=False, text=True, **options)  # type: ignore[call-overload, no-any-return]

    def popen(self, argv: Sequence[str], **options: object) -> subprocess.Popen[str]:
        return subprocess.Popen(self.command(argv), text=True, **options)  # type: ignore[call-overload, no-any-return]

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> RayCluster:
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "logs").mkdir(exist_ok=True)
        self.holder = subprocess.Popen(["unshare", "-n", "--", "sleep", "infinity"])
        ours = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{self.holder.pid}/ns/net") == ours:
            if time.monotonic() > deadline:
                raise RuntimeError("the network namespace did not appear")
            time.sleep(0.01)
        subprocess.run(self.command(["ip", "link", "set", "lo", "up"]), check=True)
        try:
            self.head = self._start_node(
                "head",
                [
                    "--head", f"--port={PORT}", "--num-cpus=0", "--include-dashboard=false",
                    f"--temp-dir={self.base / 'ray'}",
                ],
                hide=False,
            )  # fmt: skip
            self._await_nodes(1)
            for number in range(1, self.workers + 1):
                self.start_worker(f"w{number}")
        except BaseException:
            self.stop()
            raise
        return self

    def _start_node(self, name: str, options: list[str], *, hide: bool) -> Node:
        log = self.base / "logs" / f"{name}.log"
        ray = [
            str(BIN / "ray"), "start", "--block", "--node-ip-address=127.0.0.1",
            "--disable-usage-stats",
            "--object-store-memory=200000000", *options,
        ]  # fmt: skip
        env = {**os.environ, **self.env, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
        if hide:
            home = self.base / "nodes" / name
            home.mkdir(parents=True, exist_ok=True)
            env["TREEFORK_HOME"] = str(home)
            mounts = " && ".join(
                f"mount -t tmpfs -o size=1m tmpfs {shlex.quote(str(path))}" for path in self.hidden
            )
            script = f"{mounts} && exec {shlex.join(ray)}" if mounts else f"exec {shlex.join(ray)}"
            argv = ["unshare", "-m", "--propagation", "private", "--", "sh", "-c", script]
        else:
            argv = ray
        with log.open("ab") as out:
            process = subprocess.Popen(
                self.command(argv), stdout=out, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,
            )  # fmt: skip
        return Node(name, process, log)

    def start_worker(self, name: str) -> Node:
        """Start a worker node and wait until the cluster counts it."""
        expected = 1 + len(self.nodes) + 1
        node = self._start_node(
            name, [f"--address={ADDRESS}", f"--num-cpus={self.cpus}"], hide=True
        )
        self.nodes[name] = node
        self._await_nodes(expected)
        return node

    def live_nodes(self) -> int:
        status = self.run(
            [str(BIN / "ray"), "status", f"--address={ADDRESS}"], capture_output=True
        )
        if status.returncode != 0:
            return 0
        active = status.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0]
        return sum(1 for line in active.splitlines() if "node_" in line)

    def _await_nodes(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.live_nodes() < count:
            for node in [self.head, *self.nodes.values()]:
                if node is not None and node.process.poll() is not None:
                    raise RuntimeError(
                        f"ray node {node.name} exited: {node.log.read_text()[-2000:]}"
                    )
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not reach {count} nodes")
            time.sleep(0.5)

    def kill_worker(self, name: str) -> None:
        """SIGKILL a worker node and everything it runs, as a machine that dies."""
        node = self.nodes.pop(name)
        kill_tree(node.process.pid)
        node.process.wait()

    def processes(self) -> list[int]:
        """Every live process of the cluster (the namespace holder aside)."""
        found = []
        for node in [self.head, *self.nodes.values()]:
            if node is not None:
                found.extend(pid for pid in descendants(node.process.pid) if alive(pid))
        return found

    def stop(self) -> None:
        """Stop every node through its own process tree, then the namespace."""
        nodes = [*self.nodes.values(), *([self.head] if self.head else [])]
        members = {pid for node in nodes for pid in descendants(node.process.pid)}
        _signal(members, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in members) and time.monotonic() < deadline:
            for node in nodes:
                node.process.poll()
            time.sleep(0.1)
        members |= {pid for node in nodes for pid in descendants(node.process.pid)}
        _signal(members, signal.SIGKILL)
        for node in nodes:
            node.process.wait()
        # A killed process is gone only once the kernel has torn it down, which takes a
        # moment for a large one on a busy machine.
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in members) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.nodes.clear()
        self.head = None
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait()
            self.holder = None
