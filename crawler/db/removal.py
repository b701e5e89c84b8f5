"""SQL for removing a dealership and everything that is only its own.

Removal goes in bounded batches, each its own transaction (autocommit connection), so a
100k-vehicle dealer never holds locks for minutes in one cascade; the dealership row goes
last. Until then the dealer stays (paused, its tokens revoked), so running the removal again
finishes an interrupted one. Each `delete_*` function deletes up to `limit` rows and returns
how many went: call it until it returns 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from crawler.models import Job


def _lock_and_find_active(conn: psycopg.Connection, dealership_id: int) -> dict | None:
    """Lock the dealership row against new jobs (inside the caller's transaction); its
    queued or running job's row, if it has one."""
    conn.execute("SELECT 1 FROM dealerships WHERE id = %s FOR UPDATE", (dealership_id,))
    return conn.execute(
        "SELECT * FROM jobs WHERE dealership_id = %s AND state IN ('queued', 'running')",
        (dealership_id,)).fetchone()


def lock_and_retire(conn: psycopg.Connection, dealership_id: int) -> tuple[Job | None, int]:
    """In one transaction, with the dealership row locked against new jobs: its queued or
    running job if it has one (then nothing changes), else pause it and revoke its dealer
    tokens. Returns (active job, tokens revoked now)."""
    with conn.transaction():
        row = _lock_and_find_active(conn, dealership_id)
        if row is not None:
            return Job.model_validate(row), 0
        conn.execute("UPDATE dealerships SET paused = true, updated_at = now() WHERE id = %s",
                     (dealership_id,))
        revoked = conn.execute(
            "UPDATE api_tokens SET revoked_at = now()"
            " WHERE dealership_id = %s AND revoked_at IS NULL", (dealership_id,)).rowcount
    return None, revoked


def delete_seen(conn: psycopg.Connection, dealership_id: int, limit: int) -> int:
    """Seen sets left by the dealer's runs (run_seen has no dealer column: by its jobs)."""
    with conn.transaction():
        return conn.execute(
            """
            DELETE FROM run_seen WHERE ctid = ANY(ARRAY(
                SELECT s.ctid FROM run_seen s
                 WHERE s.job_id = ANY(ARRAY(SELECT id FROM jobs WHERE dealership_id = %s))
                 LIMIT %s))
            """, (dealership_id, limit)).rowcount


def delete_events(conn: psycopg.Connection, dealership_id: int, limit: int) -> int:
    """The dealer's vehicle events, along the (dealership_id, id) index."""
    with conn.transaction():
        return conn.execute(
            """
            DELETE FROM vehicle_events WHERE id = ANY(ARRAY(
                SELECT id FROM vehicle_events WHERE dealership_id = %s ORDER BY id LIMIT %s))
            """, (dealership_id, limit)).rowcount


def delete_rejects(conn: psycopg.Connection, dealership_id: int, limit: int) -> int:
    with conn.transaction():
        return conn.execute(
            """
            DELETE FROM rejects WHERE id = ANY(ARRAY(
                SELECT id FROM rejects WHERE dealership_id = %s LIMIT %s))
            """, (dealership_id, limit)).rowcount


def delete_vehicles(conn: psycopg.Connection, dealership_id: int, limit: int | None,
                    settle: Callable[[list[str]], Any]) -> int:
    """Up to `limit` (None: all) of the dealer's vehicles. In the same transaction
    `settle(vins)` is called with the real VINs the batch took off the market (active, not
    placeholders), so other dealers' cross-dealer duplicate flags on them are settled as the
    vehicles go."""
    with conn.transaction():
        rows = conn.execute(
            """
            DELETE FROM vehicles WHERE id = ANY(ARRAY(
                SELECT id FROM vehicles WHERE dealership_id = %s LIMIT %s))
            RETURNING vin, status, vin_placeholder
            """, (dealership_id, limit)).fetchall()
        vins = sorted({r["vin"] for r in rows
                       if r["status"] == "active" and not r["vin_placeholder"]})
        if vins:
            settle(vins)
    return len(rows)


def delete_jobs(conn: psycopg.Connection, dealership_id: int, limit: int) -> int:
    """The dealer's finished jobs (its vehicles, events, rejects and seen sets go first)."""
    with conn.transaction():
        return conn.execute(
            """
            DELETE FROM jobs WHERE id = ANY(ARRAY(
                SELECT id FROM jobs WHERE dealership_id = %s
                   AND state NOT IN ('queued', 'running') LIMIT %s))
            """, (dealership_id, limit)).rowcount


def delete_dealership(conn: psycopg.Connection, dealership_id: int,
                      settle: Callable[[list[str]], Any]) -> dict[str, Any]:
    """Last: the dealership row with what little is left (its feed validators, schedule
    state, tokens, and anything an operator's run wrote meanwhile: its vehicles settled as
    `delete_vehicles` does, the rest by cascade), unless a job is queued or running for it.
    Returns {"job": that job}, or the counts of what this step removed."""
    with conn.transaction():
        row = _lock_and_find_active(conn, dealership_id)
        if row is not None:
            return {"job": Job.model_validate(row)}
        counts = conn.execute(
            """
            SELECT (SELECT count(*) FROM feed_sources WHERE dealership_id = %(d)s) AS feed,
                   (SELECT count(*) FROM schedule_state WHERE dealership_id = %(d)s)
                       AS schedule,
                   (SELECT count(*) FROM api_tokens WHERE dealership_id = %(d)s) AS tokens,
                   (SELECT count(*) FROM vehicles WHERE dealership_id = %(d)s) AS vehicles,
                   (SELECT count(*) FROM vehicle_events WHERE dealership_id = %(d)s)
                       AS events,
                   (SELECT count(*) FROM rejects WHERE dealership_id = %(d)s) AS rejects,
                   (SELECT count(*) FROM jobs WHERE dealership_id = %(d)s) AS jobs
            """, {"d": dealership_id}).fetchone()
        delete_vehicles(conn, dealership_id, None, settle)  # a savepoint in this transaction
        conn.execute(
            "DELETE FROM run_seen WHERE job_id = ANY(ARRAY("
            "SELECT id FROM jobs WHERE dealership_id = %s))", (dealership_id,))
        conn.execute("DELETE FROM dealerships WHERE id = %s", (dealership_id,))
    return dict(counts)
