"""Job retention: finished jobs older than `job_retention_days` are deleted, with their
rejects and seen sets, in bounded batches (crawler.db.jobs.prune says what is always kept).

The reaper prunes a few batches at most every PRUNE_EVERY_S in each process that runs it;
`forecourt jobs prune` prunes everything due at once. Any number may run together: a batch
skips jobs another one holds. /metrics counters are running totals, so they do not drop.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from crawler.config import get_settings
from crawler.db import jobs as jobs_db

BATCH = 500  # jobs per statement (their rejects go in the same statement)
REAPER_BATCHES = 20  # at most this many batches per reaper pass
PRUNE_EVERY_S = 600.0

_last_pass: float | None = None
_lock = threading.Lock()


def prune(conn: psycopg.Connection, older_than_days: float | None = None,
          batch: int = BATCH, max_batches: int | None = None) -> dict[str, Any]:
    """Delete finished jobs older than `older_than_days` (default: the setting; 0 keeps
    every job) batch by batch until none is due or `max_batches` ran. Returns the deleted
    jobs' ids and how many rejects and seen rows went with them."""
    days = get_settings().job_retention_days if older_than_days is None else older_than_days
    total: dict[str, Any] = {"ids": [], "rejects": 0, "seen": 0}
    if days <= 0:
        return total
    batches = 0
    while max_batches is None or batches < max_batches:
        done = jobs_db.prune(conn, days, batch)
        batches += 1
        total["ids"] += done["ids"]
        total["rejects"] += done["rejects"]
        total["seen"] += done["seen"]
        if len(done["ids"]) < batch:
            break
    return total


def due_prune(conn: psycopg.Connection) -> dict[str, Any] | None:
    """The reaper's share: a bounded prune if this process did none for PRUNE_EVERY_S."""
    global _last_pass
    with _lock:
        now = time.monotonic()
        if _last_pass is not None and now - _last_pass < PRUNE_EVERY_S:
            return None
        _last_pass = now
    return prune(conn, max_batches=REAPER_BATCHES)
