"""Numbered SQL migrations, applied in order once each and recorded in schema_migrations.

Who applies them: `forecourt db migrate`, the deploy step; and any command meeting a new,
empty database (first use). A command meeting a live schema with migrations pending refuses
(`check`): a migration may lock a table that running jobs write, so its moment is the
operator's. A migration waits at most `lock_timeout_s` for each lock it takes, then gives up
and applies nothing: waiting longer behind a long transaction (a running job's write, a
pg_dump) would queue every writer of that table behind the migration."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

import psycopg
from psycopg import errors as pg_errors

from crawler.errors import MigrationError

MIGRATION_LOCK = 7_301_001  # advisory lock key: one migrator at a time


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every file in crawler/migrations, by version."""
    found = []
    for entry in resources.files("crawler.migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text()))
    return sorted(found)


@dataclass
class SchemaState:
    """The database's migrations against this code's: `applied` rows (version, name,
    applied_at), the names of files `pending`, and the names of applied migrations this code
    does not know (`unknown`: the database is newer than the code)."""

    applied: list[dict] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.applied


def _row(r, key: str, index: int):
    return r[index] if isinstance(r, tuple) else r[key]


def schema_state(conn: psycopg.Connection) -> SchemaState:
    """Read which migrations the database has, applying none."""
    exists = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
    rows = conn.execute(
        "SELECT version, name, applied_at FROM schema_migrations ORDER BY version"
    ).fetchall() if _row(exists, "to_regclass", 0) is not None else []
    applied = [{"version": _row(r, "version", 0), "name": _row(r, "name", 1),
                "applied_at": _row(r, "applied_at", 2)} for r in rows]
    known = {version for version, _, _ in migration_files()}
    done = {a["version"] for a in applied}
    return SchemaState(
        applied=applied,
        pending=[name for version, name, _ in migration_files() if version not in done],
        unknown=[a["name"] for a in applied if a["version"] not in known])


def check(conn: psycopg.Connection, apply_pending: bool = False,
          lock_timeout_s: float = 0) -> SchemaState:
    """For every command but `db migrate`: set up a new, empty database; refuse a live one
    with migrations pending (MigrationError), or with `apply_pending` (the embedded server,
    one machine's own, upgraded by a `git pull` with no deploy step) apply them. Returns the
    state (`unknown` may be set)."""
    state = schema_state(conn)
    if state.empty:
        migrate(conn)  # first use: nothing runs on it yet, so no lock hurts
        return schema_state(conn)
    if state.pending and apply_pending:
        migrate(conn, lock_timeout_s)
        return schema_state(conn)
    if state.pending:
        raise MigrationError(
            f"the database schema is behind this forecourt: {len(state.pending)} migration(s)"
            f" pending ({', '.join(state.pending)})",
            hint="run `forecourt db migrate`, the upgrade step; it may lock tables that "
                 "running jobs write: see docs/operations.md, Upgrading")
    return state


def ahead_warning(state: SchemaState) -> str | None:
    """One line when the database has migrations this code does not know (a rolled-back
    deploy): older code runs on, as migrations only add, but the operator should know."""
    if not state.unknown:
        return None
    return (f"warning: the database has {len(state.unknown)} migration(s) this forecourt does "
            f"not know ({', '.join(state.unknown)}): it is older than the schema; upgrade "
            "it, or run it only until the roll-back is done")


def migrate(conn: psycopg.Connection, lock_timeout_s: float = 0) -> list[str]:
    """Apply pending migrations in one transaction; returns the names applied. Safe to call
    concurrently. With `lock_timeout_s` > 0 a migration that waits longer than that for a
    table lock raises MigrationError and nothing is applied."""
    applied: list[str] = []
    name = None
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            if lock_timeout_s > 0:  # after the advisory lock: another migrator is waited for
                conn.execute("SELECT set_config('lock_timeout', %s, true)",
                             (f"{int(lock_timeout_s * 1000)}ms",))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {_row(r, "version", 0)
                    for r in conn.execute("SELECT version FROM schema_migrations").fetchall()}
            for version, name, sql in migration_files():
                if version in done:
                    continue
                conn.execute(sql)
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                             (version, name))
                applied.append(name)
    except pg_errors.LockNotAvailable as exc:
        raise MigrationError(
            f"migration {name or 'set-up'} waited more than {lock_timeout_s:g} s for a lock "
            "another transaction holds (a running job's write, a long query, a pg_dump); "
            "nothing was applied",
            hint="find it in pg_stat_activity; run `forecourt db migrate` again once it has "
                 "ended, or allow a longer wait with FORECOURT_MIGRATE_LOCK_TIMEOUT_S") from exc
    return applied
