"""Durability: the job store, the job lock, and how the engine records into them.

::

    <home>/treefork.db              JobStore: jobs, domains, agents, attempts, DLQ, events, ...
    <home>/jobs/<job>.lock          JobLock: one process per job at a time
    <home>/jobs/<job>/events.jsonl  EventLog: every event of the job, one JSON object a line
"""

from treefork.store.jobstore import STORE_FILE, JobStore, shared_store
from treefork.store.lock import JobLock, job_lock_path
from treefork.store.recorder import EventLog, JobRecorder, StoreRef, events_path

__all__ = (
    "STORE_FILE",
    "EventLog",
    "JobLock",
    "JobRecorder",
    "JobStore",
    "StoreRef",
    "events_path",
    "job_lock_path",
    "shared_store",
)
