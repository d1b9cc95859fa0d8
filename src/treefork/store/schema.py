"""The job store's SQLite schema, versioned.

One database file per treefork home (``<home>/treefork.db``), shared by every job and every
process using that home. The schema version lives in ``PRAGMA user_version``; opening a
store created by an older treefork upgrades it in place, and opening one created by a
newer treefork is refused rather than misread.

Tables (JSON columns hold plain JSON text)::

    jobs        one row per job: identity, how to rebuild its graph, status, merge outcome
    domains     one row per (job, domain): the facts of each finished phase
    agents      one row per (job, domain, item): the agent result the moment it finished
    attempts    one row per agent attempt: error and output tail of every try
    dlq         failed items: item data, error, branch; resolved when a retry succeeds
    events      every progress event of every job, in order
    resources   every worktree and branch a job made, and when it was removed
"""

from __future__ import annotations

import sqlite3

from treefork.errors import StoreError

__all__ = ("SCHEMA_VERSION", "migrate")

SCHEMA_VERSION = 1
"""The version this treefork writes; stored in ``PRAGMA user_version``."""

_VERSION_1 = """
CREATE TABLE jobs (
    job_id         TEXT PRIMARY KEY,
    repo           TEXT,
    task           TEXT,
    workflow       TEXT,                -- the workflow's name, when run from a file
    workflow_path  TEXT,                -- absolute path of the workflow file
    options        TEXT NOT NULL DEFAULT '{}',  -- JSON: what the CLI needs to rebuild the graph
    status         TEXT NOT NULL,       -- running, succeeded, partial, failed, skipped
    merge_status   TEXT,                -- pending, merged, rejected, refused, conflict, ...
    merge_commit   TEXT,
    merge_message  TEXT,
    base_branch    TEXT,
    base_commit    TEXT,
    session_branch TEXT,
    summary        TEXT,                -- JSON: files, failures, all_tests_passed, budget
    discarded      INTEGER NOT NULL DEFAULT 0,
    pid            INTEGER,
    created_at     REAL NOT NULL,
    updated_at     REAL NOT NULL,
    finished_at    REAL
);

CREATE TABLE domains (
    job_id      TEXT NOT NULL,
    domain      TEXT NOT NULL,
    status      TEXT NOT NULL,          -- running, succeeded, partial, failed
    setup       TEXT,                   -- JSON once setup finished: base_commit, items, variables
    map         TEXT,                   -- JSON once map finished: head (domain branch after merges)
    reduce      TEXT,                   -- JSON once reduce finished: head, variables
    tests       TEXT,                   -- JSON once tests ran: passed, output
    integrate   TEXT,                   -- JSON once merged into the session branch: commit
    result      TEXT,                   -- JSON DomainResult once the domain finished
    updated_at  REAL NOT NULL,
    PRIMARY KEY (job_id, domain)
);

CREATE TABLE agents (
    job_id       TEXT NOT NULL,
    domain       TEXT NOT NULL,
    item_id      TEXT NOT NULL,
    item_index   INTEGER NOT NULL,
    item         TEXT,                  -- JSON: the work item
    status       TEXT NOT NULL,         -- running, succeeded, failed, skipped
    merge        TEXT,                  -- none, pending, merged, conflict
    head         TEXT,                  -- the agent's last commit
    merge_commit TEXT,                  -- the domain branch after merging it
    branch       TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    result       TEXT,                  -- JSON AgentResult once finished
    updated_at   REAL NOT NULL,
    PRIMARY KEY (job_id, domain, item_id)
);

CREATE TABLE attempts (
    job_id      TEXT NOT NULL,
    domain      TEXT NOT NULL,
    item_id     TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    status      TEXT NOT NULL,          -- running, succeeded, failed
    error       TEXT,
    output_tail TEXT,
    branch      TEXT,
    head        TEXT,
    tokens      INTEGER NOT NULL DEFAULT 0,
    cost        REAL NOT NULL DEFAULT 0,
    started_at  REAL,
    finished_at REAL,
    PRIMARY KEY (job_id, domain, item_id, attempt)
);

CREATE TABLE dlq (
    job_id      TEXT NOT NULL,
    domain      TEXT NOT NULL,
    item_id     TEXT NOT NULL,
    item_index  INTEGER NOT NULL,
    item        TEXT,                   -- JSON: the work item
    error       TEXT,
    branch      TEXT,
    attempts    INTEGER NOT NULL,
    added_at    REAL NOT NULL,
    resolved_at REAL,                   -- set when a retry succeeded
    PRIMARY KEY (job_id, domain, item_id)
);

CREATE TABLE events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  TEXT NOT NULL,
    ts      REAL NOT NULL,
    kind    TEXT NOT NULL,
    payload TEXT NOT NULL               -- JSON: the whole event
);
CREATE INDEX events_by_job ON events (job_id, id);

CREATE TABLE resources (
    kind       TEXT NOT NULL,           -- worktree, branch
    name       TEXT NOT NULL,           -- path or branch name
    job_id     TEXT NOT NULL,
    role       TEXT NOT NULL,           -- session, domain, agent
    repo       TEXT,
    created_at REAL NOT NULL,
    removed_at REAL,
    PRIMARY KEY (kind, name)
);
CREATE INDEX resources_by_job ON resources (job_id);
"""

_MIGRATIONS: dict[int, str] = {1: _VERSION_1}
"""Script that brings a database from version ``n - 1`` to ``n``."""


def migrate(connection: sqlite3.Connection, *, location: str) -> None:
    """Create or upgrade the schema to :data:`SCHEMA_VERSION`.

    Args:
        connection: An open connection in autocommit mode.
        location: The database path, for the error message.

    Raises:
        StoreError: The database was written by a newer treefork.
    """
    current = int(connection.execute("PRAGMA user_version").fetchone()[0])
    if current > SCHEMA_VERSION:
        raise StoreError(
            location,
            f"schema version {current} is newer than this treefork reads ({SCHEMA_VERSION}); "
            "upgrade treefork",
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        connection.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated between our read and our lock.
            if int(connection.execute("PRAGMA user_version").fetchone()[0]) >= version:
                connection.execute("COMMIT")
                continue
            for statement in _MIGRATIONS[version].split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {version}")
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:  # a full disk has SQLite roll back by itself
                connection.execute("ROLLBACK")
            raise
