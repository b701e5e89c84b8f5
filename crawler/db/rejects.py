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


def count_for(conn: psycopg.Connection, dealership_id: int) -> int:
    return conn.execute("SELECT count(*) AS n FROM rejects WHERE dealership_id = %s",
                        (dealership_id,)).fetchone()["n"]
