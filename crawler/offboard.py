"""Removing a dealership (`forecourt dealers remove`): the dealer and everything only its own.

First, with the dealership row locked: refused while it has a queued or running job;
otherwise it is paused (no scheduled run starts) and its dealer tokens are revoked (the API
processes drop them at once). Then its seen sets, events, rejects, vehicles (settling other
dealers' cross-dealer duplicate flags on the same VINs) and jobs go in bounded batches, each
its own short transaction, and the dealership row last, with its feed validators, schedule
state and tokens. An interrupted removal leaves the dealer paused with part of its data:
running it again finishes it. Job totals behind /metrics are running counts and stay.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg

from crawler.db import removal as removal_db
from crawler.errors import Busy
from crawler.models import Dealership

BATCH = 5_000


def refusal(dealer: Dealership, job_id: int, state: str) -> Busy:
    """The error for a dealership that cannot go yet: it has this queued or running job."""
    return Busy(f"dealership {dealer.slug!r} has {state} job {job_id}",
                hint=f"cancel it with `forecourt jobs cancel {job_id}`, then remove "
                     "the dealership again")


def remove(conn: psycopg.Connection, dealer: Dealership, batch: int = BATCH,
           on_batch: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Remove the dealership; returns how many rows of each kind went, and tokens revoked.
    `on_batch(what, n)` is told of each batch."""
    from pipelines.quality import settle_vanished

    job, revoked = removal_db.lock_and_retire(conn, dealer.id)
    if job is not None:
        raise refusal(dealer, job.id, job.state)
    counts = {"vehicles": 0, "vehicle events": 0, "rejects": 0, "seen rows": 0, "jobs": 0,
              "feed validators": 0, "schedule state": 0, "api tokens": 0,
              "other dealers' flags cleared": 0, "tokens revoked": revoked}

    def settle(vins: list[str]) -> None:
        counts["other dealers' flags cleared"] += settle_vanished(conn, vins)

    steps = (("seen rows", removal_db.delete_seen), ("vehicle events", removal_db.delete_events),
             ("rejects", removal_db.delete_rejects),
             ("vehicles", lambda c, d, n: removal_db.delete_vehicles(c, d, n, settle)),
             ("jobs", removal_db.delete_jobs))
    for what, step in steps:
        while n := step(conn, dealer.id, batch):
            counts[what] += n
            if on_batch:
                on_batch(what, n)
    last = removal_db.delete_dealership(conn, dealer.id, settle)
    if "job" in last:
        raise refusal(dealer, last["job"].id, last["job"].state)
    for what, key in (("vehicles", "vehicles"), ("vehicle events", "events"),
                      ("rejects", "rejects"), ("jobs", "jobs"), ("feed validators", "feed"),
                      ("schedule state", "schedule"), ("api tokens", "tokens")):
        counts[what] += last[key]
    return counts
