"""SQL for feed sources: the validators (ETag, Last-Modified, body hash) of each dealer's
last successfully processed feed."""

from __future__ import annotations

from typing import Any

import psycopg


def get(conn: psycopg.Connection, dealership_id: int, url: str) -> dict[str, Any] | None:
    """The stored validators for this dealer's feed, when its URL is the same."""
    return conn.execute(
        "SELECT * FROM feed_sources WHERE dealership_id = %s AND url = %s",
        (dealership_id, url),
    ).fetchone()


def record(conn: psycopg.Connection, dealership_id: int, url: str, *, etag: str | None,
           last_modified: str | None, body_sha256: str | None, body_bytes: int | None,
           job_id: int | None) -> None:
    conn.execute(
        """
        INSERT INTO feed_sources (dealership_id, url, etag, last_modified, body_sha256,
                                  body_bytes, last_job_id)
        VALUES (%s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (dealership_id) DO UPDATE
           SET url = EXCLUDED.url, etag = EXCLUDED.etag, last_modified = EXCLUDED.last_modified,
               body_sha256 = EXCLUDED.body_sha256, body_bytes = EXCLUDED.body_bytes,
               last_job_id = EXCLUDED.last_job_id, fetched_at = now(), updated_at = now()
        """,
        (dealership_id, url, etag, last_modified, body_sha256, body_bytes, job_id),
    )


def touch(conn: psycopg.Connection, dealership_id: int) -> None:
    """The feed was fetched and found unchanged."""
    conn.execute("UPDATE feed_sources SET fetched_at = now() WHERE dealership_id = %s",
                 (dealership_id,))
