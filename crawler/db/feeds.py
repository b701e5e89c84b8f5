"""SQL for feed sources: the validators (ETag, Last-Modified, body hash) of each dealer's
last successfully processed feed, with the fingerprint of what that result depended on
(mapping, PIPELINE_VERSION, format). They are cleared while a body is being processed and
recorded again only when its run succeeds."""

from __future__ import annotations

from typing import Any

import psycopg


def get(conn: psycopg.Connection, dealership_id: int, url: str,
        fingerprint: str) -> dict[str, Any] | None:
    """The stored validators for this dealer's feed, when its URL is the same and they were
    recorded under the same fingerprint (else the feed must be processed again)."""
    return conn.execute(
        "SELECT * FROM feed_sources WHERE dealership_id = %s AND url = %s"
        " AND fingerprint = %s",
        (dealership_id, url, fingerprint),
    ).fetchone()


def record(conn: psycopg.Connection, dealership_id: int, url: str, *, etag: str | None,
           last_modified: str | None, body_sha256: str | None, body_bytes: int | None,
           fingerprint: str, job_id: int | None) -> None:
    """The validators of a body whose run succeeded."""
    conn.execute(
        """
        INSERT INTO feed_sources (dealership_id, url, etag, last_modified, body_sha256,
                                  body_bytes, fingerprint, last_job_id)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (dealership_id) DO UPDATE
           SET url = EXCLUDED.url, etag = EXCLUDED.etag, last_modified = EXCLUDED.last_modified,
               body_sha256 = EXCLUDED.body_sha256, body_bytes = EXCLUDED.body_bytes,
               fingerprint = EXCLUDED.fingerprint, last_job_id = EXCLUDED.last_job_id,
               fetched_at = now(), updated_at = now()
        """,
        (dealership_id, url, etag, last_modified, body_sha256, body_bytes, fingerprint,
         job_id),
    )


def forget(conn: psycopg.Connection, dealership_id: int, job_id: int | None) -> None:
    """A run is about to write the dealer's vehicles from a body: the stored validators no
    longer describe its inventory, so the next fetch must not be judged unchanged by them."""
    conn.execute(
        """
        UPDATE feed_sources
           SET etag = NULL, last_modified = NULL, body_sha256 = NULL, body_bytes = NULL,
               fingerprint = NULL, last_job_id = %s, updated_at = now()
         WHERE dealership_id = %s
        """,
        (job_id, dealership_id),
    )


def touch(conn: psycopg.Connection, dealership_id: int) -> None:
    """The feed was fetched and found unchanged."""
    conn.execute("UPDATE feed_sources SET fetched_at = now() WHERE dealership_id = %s",
                 (dealership_id,))
