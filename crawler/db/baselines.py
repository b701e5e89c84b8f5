"""SQL for the runs the delisting gate compares a run with: a dealer's latest healthy
runs of a kind, and the runs an operator accepted as its new baseline."""

from __future__ import annotations

from typing import Any

import psycopg

from crawler.models import Job

GATE_BASELINE = 5  # healthy runs the delisting gate compares a run with


def recent_healthy(conn: psycopg.Connection, dealership_id: int, kind: str,
                   limit: int = GATE_BASELINE, exclude_job: int | None = None) -> list[Job]:
    """The dealership's latest healthy, complete runs of this kind: the gate's baseline. A
    run an operator accepted (see accept) counts as one, and none before it counts."""
    rows = conn.execute(
        """
        SELECT * FROM jobs
         WHERE dealership_id = %(d)s AND kind = %(k)s AND id IS DISTINCT FROM %(x)s
           AND ((state = 'succeeded' AND verdict = 'healthy') OR accepted_at IS NOT NULL)
           AND id >= coalesce((SELECT max(a.id) FROM jobs a
                                WHERE a.dealership_id = %(d)s AND a.kind = %(k)s
                                  AND a.accepted_at IS NOT NULL AND a.id IS DISTINCT FROM %(x)s),
                              0)
         ORDER BY id DESC LIMIT %(n)s
        """,
        {"d": dealership_id, "k": kind, "x": exclude_job, "n": limit},
    ).fetchall()
    return [Job.model_validate(r) for r in rows]


def recent_verdicts(conn: psycopg.Connection, dealership_id: int, kind: str, exclude_job: int,
                   limit: int = 500) -> list[tuple[bool, int, Any]]:
    """(degraded by its count alone, valid count, finished_at) of the dealership's latest
    finished runs of this kind, newest first, leaving out feed runs that found their feed
    unchanged (they judged nothing): what quality.gate.settled_count walks."""
    rows = conn.execute(
        """
        SELECT coalesce((report ->> 'count_only')::boolean, false) AS count_only,
               coalesce((report ->> 'valid')::int, 0) AS valid, finished_at
          FROM jobs
         WHERE dealership_id = %s AND kind = %s AND id <> %s AND finished_at IS NOT NULL
           AND NOT coalesce((report ->> 'unchanged_feed')::boolean, false)
         ORDER BY id DESC LIMIT %s
        """,
        (dealership_id, kind, exclude_job, limit),
    ).fetchall()
    return [(r["count_only"], r["valid"], r["finished_at"]) for r in rows]


def latest_accepted(conn: psycopg.Connection, dealership_id: int, kind: str) -> Job | None:
    """The dealership's newest run of this kind accepted as the gate's baseline."""
    row = conn.execute(
        "SELECT * FROM jobs WHERE dealership_id = %s AND kind = %s AND accepted_at IS NOT NULL"
        " ORDER BY id DESC LIMIT 1", (dealership_id, kind)).fetchone()
    return Job.model_validate(row) if row is not None else None


def mark_accepted(conn: psycopg.Connection, job_id: int) -> None:
    """Make a run the gate's new baseline (see recent_healthy), as the gate itself does for
    a run whose count has settled at a new level."""
    conn.execute("UPDATE jobs SET accepted_at = now() WHERE id = %s", (job_id,))


def accept(conn: psycopg.Connection, job_id: int) -> Job | None:
    """Accept a finished, complete run the gate judged degraded or failed as its
    dealership's new baseline (recent_healthy starts from it); None if it is not such a
    run (an incomplete or blocked one says nothing about the dealer's inventory), or if it
    stored no vehicle (an empty page or feed is never a sell-out, and a usual count of 0
    would let any later run pass the gate's count and remove the rest)."""
    row = conn.execute(
        """
        UPDATE jobs SET accepted_at = now(), updated_at = now()
         WHERE id = %s AND state IN ('partial', 'failed') AND verdict IN ('degraded', 'failed')
           AND (report ->> 'complete')::boolean AND accepted_at IS NULL
           AND coalesce((counters ->> 'valid')::int, 0) > 0
        RETURNING *
        """,
        (job_id,),
    ).fetchone()
    return Job.model_validate(row) if row is not None else None
