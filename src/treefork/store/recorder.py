"""How the engine reaches the job store: a reference in the graph settings, a job-bound
recorder for the nodes, and the event log sink.

- :class:`StoreRef` is what :func:`treefork.build_graph` keeps: a given :class:`JobStore`,
  or the store of the treefork home the job runs with (resolved when the job runs, since
  ``TREEFORK_HOME`` may be set after the graph is built).
- :class:`JobRecorder` is the engine's async view of one job's records. Every call runs the
  blocking SQLite work on a worker thread; a recorder without a store records nothing and
  knows nothing, so the engine runs exactly as it did without durability.
- :class:`EventLog` is an event sink: every event goes to the store's ``events`` table and
  to ``<home>/jobs/<job>/events.jsonl``, in emission order, written by a thread of its own
  so that emitting never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import json
import logging
import os
import queue
import threading
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

import anyio

from treefork.core.masking import mask
from treefork.errors import disk_full_in
from treefork.home import treefork_home
from treefork.store.jobstore import JobStore, close_all_stores, next_batch, shared_store

__all__ = ("EventLog", "JobRecorder", "StoreRef", "events_path")

T = TypeVar("T")

logger = logging.getLogger("treefork.store")


def events_path(home: Path, job_id: str) -> Path:
    """The JSONL event log of a job."""
    return home / "jobs" / job_id / "events.jsonl"


class StoreRef:
    """The job store a graph records into.

    Args:
        store: A store to use; None means the store of the job's treefork home.
    """

    def __init__(self, store: JobStore | None = None) -> None:
        self.store = store
        self._by_home: dict[Path, JobStore] = {}
        self._lock = threading.Lock()

    def get(self, home: Path) -> JobStore:
        """The store for a job running with this treefork home."""
        if self.store is not None:
            return self.store
        with self._lock:
            store = self._by_home.get(home)
            if store is None or not store.is_open:
                # Held here so the shared connection lives as long as the graph does.
                store = self._by_home[home] = shared_store(home)
            return store


class JobRecorder:
    """One job's records, for the engine (async; a no-op without a store).

    Args:
        store: The job store, or None to record nothing.
        job_id: The job.
    """

    def __init__(self, store: JobStore | None, job_id: str) -> None:
        self.store = store
        self.job_id = job_id

    @property
    def enabled(self) -> bool:
        """Whether anything is recorded."""
        return self.store is not None

    async def _call(self, default: T, method: str, *args: Any, **kwargs: Any) -> T:
        """A read, on a worker thread."""
        if self.store is None:
            return default
        call: Callable[..., T] = getattr(self.store, method)
        return await anyio.to_thread.run_sync(functools.partial(call, *args, **kwargs))

    async def _write(self, method: str, *args: Any, **kwargs: Any) -> None:
        """A write, committed with whatever other writes queued up meanwhile (agents that
        end together share one commit); returns once it is committed. A cancelled caller
        still waits for that, as it would for a write made on a worker thread."""
        if self.store is None:
            return
        # Nothing the job store keeps (results, the DLQ, items) holds a secret value.
        call = functools.partial(getattr(self.store, method), *mask(args), **mask(kwargs))
        future = self.store.submit(call)
        with anyio.CancelScope(shield=True):
            await asyncio.wrap_future(future)

    # -- job -----------------------------------------------------------------------------------

    async def job_started(self, **fields: Any) -> None:
        """Create or update the job's row (status ``running``)."""
        await self._write("start_job", self.job_id, status="running", **fields)

    async def record_job(self, **fields: Any) -> None:
        """Create or update the job's row with the non-None ``fields``."""
        await self._write("start_job", self.job_id, **fields)

    async def update_job(self, **fields: Any) -> None:
        """Set columns of the job's row."""
        await self._write("update_job", self.job_id, **fields)

    async def job(self) -> dict[str, Any] | None:
        """The job's row, or None."""
        return await self._call(None, "job", self.job_id)

    # -- domains -------------------------------------------------------------------------------

    async def domain(self, domain: str) -> dict[str, Any] | None:
        """A domain's recorded phases, or None."""
        return await self._call(None, "domain", self.job_id, domain)

    async def phase_done(
        self, domain: str, phase: str, facts: Mapping[str, Any] | None, *, status: str | None = None
    ) -> None:
        """Record a finished phase (None forgets it, so that it runs again)."""
        await self._write("record_phase", self.job_id, domain, phase, facts, status=status)

    # -- agents --------------------------------------------------------------------------------

    async def agents(self, domain: str | None = None) -> list[dict[str, Any]]:
        """Recorded agents (of one domain)."""
        return await self._call([], "agents", self.job_id, domain)

    async def agent_started(
        self,
        domain: str,
        *,
        item_id: str,
        item_index: int,
        item: Any,
        attempt: int,
        branch: str | None,
    ) -> None:
        """Record that an agent attempt started."""
        await self._write(
            "agent_started",
            self.job_id,
            domain,
            item_id=item_id,
            item_index=item_index,
            item=item,
            attempt=attempt,
            branch=branch,
        )

    async def attempt_finished(
        self, domain: str, result: Mapping[str, Any], *, head: str | None
    ) -> None:
        """Record how an attempt ended (``result`` is the attempt's AgentResult)."""
        await self._write(
            "attempt_finished",
            self.job_id,
            domain,
            item_id=result["item_id"],
            attempt=int(result["attempts"]),
            status=result["status"],
            error=result["error"],
            output_tail=result["output_tail"],
            branch=result["branch"],
            head=head,
            tokens=int(result["tokens"]),
            cost=float(result["cost"]),
        )

    async def agent_finished(
        self,
        domain: str,
        result: Mapping[str, Any],
        *,
        merge: str,
        head: str | None = None,
        dead_letter: bool = True,
        attempt: bool = False,
    ) -> None:
        """Record an agent's result (see :meth:`JobStore.record_agent`); with ``attempt``,
        the end of its last attempt too, in the same transaction."""
        await self._write(
            "record_agent",
            self.job_id,
            domain,
            result,
            merge=merge,
            head=head,
            dead_letter=dead_letter,
            attempt=attempt,
        )

    # -- resources -----------------------------------------------------------------------------

    async def resource(self, kind: str, name: str, *, role: str, repo: str | None = None) -> None:
        """Record a worktree or branch the job made or uses."""
        await self._write("record_resource", self.job_id, kind, name, role=role, repo=repo)

    async def resource_removed(self, kind: str, name: str) -> None:
        """Record that a worktree or branch was removed."""
        await self._write("resource_removed", kind, name)


class EventLog:
    """Event sink writing every event to the job store and the job's JSONL file.

    Emitting never blocks: the event is queued and one writer thread per sink appends the
    queue, in order, to the store's ``events`` table and to ``<home>/jobs/<job>/events.jsonl``,
    taking whatever queued up meanwhile as one batch (one transaction, one append per job
    file), so that a burst of events costs about as much as one. The thread ends when the
    queue stays empty and starts again with the next event. :meth:`flush` waits until
    everything queued is written; merge review flushes at the end of every job, and pending
    events are flushed at exit.

    Args:
        ref: Where the store is.
        home: The treefork home override the graph was built with (None: ``TREEFORK_HOME``
            as it is when each event is emitted).
    """

    _IDLE_SECONDS = 1.0
    _BATCH = 500
    _OPEN_FILES = 32

    def __init__(self, ref: StoreRef, home: Path | None = None) -> None:
        self.ref = ref
        self.home = home
        self._queue: queue.SimpleQueue[tuple[str | None, dict[str, Any]]] = queue.SimpleQueue()
        self._state = threading.Condition()
        self._pending = 0
        self._writer: threading.Thread | None = None
        self._files: dict[Path, IO[str]] = {}
        """Job files open for appending; only the writer thread touches them."""
        self._full_reported = False
        _live_logs.add(self)

    def __call__(self, event: dict[str, Any]) -> None:
        # The home is read now (the environment may change later); resolving it (which may
        # create the folder) is the writer's job.
        home = str(self.home) if self.home is not None else os.environ.get("TREEFORK_HOME")
        with self._state:
            self._pending += 1
            self._queue.put((home, dict(event)))
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_all, name="treefork-events", daemon=True
                )
                self._writer.start()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event emitted so far is written; False on timeout."""
        with self._state:
            return self._state.wait_for(lambda: self._pending == 0, timeout)

    def _stop_if_idle(self) -> bool:
        with self._state:
            if not self._queue.empty():
                return False
            self._close_files()
            self._writer = None
            return True

    def _write_all(self) -> None:
        while True:
            # Whatever queued up meanwhile goes in the same batch: one transaction and one
            # append per job file, however many events.
            batch = next_batch(
                self._queue, limit=self._BATCH, idle=self._IDLE_SECONDS, stop=self._stop_if_idle
            )
            if batch is None:
                return
            try:
                self._write(batch)
            except Exception as error:  # a log must never break the job; say so and go on
                kinds = ", ".join(sorted({str(event.get("event")) for _, event in batch}))
                full = disk_full_in(error, default=treefork_home())
                if full is None:
                    logger.exception("could not write events (%s) to the job log", kinds)
                elif not self._full_reported:  # once: the job itself stops on it soon
                    self._full_reported = True
                    logger.warning("could not write events (%s) to the job log: %s", kinds, full)
            finally:
                with self._state:
                    self._pending -= len(batch)
                    self._state.notify_all()

    def _write(self, batch: list[tuple[str | None, dict[str, Any]]]) -> None:
        by_home: dict[str | None, list[dict[str, Any]]] = {}
        for home_setting, event in batch:
            by_home.setdefault(home_setting, []).append(event)
        for home_setting, events in by_home.items():
            home = treefork_home(home_setting)
            # The JSONL file first: a live tail sees the events even while the store waits
            # for another job's transaction.
            lines: dict[str, list[str]] = {}
            for event in events:
                job_id = str(event.get("job_id") or "")
                if job_id:
                    lines.setdefault(job_id, []).append(json.dumps(event, default=str) + "\n")
            for job_id, text in lines.items():
                log = self._file(events_path(home, job_id))
                log.write("".join(text))
                log.flush()
            self.ref.get(home).append_events(events)

    def _file(self, path: Path) -> IO[str]:
        """The open JSONL file of a job (kept open while the writer runs)."""
        log = self._files.get(path)
        if log is None:
            if len(self._files) >= self._OPEN_FILES:
                self._close_files()
            path.parent.mkdir(parents=True, exist_ok=True)
            log = self._files[path] = path.open("a", encoding="utf-8")
        return log

    def _close_files(self) -> None:
        files, self._files = self._files, {}
        for log in files.values():
            try:
                log.close()
            except OSError:
                logger.exception("could not close the event log %s", log.name)


_live_logs: weakref.WeakSet[EventLog] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    # Registered after the store module's own exit hook, so it runs first (atexit is LIFO):
    # the logs are written before the stores close.
    for log in list(_live_logs):
        log.flush(timeout=10)
    close_all_stores()
