"""SQL for rejects: items or rows that could not become vehicles, with reasons and payload."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from crawler.models import Reject


def add(conn: psycopg.Connection, dealership_id: int, job_id: int | None,
        rejects: Sequence[Reject]) -> int:
    if not rejects:
        return 0
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO rejects (dealership_id, job_id, source, reasons, payload)"
            " VALUES (%s, %s, %s, %s, %s)",
            [(dealership_id, job_id, r.source, r.reasons, Jsonb(r.payload)) for r in rejects],
        )
    listed = [r.vin for r in rejects if r.vin]
    if listed and job_id is not None:
        # still on the dealer's list, only unreadable this time: seen, so never removed
        conn.execute("INSERT INTO run_seen (job_id, vin) SELECT %s, unnest(%s::text[])"
                     " ON CONFLICT DO NOTHING", (job_id, listed))
    return len(rejects)


def list_for(conn: psycopg.Connection, dealership_id: int, job_id: int | None = None,
             limit: int = 100) -> list[dict[str, Any]]:
    return conn.execute(
        """
        SELECT * FROM rejects WHERE dealership_id = %(d)s
           AND (%(j)s::bigint IS NULL OR job_id = %(j)s)
         ORDER BY id DESC LIMIT %(n)s
        """,
        {"d": dealership_id, "j": job_id, "n": limit},
    ).fetchall()


# Newest job first, and newest first within a job: a backward scan of rejects_dealer_job_id
# (migration 0008) that stops at the limit. The excerpt is the raw row (or record, or item)
# as text, cut in the database: a payload may hold a 4 MiB record.
NEWEST = """
SELECT id, job_id, source, reasons, created_at,
       left(CASE jsonb_typeof(payload->'raw') WHEN 'string' THEN payload->>'raw'
                 ELSE coalesce(payload->'raw', payload)::text END, %(chars)s) AS excerpt
  FROM rejects WHERE dealership_id = %(d)s {job}
 ORDER BY job_id DESC, id DESC LIMIT %(n)s
"""


def newest(conn: psycopg.Connection, dealership_id: int, job_id: int | None = None,
           limit: int = 50, chars: int = 200) -> list[dict[str, Any]]:
    """A dealer's rejects (one job's with `job_id`), newest job first, each with the first
    `chars` characters of its raw payload as `excerpt` (None without one)."""
    sql = NEWEST.format(job="" if job_id is None else "AND job_id = %(j)s")
    return conn.execute(sql, {"d": dealership_id, "j": job_id, "n": limit,  # noqa: S608
                              "chars": chars}).fetchall()


# How many rejects a listing's title counts exactly: the count reads at most this many
# entries of rejects_dealer_job_id (an index-only scan that stops), never a dealer's millions.
COUNT_UPTO = 10_000
COUNT = """
SELECT count(*) AS n FROM (SELECT 1 FROM rejects WHERE dealership_id = %(d)s {job}
                            LIMIT %(upto)s + 1) AS upto
"""


def count_upto(conn: psycopg.Connection, dealership_id: int, job_id: int | None = None,
               upto: int = COUNT_UPTO) -> int | None:
    """How many rejects the dealer (one job of it with `job_id`) has; None when more than
    `upto` (counting them all would read every one)."""
    sql = COUNT.format(job="" if job_id is None else "AND job_id = %(j)s")
    n = conn.execute(sql, {"d": dealership_id, "j": job_id,  # noqa: S608
                           "upto": upto}).fetchone()["n"]
    return None if n > upto else n


def count_for(conn: psycopg.Connection, dealership_id: int) -> int:
    return conn.execute("SELECT count(*) AS n FROM rejects WHERE dealership_id = %s",
                        (dealership_id,)).fetchone()["n"]
