"""The Ray executor: map agents as Ray tasks on a cluster.

Each agent attempt is one Ray task (:func:`_agent_task`) running
:func:`~treefork.executors.node.run_agent_on_node` on a worker node, in that node's own
clone of the repository. Repository content travels through Ray's object store:

- a domain's base commit as one bundle, put in the object store once per domain and base
  commit (:meth:`RayExecutor._base`), and read by a node only when its clone lacks the
  commit: the second agent on a node, and every agent of a later job on the same base,
  fetches nothing;
- each agent's commits back as the task's result, a bundle of ``base..agent``.

With ``remote_url`` the nodes fetch base commits from a shared git remote instead (the
coordinator pushes each one there first): for repositories whose history is too large to
send to every node.

Faults: a task whose worker process or node dies is run again by Ray on another node
(``max_retries``); the attempt is idempotent, since its result reaches the coordinator only
as a return value, merged once. A cancelled task (the coordinator interrupted) is
cancelled on the cluster with ``ray.cancel``: gently first, so the agent's commands are
stopped with their process groups, then by force after ``cancel_grace`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import tempfile
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import anyio
import ray
from ray import exceptions as ray_errors

from treefork.errors import ExecutorError
from treefork.executors import BaseContent, Executor
from treefork.executors.node import AgentOutcome, AgentTask, run_agent_on_node
from treefork.steps import Usage

__all__ = ("RayExecutor",)

_BASES_KEPT = 16
"""Base bundles kept in the object store per executor (one per domain of recent jobs)."""


@ray.remote
def _agent_task(task: AgentTask, base: list[ray.ObjectRef[bytes]]) -> AgentOutcome:
    """One agent attempt on the node Ray chose. ``base`` holds the base bundle's reference
    in a list, so that Ray does not fetch it before the node knows it needs it."""
    node = ray.get_runtime_context().get_node_id()
    return run_agent_on_node(task, lambda: ray.get(base[0]) if base else b"", node=node)


class RayExecutor(Executor):
    """Runs map agents on a Ray cluster.

    Args:
        address: The cluster (``ray://host:10001``, ``host:6379`` or ``auto``); default
            ``$RAY_ADDRESS``.
        num_cpus: CPUs each agent task reserves on its node.
        max_retries: Times Ray runs an agent again when its worker or node dies.
        remote_url: A git remote every node can fetch from: base commits travel through it
            instead of the object store.
        runtime_env: Ray's runtime environment for the agent tasks (``pip``,
            ``env_vars``...), passed to ``ray.init``.
        resources: Custom Ray resources each agent task needs (``{"agents": 1}``).
        cancel_grace: Seconds a cancelled agent gets to stop its commands before its worker
            is killed.
        init_options: More keyword arguments for ``ray.init``.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: float = 1,
        max_retries: int = 3,
        remote_url: str | None = None,
        runtime_env: Mapping[str, Any] | None = None,
        resources: Mapping[str, float] | None = None,
        cancel_grace: float = 10.0,
        init_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.num_cpus = num_cpus
        self.max_retries = max_retries
        self._remote_url = remote_url
        self.runtime_env = dict(runtime_env or {})
        self.resources = dict(resources or {})
        self.cancel_grace = cancel_grace
        self.init_options = dict(init_options or {})
        self._bases: OrderedDict[str, list[ray.ObjectRef[bytes]]] = OrderedDict()
        self._base_locks: dict[str, anyio.Lock] = {}
        self._connect_lock = anyio.Lock()

    @property
    def remote_url(self) -> str | None:
        return self._remote_url

    def describe(self) -> str:
        return f"ray ({self.address})"

    # -- connection -----------------------------------------------------------------------

    def connect_now(self, *, quiet: bool = False) -> None:
        """Connect to the cluster (blocking; a no-op when connected).

        Args:
            quiet: Keep what Ray prints on standard error while it connects (its start-up
                chatter) out of this process's output; a failure still raises.
                The command line's choice: it redirects the process's file descriptor 2
                for the moment, which an application with threads writing there may mind.

        Raises:
            ExecutorError: No address was given, or the cluster cannot be reached.
        """
        if ray.is_initialized():
            return
        if not self.address:
            raise ExecutorError(
                "ray", "no cluster address: give --ray-address (or RayExecutor(address=...)) "
                "or set RAY_ADDRESS",
            )  # fmt: skip
        # Ray's own start-up chatter stays out of the job's output (warnings still show).
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")
        options: dict[str, Any] = {
            "address": self.address,
            "log_to_driver": False,
            "logging_level": logging.WARNING,
            "namespace": "treefork",
            **self.init_options,
        }
        if self.runtime_env:
            options["runtime_env"] = self.runtime_env
        _cluster_messages_to_stderr()
        _check_reachable(self.address)
        with _stderr_kept(quiet):
            try:
                ray.init(**options)
            except (ConnectionError, RuntimeError, ValueError) as error:
                raise ExecutorError(
                    f"ray cluster at {self.address}", f"cannot connect: {_first_line(error)}"
                ) from error

    async def connect(self) -> None:
        """Connect to the cluster, in a worker thread (see :meth:`connect_now`)."""
        async with self._connect_lock:
            if not ray.is_initialized():
                await anyio.to_thread.run_sync(self.connect_now)

    # -- agents -----------------------------------------------------------------------------

    async def _base(self, base: BaseContent) -> list[ray.ObjectRef[bytes]]:
        """The base bundle's reference (put in the object store on first use), or none
        when the nodes fetch from the shared remote."""
        if base.key in self._bases:
            self._bases.move_to_end(base.key)
            return self._bases[base.key]
        async with self._base_locks.setdefault(base.key, anyio.Lock()):
            if base.key not in self._bases:
                if self._remote_url:
                    await base.publish(self._remote_url)
                    refs: list[ray.ObjectRef[bytes]] = []
                else:
                    data = await base.bundle()
                    refs = [await anyio.to_thread.run_sync(ray.put, data)]
                self._bases[base.key] = refs
                while len(self._bases) > _BASES_KEPT:
                    self._bases.popitem(last=False)
        return self._bases[base.key]

    async def run_agent(self, task: AgentTask, base: BaseContent) -> AgentOutcome:
        try:
            await self.connect()
        except ExecutorError as error:
            return _lost(task, str(error))
        refs = await self._base(base)
        options: dict[str, Any] = {
            "num_cpus": self.num_cpus,
            "max_retries": self.max_retries,
            "retry_exceptions": False,
        }
        if self.resources:
            options["resources"] = self.resources
        ref = _agent_task.options(**options).remote(task, refs)
        try:
            outcome: AgentOutcome = await asyncio.wrap_future(ref.future())
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._cancel(ref)
            raise
        except ray_errors.TaskCancelledError:
            return _lost(task, "its Ray task was cancelled on the cluster")
        except (ray_errors.WorkerCrashedError, ray_errors.NodeDiedError) as error:
            return _lost(
                task,
                f"its Ray task was lost {self.max_retries + 1} times (worker or node died): "
                f"{_first_line(error)}",
            )
        except ray_errors.RayError as error:
            return _lost(task, f"its Ray task failed: {_first_line(error)}")
        return outcome

    async def _cancel(self, ref: ray.ObjectRef[AgentOutcome]) -> None:
        """Stop a task: gently (its commands stopped), then by force after the grace."""
        await anyio.to_thread.run_sync(lambda: ray.cancel(ref, force=False))
        with anyio.move_on_after(self.cancel_grace):
            with contextlib.suppress(Exception):  # cancelled, as asked
                await asyncio.wrap_future(ref.future())
            return
        await anyio.to_thread.run_sync(lambda: ray.cancel(ref, force=True))


def _cluster_messages_to_stderr() -> None:
    """Send the cluster's messages to the driver (a node died, a worker was killed) to
    standard error: Ray prints them on standard output, where they would corrupt a
    command's ``--json`` (a private hook of Ray's; left alone if it is not there)."""
    worker = getattr(getattr(ray, "_private", None), "worker", None)
    printing = getattr(worker, "print_to_stdstream", None)
    if worker is None or printing is None or getattr(printing, "treefork", False):
        return

    def to_stderr(data: dict[str, Any], ignore_prefix: bool) -> None:
        printing({**data, "is_err": True}, ignore_prefix)

    to_stderr.treefork = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr


def _check_reachable(address: str) -> None:
    """Refuse at once an address where nothing listens (``ray.init`` retries for minutes).

    Raises:
        ExecutorError: Nothing accepts connections there.
    """
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if address == "auto" or not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except OSError as error:
        raise ExecutorError(
            f"ray cluster at {address}", f"cannot connect: nothing answers there ({error})"
        ) from error


@contextlib.contextmanager
def _stderr_kept(quiet: bool) -> Iterator[None]:
    """Standard error (file descriptor 2) sent to a temporary file while in the block."""
    if not quiet:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as kept:
        os.dup2(kept.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _lost(task: AgentTask, reason: str) -> AgentOutcome:
    return AgentOutcome(False, f"{task.item_id}: {reason}", "", Usage(), node="")
