"""Numbered SQL migrations, applied in order once each and recorded in schema_migrations."""

from __future__ import annotations

from importlib import resources

import psycopg

MIGRATION_LOCK = 7_301_001  # advisory lock key: one migrator at a time


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every file in crawler/migrations, by version."""
    found = []
    for entry in resources.files("crawler.migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text()))
    return sorted(found)


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply pending migrations; returns the names applied. Safe to call concurrently."""
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r[0] if isinstance(r, tuple) else r["version"]
                for r in conn.execute("SELECT version FROM schema_migrations").fetchall()}
        for version, name, sql in migration_files():
            if version in done:
                continue
            conn.execute(sql)
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                         (version, name))
            applied.append(name)
    return applied
