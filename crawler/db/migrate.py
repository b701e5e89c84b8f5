"""Numbered SQL migrations, applied in order once each and recorded in schema_migrations.

Who applies them: `forecourt db migrate`, the deploy step; and any command meeting a new,
empty database (first use). A command meeting a live schema with migrations pending refuses
(`check`): a migration may lock a table that running jobs write, so its moment is the
operator's. A migration waits at most `lock_timeout_s` for each lock it takes, then gives up
and applies nothing: waiting longer behind a long transaction (a running job's write, a
pg_dump) would queue every writer of that table behind the migration.

A file whose first line is `-- forecourt:no-transaction` is applied on its own, outside a
transaction, so it may `CREATE INDEX CONCURRENTLY` (writers keep writing while it builds):
see `migrate` and docs/operations.md, Upgrading."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql as pg_sql

from crawler.errors import MigrationError

MIGRATION_LOCK = 7_301_001  # advisory lock key: one migrator at a time
NO_TRANSACTION = "-- forecourt:no-transaction"
MIGRATOR_POLL_S = 0.25

log = logging.getLogger("forecourt.migrate")


def migration_files(source: str | Path = "crawler.migrations") -> list[tuple[int, str, str]]:
    """(version, name, sql) for every file in a package (crawler/migrations) or, for tests,
    a directory, by version."""
    root = source if isinstance(source, Path) else resources.files(source)
    found = []
    for entry in root.iterdir():
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


def no_transaction(sql: str) -> bool:
    """Whether a migration opts out of the transaction (its first line says so)."""
    lines = sql.splitlines()
    return bool(lines) and lines[0].strip().lower() == NO_TRANSACTION


def statements(sql: str) -> list[str]:
    """A no-transaction migration's statements. The rule: a statement ends with a line
    ending in `;` (comment lines aside), so no line inside a statement may end in `;` (a
    function body, a string). Chunks holding only comments are left out."""
    found, chunk = [], []
    for line in sql.splitlines():
        chunk.append(line)
        if line.rstrip().endswith(";") and not line.lstrip().startswith("--"):
            found.append("\n".join(chunk))
            chunk = []
    found.append("\n".join(chunk))
    return [s for s in found
            if any(ln.strip() and not ln.lstrip().startswith("--") for ln in s.splitlines())]


_CONCURRENT_INDEX = re.compile(
    r'^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?'
    r'((?:"[^"]+"|[\w$]+)(?:\.(?:"[^"]+"|[\w$]+))?)\s+ON\b', re.IGNORECASE | re.MULTILINE)


def _batches(pending: list[tuple[int, str, str]]):
    """Runs of transactional migrations (one transaction each); a no-transaction one alone."""
    batch: list[tuple[int, str, str]] = []
    for migration in pending:
        if no_transaction(migration[2]):
            if batch:
                yield batch
                batch = []
            yield [migration]
        else:
            batch.append(migration)
    if batch:
        yield batch


def _lock_timeout(conn: psycopg.Connection, lock_timeout_s: float, local: bool) -> None:
    if lock_timeout_s > 0:  # after the advisory lock: another migrator is waited for
        conn.execute("SELECT set_config('lock_timeout', %s, %s)",
                     (f"{int(lock_timeout_s * 1000)}ms", local))


def _index_valid(conn: psycopg.Connection, index: str) -> bool | None:
    """Whether the index is valid (None: there is no such index)."""
    row = conn.execute("SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = "
                       "to_regclass(%s)", (index,)).fetchone()
    return None if row is None else bool(_row(row, "indisvalid", 0))


def _drop_invalid(conn: psycopg.Connection, index: str) -> None:
    """Drop the INVALID index a failed CONCURRENTLY build of `index` left behind (with IF
    NOT EXISTS a retry would otherwise skip the build and keep the unusable index)."""
    if _index_valid(conn, index) is not False:
        return
    qualified = _row(conn.execute("SELECT to_regclass(%s)::text AS name", (index,)).fetchone(),
                     "name", 0)  # quoted and qualified by PostgreSQL itself
    log.warning("dropping INVALID index %s left by a failed build; building it again",
                qualified)
    conn.execute(pg_sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
        pg_sql.SQL(qualified)))


def _apply_outside_transaction(conn: psycopg.Connection, version: int, name: str, sql: str,
                               lock_timeout_s: float) -> None:
    """Apply a no-transaction migration statement by statement, then record it."""
    if not conn.autocommit or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise MigrationError(f"migration {name} must run outside a transaction, and the "
                             "connection is in one", hint="migrate on an autocommit connection")
    previous = _row(conn.execute("SELECT current_setting('lock_timeout') AS t").fetchone(),
                    "t", 0)
    _lock_timeout(conn, lock_timeout_s, local=False)
    try:
        for statement in statements(sql):
            match = _CONCURRENT_INDEX.search(statement)
            if match:
                _drop_invalid(conn, match.group(1))
            conn.execute(statement)
            if match and _index_valid(conn, match.group(1)) is False:
                # IF NOT EXISTS met an index still being built (by hand?) or left INVALID
                raise MigrationError(
                    f"migration {name}: index {match.group(1)} exists but is INVALID (a build "
                    "by hand still running, or one that failed)",
                    hint="wait for that build, or drop the index; then run "
                         "`forecourt db migrate` again")
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                     (version, name))
    finally:
        with contextlib.suppress(psycopg.OperationalError):
            conn.execute("SELECT set_config('lock_timeout', %s, false)", (previous,))


def _wait_for_other_migrators(conn: psycopg.Connection) -> None:
    """Take the migration lock (session-level: it covers no-transaction steps), waiting for
    another migrator as long as it runs. Polled, not `pg_advisory_lock`: a statement waiting
    on the lock keeps a snapshot open, which a CREATE INDEX CONCURRENTLY of the migrator
    holding the lock waits for: a deadlock."""
    while not _row(conn.execute("SELECT pg_try_advisory_lock(%s) AS ok",
                                (MIGRATION_LOCK,)).fetchone(), "ok", 0):
        time.sleep(MIGRATOR_POLL_S)


def _apply_batch(conn: psycopg.Connection, batch: list[tuple[int, str, str]],
                 lock_timeout_s: float, applied: list[str]) -> list[str]:
    """Apply one of _batches' runs (`applied`: the names applied before it, for the error
    line); returns their names. A failure other than a lock timeout is one MigrationError
    line with the fix, not psycopg's traceback."""
    name = batch[0][1]
    try:
        if no_transaction(batch[0][2]):
            version, name, sql = batch[0]
            _apply_outside_transaction(conn, version, name, sql, lock_timeout_s)
        else:
            with conn.transaction():
                _lock_timeout(conn, lock_timeout_s, local=True)
                for version, name, sql in batch:
                    conn.execute(sql)
                    conn.execute("INSERT INTO schema_migrations (version, name) "
                                 "VALUES (%s, %s)", (version, name))
    except pg_errors.LockNotAvailable as exc:
        raise _waited(name, lock_timeout_s, applied) from exc
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if no_transaction(batch[0][2]):
            raise MigrationError(
                f"migration {name} failed: {first}; {_so_far(applied)}",
                hint="fix the cause and run `forecourt db migrate` again (an index its "
                     "failed build left INVALID is dropped and built again)") from exc
        before = [n for _, n, _ in batch if n < name]
        undone = f" ({', '.join(before)}, in its transaction, undone too)" if before else ""
        raise MigrationError(f"migration {name} failed: {first}{undone}; {_so_far(applied)}",
                             hint="fix the cause and run `forecourt db migrate` again") from exc
    return [n for _, n, _ in batch]


def _waited(name: str, lock_timeout_s: float, applied: list[str]) -> MigrationError:
    return MigrationError(
        f"migration {name} waited more than {lock_timeout_s:g} s for a lock another "
        "transaction holds (a running job's write, a long query, a pg_dump); "
        f"{_so_far(applied)}",
        hint="find it in pg_stat_activity; run `forecourt db migrate` again once it has "
             "ended, or allow a longer wait with FORECOURT_MIGRATE_LOCK_TIMEOUT_S")


def _so_far(applied: list[str]) -> str:
    return ("nothing was applied" if not applied else
            f"{', '.join(applied)} applied before it; it and later ones were not")


def migrate(conn: psycopg.Connection, lock_timeout_s: float = 0) -> list[str]:
    """Apply pending migrations; returns the names applied. Safe to call concurrently: a
    session advisory lock makes one migrator wait for another. Pending transactional
    migrations run in one transaction, all or none; a no-transaction migration among them
    splits that: the ones before it commit first, it
    runs on its own, statement by statement, and is recorded only once all succeeded, then
    the ones after it run in a transaction of their own. A CONCURRENTLY index build that
    failed left an INVALID index: the next run drops it and builds it again. With
    `lock_timeout_s` > 0 a migration that waits longer than that for a lock raises
    MigrationError; what it had begun is undone (or, outside a transaction, redone by the
    next run)."""
    files = migration_files()
    applied: list[str] = []
    try:
        _wait_for_other_migrators(conn)
        try:
            with conn.transaction():
                _lock_timeout(conn, lock_timeout_s, local=True)
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version integer PRIMARY KEY, name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
            done = {_row(r, "version", 0)
                    for r in conn.execute("SELECT version FROM schema_migrations").fetchall()}
            for batch in _batches([f for f in files if f[0] not in done]):
                applied.extend(_apply_batch(conn, batch, lock_timeout_s, applied))
        finally:
            with contextlib.suppress(psycopg.OperationalError):
                conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    except pg_errors.LockNotAvailable as exc:  # creating schema_migrations
        raise _waited("set-up", lock_timeout_s, applied) from exc
    return applied
