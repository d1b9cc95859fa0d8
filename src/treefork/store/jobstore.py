"""The job store: what survives a crash, in SQLite in the treefork home.

:class:`JobStore` is the one seam for this kind of I/O. Its methods are plain blocking calls
on one connection (WAL mode, so readers never wait for the writer and several processes
share the file); each write is one short transaction. The engine calls them through
:class:`~treefork.store.recorder.JobRecorder`, which runs them on a worker thread; the CLI
and reports call them directly.

Durability: a committed write survives the process being killed at any instant (SIGKILL
included). ``synchronous=NORMAL`` means an operating-system crash or power loss may lose the
last few milliseconds of writes, never corrupt the file.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from treefork.errors import StoreError, disk_full_in
from treefork.store.schema import migrate

T = TypeVar("T")

__all__ = ("STORE_FILE", "JobStore", "close_all_stores", "shared_store")

STORE_FILE = "treefork.db"
"""The store's file name in the treefork home."""

_BUSY_TIMEOUT_MS = 30_000

_JSON_COLUMNS = frozenset(
    {
        "options",
        "summary",
        "setup",
        "map",
        "reduce",
        "tests",
        "integrate",
        "result",
        "item",
        "payload",
    }
)
_JOB_COLUMNS = frozenset(
    {
        "repo",
        "task",
        "workflow",
        "workflow_path",
        "options",
        "status",
        "merge_status",
        "merge_commit",
        "merge_message",
        "base_branch",
        "base_commit",
        "session_branch",
        "summary",
        "discarded",
        "pid",
        "finished_at",
    }
)
_PHASES = frozenset({"setup", "map", "reduce", "tests", "integrate", "result"})


def _encode(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def _decode_row(row: sqlite3.Row) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in row.keys():  # noqa: SIM118 (sqlite3.Row is not a mapping)
        value = row[key]
        out[key] = json.loads(value) if key in _JSON_COLUMNS and isinstance(value, str) else value
    return out


def _use_wal(connection: sqlite3.Connection) -> None:
    """Switch the database to WAL, waiting out other processes doing the same.

    SQLite answers "database is locked" at once, without its busy handler, while another
    connection holds the lock that changing the journal mode needs: two jobs starting
    together on a new treefork home met it about one time in six.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class JobStore:
    """Jobs, domains, agent results, DLQ, events and resources of one treefork home.

    Args:
        path: The database file; created (with its folder) if missing.

    Raises:
        StoreError: The file cannot be opened or was written by a newer treefork.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._in_batch = False
        self._writer: _BatchWriter | None = None
        self._writer_lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self.path,
                timeout=_BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            connection.row_factory = sqlite3.Row
            _use_wal(connection)
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            migrate(connection, location=str(self.path))
        except (sqlite3.Error, OSError) as error:
            raise StoreError(self.path, str(error)) from error
        self._connection: sqlite3.Connection | None = connection
        self.pid = os.getpid()
        """The process that opened it (a connection must never cross a fork)."""
        # Closed when the store is closed or garbage-collected; at interpreter exit by
        # close_all_stores, after the event logs are flushed (a weakref finalizer would run
        # before them).
        self._finalizer = weakref.finalize(self, connection.close)
        self._finalizer.atexit = False
        _live_stores.add(self)

    @classmethod
    def in_home(cls, home: Path) -> JobStore:
        """The store of a treefork home (``<home>/treefork.db``)."""
        return cls(home / STORE_FILE)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._connection = None
            self._finalizer()

    @property
    def is_open(self) -> bool:
        """Whether the connection is open."""
        return self._connection is not None

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._connection is None:
                raise StoreError(self.path, "the store is closed")
            connection = self._connection
            if self._in_batch:
                # One write of a batch (see write_batch): its own savepoint, so that a
                # failing write takes back only its own changes.
                connection.execute("SAVEPOINT write")
                try:
                    yield connection
                except BaseException:
                    _undo(connection, "ROLLBACK TO write", "RELEASE write")
                    raise
                connection.execute("RELEASE write")
                return
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                raise StoreError(self.path, str(error)) from error
            try:
                yield connection
            except BaseException:
                _undo(connection, "ROLLBACK")
                raise
            connection.execute("COMMIT")

    def _failure(self, error: BaseException) -> Exception:
        """What each write of a failed batch gets: a full disk as such, else a store error."""
        full = disk_full_in(error, default=self.path)
        return full if full is not None else StoreError(self.path, str(error))

    def write_batch(self, writes: Sequence[Callable[[], Any]]) -> list[BaseException | None]:
        """Run several writes (calls of this store's methods) in one transaction.

        Each write succeeds or fails as a whole and on its own (a savepoint each); the
        transaction is committed once for all, which is what makes a batch cheaper than its
        writes one by one. Returns, for each write, the exception it raised or None.
        """
        with self._lock:
            if self._connection is None:
                error = StoreError(self.path, "the store is closed")
                return [error for _ in writes]
            connection = self._connection
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                failed = self._failure(error)
                return [failed for _ in writes]
            outcomes: list[BaseException | None] = []
            self._in_batch = True
            try:
                for write in writes:
                    connection.execute("SAVEPOINT batch_write")
                    try:
                        write()
                    except Exception as error:  # that write's own failure, reported to it
                        if disk_full_in(error, default=self.path):
                            raise  # the whole batch fails: nothing more fits
                        _undo(connection, "ROLLBACK TO batch_write")
                        outcomes.append(error)
                    else:
                        outcomes.append(None)
                    connection.execute("RELEASE batch_write")
                connection.execute("COMMIT")
            except Exception as error:  # the commit failed: none of the writes happened
                _undo(connection, "ROLLBACK")
                failed = self._failure(error)
                return [failed for _ in writes]
            except BaseException:
                # Interrupted between writes: the ones that returned are kept, as they
                # would have been written one by one.
                connection.execute("COMMIT")
                raise
            finally:
                self._in_batch = False
            return outcomes

    def submit(self, write: Callable[[], Any]) -> Future[None]:
        """Queue a write for the store's writer thread, which commits whatever queued up
        together (see :meth:`write_batch`); the future is done once it is committed."""
        with self._writer_lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = _BatchWriter(self)
            return self._writer.submit(write)

    def _query(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            if self._connection is None:
                raise StoreError(self.path, "the store is closed")
            try:
                rows = self._connection.execute(sql, parameters).fetchall()
            except sqlite3.Error as error:
                raise StoreError(self.path, str(error)) from error
        return [_decode_row(row) for row in rows]

    # -- jobs ----------------------------------------------------------------------------------

    def start_job(self, job_id: str, **fields: Any) -> None:
        """Create the job's row, or update it with the non-None ``fields`` given.

        Args:
            job_id: The job.
            **fields: Columns of ``jobs`` (``repo``, ``task``, ``workflow_path``,
                ``options``, ``base_branch``, ...); a new job's ``status`` is ``running``
                unless given.
        """
        given = {key: value for key, value in fields.items() if value is not None}
        now = time.time()
        with self._transaction() as connection:
            connection.execute(
                "INSERT INTO jobs (job_id, status, created_at, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (job_id) DO NOTHING",
                (job_id, given.get("status", "running"), now, now),
            )
            self._update_job(connection, job_id, given, now)

    def update_job(self, job_id: str, **fields: Any) -> None:
        """Set columns of an existing job (None values are written as NULL)."""
        with self._transaction() as connection:
            self._update_job(connection, job_id, fields, time.time())

    @staticmethod
    def _update_job(
        connection: sqlite3.Connection, job_id: str, fields: Mapping[str, Any], now: float
    ) -> None:
        unknown = set(fields) - _JOB_COLUMNS
        if unknown:
            raise ValueError(f"unknown job columns {sorted(unknown)}")
        if not fields:
            return
        columns = ", ".join(f"{key} = ?" for key in fields)
        values = tuple(
            _encode(value) if key in _JSON_COLUMNS and value is not None else value
            for key, value in fields.items()
        )
        connection.execute(
            f"UPDATE jobs SET {columns}, updated_at = ? WHERE job_id = ?",
            (*values, now, job_id),
        )

    def job(self, job_id: str) -> dict[str, Any] | None:
        """One job with its item counts, or None if the store does not know it."""
        rows = self._query(_JOBS_QUERY + " WHERE jobs.job_id = ?", (job_id,))
        return rows[0] if rows else None

    def jobs(self) -> list[dict[str, Any]]:
        """Every job, newest first, with item counts (``succeeded``, ``failed``, ...)."""
        return self._query(_JOBS_QUERY + " ORDER BY jobs.created_at DESC, jobs.job_id")

    # -- domains -------------------------------------------------------------------------------

    def record_phase(
        self,
        job_id: str,
        domain: str,
        phase: str,
        facts: Mapping[str, Any] | None,
        *,
        status: str | None = None,
    ) -> None:
        """Record that a domain's phase finished (``facts``), or forget it (None).

        Args:
            job_id: The job.
            domain: The domain.
            phase: ``setup``, ``map``, ``reduce``, ``tests``, ``integrate`` or ``result``.
            facts: What resuming needs to know about it (JSON-compatible).
            status: The domain's status, when it changes.
        """
        if phase not in _PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        value = _encode(facts) if facts is not None else None
        now = time.time()
        with self._transaction() as connection:
            connection.execute(
                "INSERT INTO domains (job_id, domain, status, updated_at) "
                "VALUES (?, ?, 'running', ?) "
                "ON CONFLICT (job_id, domain) DO NOTHING",
                (job_id, domain, now),
            )
            connection.execute(
                f"UPDATE domains SET {phase} = ?, status = COALESCE(?, status), updated_at = ? "
                "WHERE job_id = ? AND domain = ?",
                (value, status, now, job_id, domain),
            )

    def domain(self, job_id: str, domain: str) -> dict[str, Any] | None:
        """A domain's recorded phases, or None."""
        rows = self._query(
            "SELECT * FROM domains WHERE job_id = ? AND domain = ?", (job_id, domain)
        )
        return rows[0] if rows else None

    def domains(self, job_id: str) -> list[dict[str, Any]]:
        """Every recorded domain of a job."""
        return self._query("SELECT * FROM domains WHERE job_id = ? ORDER BY domain", (job_id,))

    # -- agents --------------------------------------------------------------------------------

    def agent_started(
        self,
        job_id: str,
        domain: str,
        *,
        item_id: str,
        item_index: int,
        item: Any,
        attempt: int,
        branch: str | None,
    ) -> None:
        """Record that an attempt of an item's agent started."""
        now = time.time()
        with self._transaction() as connection:
            connection.execute(
                "INSERT INTO agents (job_id, domain, item_id, item_index, item, status, branch, "
                "attempts, updated_at) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?) "
                "ON CONFLICT (job_id, domain, item_id) DO UPDATE SET status = 'running', "
                "merge = NULL, head = NULL, branch = excluded.branch, "
                "attempts = excluded.attempts, "
                "updated_at = excluded.updated_at",
                (job_id, domain, item_id, item_index, _encode(item), branch, attempt, now),
            )
            connection.execute(
                "INSERT OR REPLACE INTO attempts "
                "(job_id, domain, item_id, attempt, status, branch, "
                "started_at) VALUES (?, ?, ?, ?, 'running', ?, ?)",
                (job_id, domain, item_id, attempt, branch, now),
            )
            if branch is not None:
                _insert_resource(connection, job_id, "branch", branch, role="agent", now=now)

    def attempt_finished(
        self,
        job_id: str,
        domain: str,
        *,
        item_id: str,
        attempt: int,
        status: str,
        error: str | None,
        output_tail: str,
        branch: str | None,
        head: str | None,
        tokens: int = 0,
        cost: float = 0.0,
    ) -> None:
        """Record how one attempt ended (every attempt is kept, for the DLQ)."""
        with self._transaction() as connection:
            _upsert_attempt(
                connection,
                job_id,
                domain,
                item_id=item_id,
                attempt=attempt,
                status=status,
                error=error,
                output_tail=output_tail,
                branch=branch,
                head=head,
                tokens=tokens,
                cost=cost,
            )

    def record_agent(
        self,
        job_id: str,
        domain: str,
        result: Mapping[str, Any],
        *,
        merge: str,
        head: str | None,
        dead_letter: bool = True,
        attempt: bool = False,
    ) -> None:
        """Record an item's agent result the moment it finished.

        A failed result enters the DLQ (or updates its entry) unless ``dead_letter`` is
        False (``on_item_failure: skip``); a succeeded one resolves its entry. With
        ``attempt``, the result's last attempt (``result["attempts"]``) is recorded as ended
        too, in the same transaction.

        Args:
            job_id: The job.
            domain: The domain.
            result: The :class:`~treefork.state.AgentResult`.
            merge: ``none`` (nothing to merge), ``pending`` (its commits are not merged
                yet), ``merged`` or ``conflict``.
            head: The agent's last commit, when it made commits.
            dead_letter: Whether a failure goes to the DLQ.
            attempt: Also record the attempt's end.
        """
        now = time.time()
        status = str(result["status"])
        with self._transaction() as connection:
            if attempt:
                _upsert_attempt(
                    connection,
                    job_id,
                    domain,
                    item_id=str(result["item_id"]),
                    attempt=int(result.get("attempts") or 1),
                    status=status,
                    error=result.get("error"),
                    output_tail=str(result.get("output_tail") or ""),
                    branch=result.get("branch"),
                    head=head,
                    tokens=int(result.get("tokens") or 0),
                    cost=float(result.get("cost") or 0.0),
                    started_at=result.get("started_at"),
                )
            connection.execute(
                "INSERT INTO agents "
                "(job_id, domain, item_id, item_index, item, status, merge, head, "
                "branch, attempts, result, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (job_id, domain, item_id) DO UPDATE SET status = excluded.status, "
                "merge = excluded.merge, head = excluded.head, branch = excluded.branch, "
                "attempts = excluded.attempts, result = excluded.result, "
                "updated_at = excluded.updated_at",
                (
                    job_id,
                    domain,
                    result["item_id"],
                    result["item_index"],
                    _encode(result["item"]),
                    status,
                    merge,
                    head,
                    result.get("branch"),
                    int(result.get("attempts") or 0),
                    _encode(result),
                    now,
                ),
            )
            if status == "failed" and dead_letter:
                connection.execute(
                    "INSERT INTO dlq (job_id, domain, item_id, item_index, item, error, branch, "
                    "attempts, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (job_id, domain, item_id) DO UPDATE SET error = excluded.error, "
                    "branch = excluded.branch, attempts = excluded.attempts, resolved_at = NULL",
                    (
                        job_id,
                        domain,
                        result["item_id"],
                        result["item_index"],
                        _encode(result["item"]),
                        result.get("error"),
                        result.get("branch"),
                        int(result.get("attempts") or 0),
                        now,
                    ),
                )
            elif status == "succeeded":
                connection.execute(
                    "UPDATE dlq SET resolved_at = ? "
                    "WHERE job_id = ? AND domain = ? AND item_id = ? "
                    "AND resolved_at IS NULL",
                    (now, job_id, domain, result["item_id"]),
                )

    def agents(self, job_id: str, domain: str | None = None) -> list[dict[str, Any]]:
        """Recorded agents of a job (of one domain), in item order."""
        if domain is None:
            return self._query(
                "SELECT * FROM agents WHERE job_id = ? ORDER BY domain, item_index", (job_id,)
            )
        return self._query(
            "SELECT * FROM agents WHERE job_id = ? AND domain = ? ORDER BY item_index",
            (job_id, domain),
        )

    def attempts(self, job_id: str, domain: str, item_id: str) -> list[dict[str, Any]]:
        """Every recorded attempt of one item, first first."""
        return self._query(
            "SELECT * FROM attempts WHERE job_id = ? AND domain = ? AND item_id = ? "
            "ORDER BY attempt",
            (job_id, domain, item_id),
        )

    # -- dead letter queue ---------------------------------------------------------------------

    def dlq(
        self, job_id: str | None = None, *, include_resolved: bool = False
    ) -> list[dict[str, Any]]:
        """Failed items (of one job, or of all), oldest first."""
        return self._listing(
            "dlq",
            job_id,
            None if include_resolved else "resolved_at IS NULL",
            "added_at, job_id, domain, item_index",
        )

    # -- events --------------------------------------------------------------------------------

    def append_event(self, event: Mapping[str, Any]) -> int:
        """Store one progress event; returns its sequence number."""
        with self._transaction() as connection:
            cursor = connection.execute(_INSERT_EVENT, _event_row(event))
            return int(cursor.lastrowid or 0)

    def append_events(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Store progress events, in order, in one transaction."""
        with self._transaction() as connection:
            connection.executemany(_INSERT_EVENT, [_event_row(event) for event in events])

    def events(self, job_id: str, *, after: int = 0) -> list[dict[str, Any]]:
        """A job's events in order, each as it was emitted plus ``seq`` (its number).

        Args:
            job_id: The job.
            after: Only events with a sequence number above this (for following a log).
        """
        rows = self._query(
            "SELECT id, payload FROM events WHERE job_id = ? AND id > ? ORDER BY id",
            (job_id, after),
        )
        return [{**row["payload"], "seq": row["id"]} for row in rows]

    # -- resources -----------------------------------------------------------------------------

    def record_resource(
        self, job_id: str, kind: str, name: str, *, role: str, repo: str | None = None
    ) -> None:
        """Record a worktree (path) or branch a job made or uses."""
        with self._transaction() as connection:
            _insert_resource(connection, job_id, kind, name, role=role, repo=repo)

    def resource_removed(self, kind: str, name: str) -> None:
        """Record that a worktree or branch was removed."""
        with self._transaction() as connection:
            connection.execute(
                "UPDATE resources SET removed_at = ? "
                "WHERE kind = ? AND name = ? AND removed_at IS NULL",
                (time.time(), kind, name),
            )

    def resources(
        self, job_id: str | None = None, *, live_only: bool = False
    ) -> list[dict[str, Any]]:
        """Recorded worktrees and branches (of one job), oldest first."""
        return self._listing(
            "resources", job_id, "removed_at IS NULL" if live_only else None, "created_at, name"
        )

    def _listing(
        self, table: str, job_id: str | None, condition: str | None, order: str
    ) -> list[dict[str, Any]]:
        """Rows of a table, of one job or of all, with an optional extra condition."""
        conditions = ["1 = 1"] if condition is None else [condition]
        parameters: tuple[Any, ...] = ()
        if job_id is not None:
            conditions.append("job_id = ?")
            parameters = (job_id,)
        where = " AND ".join(conditions)
        return self._query(f"SELECT * FROM {table} WHERE {where} ORDER BY {order}", parameters)


_JOBS_QUERY = """
SELECT jobs.*,
    COALESCE(counts.succeeded, 0) AS succeeded,
    COALESCE(counts.failed, 0) AS failed,
    COALESCE(counts.skipped, 0) AS skipped,
    COALESCE(counts.running, 0) AS running,
    COALESCE(counts.total, 0) AS total,
    COALESCE(dead.open, 0) AS dlq,
    MAX(jobs.updated_at, COALESCE(counts.last_update, 0), COALESCE(phases.last_update, 0))
        AS last_activity
FROM jobs
LEFT JOIN (
    SELECT job_id,
        SUM(status = 'succeeded') AS succeeded,
        SUM(status = 'failed') AS failed,
        SUM(status = 'skipped') AS skipped,
        SUM(status = 'running') AS running,
        COUNT(*) AS total,
        MAX(updated_at) AS last_update
    FROM agents GROUP BY job_id
) AS counts ON counts.job_id = jobs.job_id
LEFT JOIN (
    SELECT job_id, MAX(updated_at) AS last_update FROM domains GROUP BY job_id
) AS phases ON phases.job_id = jobs.job_id
LEFT JOIN (
    SELECT job_id, COUNT(*) AS open FROM dlq WHERE resolved_at IS NULL GROUP BY job_id
) AS dead ON dead.job_id = jobs.job_id
"""

_live_stores: weakref.WeakSet[JobStore] = weakref.WeakSet()
_shared: weakref.WeakValueDictionary[Path, JobStore] = weakref.WeakValueDictionary()
_shared_lock = threading.Lock()


def next_batch(
    source: queue.SimpleQueue[T], *, limit: int, idle: float, stop: Callable[[], bool]
) -> list[T] | None:
    """The next batch a writer thread takes from its queue: the first item (waited for),
    then whatever queued up behind it, up to ``limit`` items. When nothing comes for ``idle``
    seconds, ``stop`` decides (under the lock its producers take) whether the thread ends:
    None then."""
    while True:
        try:
            first = source.get(timeout=idle)
        except queue.Empty:
            if stop():
                return None
            continue
        batch = [first]
        while len(batch) < limit:
            try:
                batch.append(source.get_nowait())
            except queue.Empty:
                break
        return batch


class _BatchWriter(threading.Thread):
    """The thread that commits a store's queued writes, a batch at a time.

    Ends when nothing was queued for a second; :meth:`JobStore.submit` starts another.
    """

    _IDLE_SECONDS = 1.0
    _BATCH = 256

    def __init__(self, store: JobStore) -> None:
        super().__init__(name="treefork-store", daemon=True)
        self.store = store
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[None]]] = queue.SimpleQueue()
        self._closed = False
        self.start()

    def submit(self, write: Callable[[], Any]) -> Future[None]:
        # Called under the store's writer lock, which run() takes before it ends: a write
        # is never queued to a thread that has stopped reading.
        future: Future[None] = Future()
        self._queue.put((write, future))
        return future

    def _stop_if_idle(self) -> bool:
        with self.store._writer_lock:
            if not self._queue.empty():
                return False
            self.store._writer = None
            return True

    def run(self) -> None:
        while True:
            batch = next_batch(
                self._queue, limit=self._BATCH, idle=self._IDLE_SECONDS, stop=self._stop_if_idle
            )
            if batch is None:
                return
            try:
                outcomes = self.store.write_batch([write for write, _ in batch])
            except BaseException as error:  # never leave a writer waiting
                outcomes = [error for _ in batch]
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.cancelled():  # its caller's task was cancelled meanwhile
                    continue
                if outcome is None:
                    future.set_result(None)
                else:
                    future.set_exception(outcome)


def _undo(connection: sqlite3.Connection, *statements: str) -> None:
    """Take a failed write back. After some errors (a full disk) SQLite has already rolled
    the whole transaction back; then there is nothing to undo, and the first error stands."""
    for statement in statements:
        if connection.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                connection.execute(statement)


_INSERT_EVENT = "INSERT INTO events (job_id, ts, kind, payload) VALUES (?, ?, ?, ?)"


def _event_row(event: Mapping[str, Any]) -> tuple[str, float, str, str]:
    return (
        str(event.get("job_id", "")),
        float(event.get("ts") or time.time()),
        str(event.get("event", "event")),
        _encode(dict(event)),
    )


def _insert_resource(
    connection: sqlite3.Connection,
    job_id: str,
    kind: str,
    name: str,
    *,
    role: str,
    repo: str | None = None,
    now: float | None = None,
) -> None:
    connection.execute(
        "INSERT INTO resources (kind, name, job_id, role, repo, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (kind, name) DO UPDATE SET "
        "job_id = excluded.job_id, role = excluded.role, removed_at = NULL",
        (kind, name, job_id, role, repo, time.time() if now is None else now),
    )


def _upsert_attempt(
    connection: sqlite3.Connection,
    job_id: str,
    domain: str,
    *,
    item_id: str,
    attempt: int,
    status: str,
    error: str | None,
    output_tail: str,
    branch: str | None,
    head: str | None,
    tokens: int,
    cost: float,
    started_at: float | None = None,
) -> None:
    """Record how an attempt ended (``started_at`` only fills a start not recorded yet)."""
    connection.execute(
        "INSERT INTO attempts (job_id, domain, item_id, attempt, status, error, "
        "output_tail, branch, head, tokens, cost, started_at, finished_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (job_id, domain, item_id, attempt) DO UPDATE SET "
        "status = excluded.status, error = excluded.error, "
        "output_tail = excluded.output_tail, branch = excluded.branch, "
        "head = excluded.head, tokens = excluded.tokens, cost = excluded.cost, "
        "started_at = COALESCE(attempts.started_at, excluded.started_at), "
        "finished_at = excluded.finished_at",
        (
            job_id,
            domain,
            item_id,
            attempt,
            status,
            error,
            output_tail,
            branch,
            head,
            tokens,
            cost,
            started_at,
            time.time(),
        ),
    )


def shared_store(home: Path) -> JobStore:
    """The store of a treefork home, shared within this process while anything holds it.

    Graphs built without an explicit store use it: every job of the process writes through
    one connection per home. The connection closes once no graph references the store.
    """
    path = (home / STORE_FILE).resolve()
    with _shared_lock:
        store = _shared.get(path)
        if store is None or not store.is_open or store.pid != os.getpid():
            store = JobStore(path)
            _shared[path] = store
        return store


@atexit.register
def close_all_stores() -> None:
    """Close every open store (at exit, after the event logs are flushed)."""
    for store in list(_live_stores):
        store.close()
