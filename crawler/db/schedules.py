"""SQL for dealership schedules and the scheduler's per-dealership state (migration 0003)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from crawler.models import Dealership

SCHEDULER_LOCK = 7_301_005  # advisory lock key held by the leading scheduler


def try_lead(conn: psycopg.Connection) -> bool:
    """Take (or confirm) the session-level leader lock; held until the connection closes."""
    return bool(conn.execute("SELECT pg_try_advisory_lock(%s) AS ok",
                             (SCHEDULER_LOCK,)).fetchone()["ok"])


def end_silent_leader(conn: psycopg.Connection, silent_s: float,
                      wait_ms: int = 5000) -> dict[str, Any] | None:
    """End the session holding the leader lock in this database if it is idle (or idle in a
    transaction) and has been for more than `silent_s` seconds: a frozen leader (stopped,
    stuck outside the database, a paused VM), since a live one queries every tick. A backend
    running a query is never ended. Waits up to `wait_ms` for it to exit (and so release the
    lock). Returns the ended session (pid, state, application_name, client, silent_s), or
    None. Needs the right to signal it: the same role, or pg_signal_backend."""
    return conn.execute(
        """
        SELECT a.pid, a.state, a.application_name,
               coalesce(host(a.client_addr) || ':' || a.client_port, 'local socket') AS client,
               extract(epoch FROM clock_timestamp() - a.state_change)::float8 AS silent_s,
               pg_terminate_backend(a.pid, %(wait)s) AS ended
          FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.classid = %(hi)s::bigint::oid AND l.objid = %(lo)s::bigint::oid
           AND a.pid <> pg_backend_pid()
           AND a.state IN ('idle', 'idle in transaction', 'idle in transaction (aborted)')
           AND a.state_change < clock_timestamp() - make_interval(secs => %(silent)s)
        """,
        # a one-bigint advisory key shows as its high and low 32 bits, objsubid 1
        {"hi": SCHEDULER_LOCK >> 32, "lo": SCHEDULER_LOCK & 0xFFFF_FFFF, "silent": silent_s,
         "wait": wait_ms},
    ).fetchone()


_LEADERS = """
    SELECT l.pid, extract(epoch FROM clock_timestamp() - a.state_change)::float8 AS silent_s
      FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND l.classid = %(hi)s::bigint::oid AND l.objid = %(lo)s::bigint::oid
    """
_LEADER_KEY = {"hi": SCHEDULER_LOCK >> 32, "lo": SCHEDULER_LOCK & 0xFFFF_FFFF}


async def aleaders(conn: psycopg.AsyncConnection) -> list[dict[str, Any]]:
    """The sessions holding the leader lock in this database (one while a scheduler leads,
    none while nobody schedules), each with how long it has been silent: seconds since it
    last started or finished a statement (a leader queries every tick; end_silent_leader
    ends one silent for scheduler_leader_stale_s). `silent_s` is None when this role may not
    see the other session's activity (a different role without pg_read_all_stats)."""
    cur = await conn.execute(_LEADERS, _LEADER_KEY)
    return await cur.fetchall()


def leaders(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """aleaders, for a blocking connection."""
    return conn.execute(_LEADERS, _LEADER_KEY).fetchall()


def scheduled(conn: psycopg.Connection) -> list[tuple[Dealership, datetime | None]]:
    """Every unpaused dealership with a schedule, with its next run time (None: not set)."""
    rows = conn.execute(
        """
        SELECT d.*, s.next_run_at AS _next_run_at FROM dealerships d
          LEFT JOIN schedule_state s ON s.dealership_id = d.id
         WHERE NOT d.paused AND (d.schedule_cron IS NOT NULL OR d.schedule_interval_s IS NOT NULL)
         ORDER BY s.next_run_at NULLS FIRST, d.id
        """
    ).fetchall()
    return [(Dealership.model_validate(r), r["_next_run_at"]) for r in rows]


def set_next(conn: psycopg.Connection, dealership_id: int, next_run_at: datetime,
             expected: datetime | None, last_job_id: int | None = None) -> bool:
    """Move the dealership's next run, only if nobody moved it since we read `expected`."""
    row = conn.execute(
        """
        INSERT INTO schedule_state AS s (dealership_id, next_run_at, last_job_id)
        VALUES (%(d)s, %(n)s, %(j)s)
        ON CONFLICT (dealership_id) DO UPDATE
           SET next_run_at = excluded.next_run_at,
               last_job_id = coalesce(excluded.last_job_id, s.last_job_id),
               updated_at = now()
         WHERE s.next_run_at IS NOT DISTINCT FROM %(e)s
        RETURNING dealership_id
        """,
        {"d": dealership_id, "n": next_run_at, "e": expected, "j": last_job_id},
    ).fetchone()
    return row is not None


def claim(conn: psycopg.Connection, dealership_id: int, next_run_at: datetime,
          expected: datetime) -> bool:
    """Take the slot due at `expected` (the next run as read) and move the next run to
    `next_run_at`; inside the caller's transaction, which records the slot's job. Only while
    the dealership is still unpaused and scheduled, and nobody moved its next run since it
    was read (a schedule changed or resumed meanwhile has no next run: not claimed). The
    dealership's row stays locked (FOR SHARE) until the transaction ends: a pause or a
    removal committed first wins here, and one arriving meanwhile waits for the recorded
    job, and then finds it. The dealership row is locked first, as a pause or removal does."""
    if conn.execute(
        """
        SELECT 1 FROM dealerships
         WHERE id = %s AND NOT paused
           AND (schedule_cron IS NOT NULL OR schedule_interval_s IS NOT NULL)
           FOR SHARE
        """, (dealership_id,)).fetchone() is None:
        return False
    return conn.execute(
        """
        UPDATE schedule_state SET next_run_at = %(n)s, last_run_at = now(), updated_at = now()
         WHERE dealership_id = %(d)s AND next_run_at = %(e)s
        RETURNING dealership_id
        """,
        {"d": dealership_id, "n": next_run_at, "e": expected},
    ).fetchone() is not None


def end_backoffs(conn: psycopg.Connection) -> list[int]:
    """Forget the next run of each dealership whose last scheduled job failed (so its next
    run may be held back by the failure backoff) and which has had a job succeed since (an
    operator fixed it and ran it by hand): the scheduler then sets it at the schedule's next
    slot, instead of hours later. A dealership is picked once per success: forgetting moves
    `updated_at` past the success. Returns their ids."""
    rows = conn.execute(
        """
        UPDATE schedule_state s SET next_run_at = NULL, updated_at = now()
          FROM jobs last
         WHERE last.id = s.last_job_id AND s.next_run_at > now()
           AND last.state IN ('failed', 'dead', 'blocked')
           AND EXISTS (SELECT 1 FROM jobs j
                        WHERE j.dealership_id = s.dealership_id AND j.id > s.last_job_id
                          AND j.state IN ('succeeded', 'partial')
                          AND j.finished_at > s.updated_at)
        RETURNING s.dealership_id
        """
    ).fetchall()
    return [r["dealership_id"] for r in rows]


def clear(conn: psycopg.Connection, dealership_id: int) -> None:
    """Forget the next run (the schedule changed or resumed): recomputed from now."""
    conn.execute("DELETE FROM schedule_state WHERE dealership_id = %s", (dealership_id,))


def state(conn: psycopg.Connection, dealership_id: int) -> dict[str, Any] | None:
    return conn.execute("SELECT * FROM schedule_state WHERE dealership_id = %s",
                        (dealership_id,)).fetchone()


def consecutive_failures(conn: psycopg.Connection, dealership_id: int) -> int:
    """How many of the dealership's latest finished jobs failed in a row. A job whose message
    could not be sent (error_kind 'enqueue': Redis away) never ran and says nothing about the
    dealer: not counted, or a Redis outage would hold back every dealer's schedule."""
    row = conn.execute(
        """
        SELECT count(*) AS n FROM jobs
         WHERE dealership_id = %(d)s AND state IN ('failed', 'dead', 'blocked')
           AND error_kind IS DISTINCT FROM 'enqueue'
           AND id > coalesce((SELECT max(id) FROM jobs WHERE dealership_id = %(d)s
                               AND state IN ('succeeded', 'partial')), 0)
        """,
        {"d": dealership_id},
    ).fetchone()
    return int(row["n"])


def server_now(conn: psycopg.Connection) -> datetime:
    return conn.execute("SELECT now() AS t").fetchone()["t"]
