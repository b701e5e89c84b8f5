"""Schema migrations across deploys: who applies them, what a command does when the database
and the code disagree, and a migration that meets a long transaction. Each test works on a
database of its own (beside the session's), so it can hold a schema one release behind or
ahead of the code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from crawler.db import connect, migrate
from crawler.db.migrate import migration_files, statements

FORECOURT = str(Path(sys.executable).parent / "forecourt")
# The migration left pending: 0013 builds an index on vehicle_events inside the migration
# transaction (a lock that blocks writes). Shipped migrations never change, so neither does it.
LAST = (13, "0013_events_by_dealer.sql")


@pytest.fixture
def scratch():
    """A new, empty database on the session's server; its URL. Dropped afterwards."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"forecourt_mig_{uuid.uuid4().hex[:10]}"
    base = os.environ["DATABASE_URL"]
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(**{**conninfo_to_dict(base), "dbname": name})
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def one_behind(url: str) -> None:
    """The database as the release before 0013 left it (and 0013 pending)."""
    with connect(url) as conn:
        migrate(conn)
        conn.execute("DELETE FROM schema_migrations WHERE version = %s", (LAST[0],))
        conn.execute("DROP INDEX vehicle_events_dealer_id")  # what 0013 builds


def applied(url: str) -> set[int]:
    with connect(url) as conn:
        return {r["version"] for r in conn.execute("SELECT version FROM schema_migrations")}


def forecourt(url: str, *args: str, timeout: float = 120, **env) -> subprocess.CompletedProcess:
    return subprocess.run([FORECOURT, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "DATABASE_URL": url, **env})


def test_a_command_on_a_database_one_release_behind_refuses_and_applies_nothing(scratch):
    # `forecourt jobs list` run during a deploy must not build an index that blocks every
    # running job's writes: only `forecourt db migrate` applies migrations to a live schema
    one_behind(scratch)
    done = forecourt(scratch, "jobs", "list")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert LAST[1] in lines[0] and "forecourt db migrate" in lines[0]
    assert LAST[0] not in applied(scratch)
    done = forecourt(scratch, "db", "migrate")
    assert done.returncode == 0 and LAST[1] in done.stdout, done.stderr
    assert LAST[0] in applied(scratch)
    assert forecourt(scratch, "jobs", "list").returncode == 0


def test_a_new_worker_started_before_the_migration_ran_refuses_to_start(scratch):
    one_behind(scratch)
    proc = subprocess.Popen([FORECOURT, "worker", "--processes", "1", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "DATABASE_URL": scratch},
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # it started a worker: the bug
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the worker started on a schema one migration behind")
    assert proc.returncode == 1, out + err
    assert LAST[1] in err and "forecourt db migrate" in err
    assert "worker:" not in out  # no worker process was started
    assert LAST[0] not in applied(scratch)


def test_any_command_sets_up_a_new_empty_database(scratch):
    done = forecourt(scratch, "jobs", "list")
    assert done.returncode == 0, done.stderr
    assert applied(scratch) == {v for v, _, _ in migration_files()}


def test_code_older_than_the_database_warns_in_one_line_and_carries_on(scratch):
    # a rolled-back deploy: the database has a migration this code does not know
    with connect(scratch) as conn:
        migrate(conn)
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, "
                     "'9999_from_the_future.sql')")
    done = forecourt(scratch, "jobs", "list")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "9999_from_the_future.sql" in warnings[0], done.stderr
    done = forecourt(scratch, "db", "migrate")
    assert done.returncode == 0 and "9999_from_the_future.sql" in done.stderr, done.stderr


def test_db_migrations_lists_applied_pending_and_unknown_without_applying(scratch):
    one_behind(scratch)
    with connect(scratch) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, "
                     "'9999_from_the_future.sql')")
    done = forecourt(scratch, "db", "migrations")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line[:4].isdigit()}
    assert "applied" in rows["0001_init.sql"]
    assert "pending" in rows[LAST[1]]
    assert "unknown" in rows["9999_from_the_future.sql"]
    assert LAST[0] not in applied(scratch)  # it only looked


def test_a_migration_waiting_behind_a_long_transaction_gives_up_and_applies_nothing(scratch):
    # A running job's open write on vehicle_events: 0013's CREATE INDEX waits for it, and
    # every writer that comes after waits behind the migration. It must give up instead.
    one_behind(scratch)
    with connect(scratch) as holder:
        with holder.transaction():
            holder.execute("LOCK TABLE vehicle_events IN ROW EXCLUSIVE MODE")
            try:
                done = forecourt(scratch, "db", "migrate", timeout=60,
                                 FORECOURT_MIGRATE_LOCK_TIMEOUT_S="1")
            except subprocess.TimeoutExpired:
                pytest.fail("`forecourt db migrate` waited behind the open transaction")
            # the holder's transaction was not disturbed: it can still write
            holder.execute("SELECT count(*) FROM vehicle_events").fetchone()
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert LAST[1] in lines[0] and "lock" in lines[0] and "forecourt db migrate" in lines[0]
    assert LAST[0] not in applied(scratch)
    assert forecourt(scratch, "db", "migrate", FORECOURT_MIGRATE_LOCK_TIMEOUT_S="1"
                     ).returncode == 0  # once the transaction ended
    assert LAST[0] in applied(scratch)


def test_on_the_embedded_servers_a_command_applies_pending_migrations_itself(tmp_path):
    # The embedded PostgreSQL is one machine's own (no DATABASE_URL): its upgrade is a `git
    # pull`, with no deploy step to run `db migrate` in, so `./dev demo` and every command
    # bring its schema up to date themselves (still under the lock timeout).
    from crawler import embedded

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["FORECOURT_DATA_DIR"] = str(tmp_path)
    try:
        url = embedded.postgres_url(tmp_path)
        one_behind(url)
        done = subprocess.run([FORECOURT, "jobs", "list"], capture_output=True, text=True,
                              timeout=120, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert LAST[0] in applied(url)
    finally:
        embedded.stop(tmp_path)


# Migrations outside a transaction (`-- forecourt:no-transaction`): CREATE INDEX
# CONCURRENTLY on a big live table. Each test applies migration files of its own.

CONCURRENT = ("-- forecourt:no-transaction\n"
              "-- writers keep writing while it builds\n"
              "CREATE INDEX CONCURRENTLY IF NOT EXISTS things_k ON things (k);\n")
PLAIN = "CREATE INDEX IF NOT EXISTS things_k ON things (k);\n"


@pytest.fixture
def own_migrations(tmp_path, monkeypatch):
    """Makes `migrate` apply the files a test writes (name -> sql) instead of forecourt's."""
    import importlib

    migrate_module = importlib.import_module("crawler.db.migrate")  # crawler.db.migrate: a function
    files: dict[str, str] = {}
    monkeypatch.setattr(migrate_module, "migration_files", lambda *_: sorted(
        (int(name[:4]), name, sql) for name, sql in files.items()))
    return files


def index_valid(conn, name: str):
    row = conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
                       (name,)).fetchone()
    return None if row is None else row["indisvalid"]


def running(conn, query: str, waiting: bool = False) -> bool:
    """Whether another backend of this database runs (or last ran) `query`, waiting on a lock
    if `waiting`. Only this database's: pytest-xdist workers run migration tests at once on
    one server."""
    return conn.execute(
        "SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
        " AND query LIKE %s AND pid <> pg_backend_pid()"
        + (" AND wait_event_type = 'Lock'" if waiting else ""),
        (f"%{query}%",)).fetchone() is not None


def waiting_on_a_lock(conn, query: str) -> bool:
    return running(conn, query, waiting=True)


def wait_until_waiting_on_a_lock(conn, query: str) -> None:
    """Until the backend running `query` waits for a lock (a guard, no assertion)."""
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if waiting_on_a_lock(conn, query):
            return
        time.sleep(0.05)
    pytest.fail(f"no backend waited on a lock running {query}")


def test_the_lock_wait_guard_sees_only_its_own_database(scratch):
    # pytest-xdist runs the other parametrization (or another migration test) at the same
    # time on the same server, in another database: its build waiting on a lock must not
    # pass this database's guard before this database's build waits (the plain-build case
    # then saw writers go through and failed).
    import threading

    base = os.environ["DATABASE_URL"]
    table = f"guard_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as other, \
            psycopg.connect(base, autocommit=True) as builder:
        other.execute(f"CREATE TABLE {table} (k int)")
        try:
            with other.transaction():
                other.execute(f"INSERT INTO {table} VALUES (1)")
                build = threading.Thread(target=lambda: builder.execute(
                    f"CREATE INDEX {table}_k ON {table} (k)"))
                build.start()
                with psycopg.connect(base, autocommit=True) as seer:
                    wait_until_waiting_on_a_lock(seer, f"CREATE INDEX {table}_k")
                with connect(scratch) as watch:
                    assert not waiting_on_a_lock(watch, f"CREATE INDEX {table}_k")
                    assert not running(watch, f"CREATE INDEX {table}_k")
        finally:
            build.join(30)
            other.execute(f"DROP TABLE {table}")


@pytest.mark.parametrize("index_sql, blocks_writers", [(CONCURRENT, False), (PLAIN, True)],
                         ids=["no-transaction-concurrently", "plain-in-transaction"])
def test_a_no_transaction_migration_builds_an_index_while_writers_keep_writing(
        scratch, own_migrations, index_sql, blocks_writers):
    # A running job holds an open write transaction on the table. CREATE INDEX CONCURRENTLY
    # waits for it to end, but new writers are not queued behind the build; a plain CREATE
    # INDEX (the control) queues every later writer behind itself.
    import threading

    own_migrations["0001_things.sql"] = "CREATE TABLE things (id bigserial PRIMARY KEY, k int);"
    with connect(scratch) as conn:
        assert migrate(conn) == ["0001_things.sql"]
    own_migrations["0002_things_k.sql"] = index_sql
    own_migrations["0003_after.sql"] = "CREATE TABLE after_things (id int);"
    outcome: dict = {}

    def run_migrate():
        try:
            with connect(scratch) as mconn:
                outcome["applied"] = migrate(mconn, lock_timeout_s=60)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    with connect(scratch) as holder, connect(scratch) as writer, connect(scratch) as watch:
        with holder.transaction():
            holder.execute("INSERT INTO things (k) VALUES (1)")
            migrator = threading.Thread(target=run_migrate)
            migrator.start()
            wait_until_waiting_on_a_lock(watch, "CREATE INDEX")
            # another job's write: with a plain build it queues behind it (and gives up)
            writer.execute("SET lock_timeout = '2s'")
            try:
                writer.execute("INSERT INTO things (k) VALUES (2)")
                blocked = False
            except psycopg.errors.LockNotAvailable:
                blocked = True
            holder.execute("INSERT INTO things (k) VALUES (3)")  # the holder writes on
            assert migrator.is_alive()  # still waiting for the holder's transaction
            assert 2 not in applied(scratch)
        migrator.join(120)
        assert not migrator.is_alive()
        assert blocked is blocks_writers
        assert "error" not in outcome, outcome
        assert outcome["applied"] == ["0002_things_k.sql", "0003_after.sql"]
        assert index_valid(watch, "things_k") is True
        assert watch.execute("SELECT count(*) AS n FROM things").fetchone()["n"] == (
            2 if blocked else 3)
    assert applied(scratch) == {1, 2, 3}


def test_a_failed_concurrent_build_records_nothing_and_a_rerun_after_the_fix_builds_it(
        scratch, own_migrations):
    from crawler.errors import MigrationError

    own_migrations["0001_things.sql"] = (
        "CREATE TABLE things (id bigserial PRIMARY KEY, k int);"
        "INSERT INTO things (k) VALUES (1), (1), (2);")
    own_migrations["0002_things_k_unique.sql"] = (
        "-- forecourt:no-transaction\n"
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS things_k_unique ON things (k);\n")
    own_migrations["0003_after.sql"] = "CREATE TABLE after_things (id int);"
    with connect(scratch) as conn:
        with pytest.raises(MigrationError) as failed:
            migrate(conn)
        # the migration before it committed; it and the one after it were not recorded
        assert "0002_things_k_unique.sql" in str(failed.value)
        assert "0001_things.sql applied before it" in str(failed.value)
        assert applied(scratch) == {1}
        assert index_valid(conn, "things_k_unique") is False  # the failed build's leftover
        assert conn.execute("SELECT to_regclass('after_things')").fetchone()["to_regclass"] \
            is None
        # a re-run before the fix builds again (IF NOT EXISTS must not skip the INVALID
        # index and record the migration as done) and fails again
        with pytest.raises(MigrationError):
            migrate(conn)
        assert applied(scratch) == {1}
        conn.execute("DELETE FROM things WHERE id = (SELECT max(id) FROM things WHERE k = 1)")
        assert migrate(conn) == ["0002_things_k_unique.sql", "0003_after.sql"]
        assert index_valid(conn, "things_k_unique") is True
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO things (k) VALUES (2)")
    assert applied(scratch) == {1, 2, 3}


def test_a_failing_migration_in_a_transaction_is_one_error_naming_it_and_applies_nothing(
        scratch, own_migrations):
    # A unique constraint the live data breaks: `forecourt db migrate` printed psycopg's
    # traceback (only a no-transaction migration's failure was one line with the fix).
    from crawler.errors import MigrationError

    own_migrations["0001_things.sql"] = (
        "CREATE TABLE things (id bigserial PRIMARY KEY, k int);"
        "INSERT INTO things (k) VALUES (1), (1);")
    with connect(scratch) as conn:
        migrate(conn)
    own_migrations["0002_more.sql"] = "CREATE TABLE more_things (id int);"
    own_migrations["0003_things_k_unique.sql"] = \
        "ALTER TABLE things ADD CONSTRAINT things_k_unique UNIQUE (k);"
    with connect(scratch) as conn:
        with pytest.raises(MigrationError) as failed:
            migrate(conn)
        message = str(failed.value)
        assert "0003_things_k_unique.sql" in message and "could not create unique index" \
            in message, message
        assert "0002_more.sql" in message  # rolled back with it: the operator is told
        assert "\n" not in message and "forecourt db migrate" in failed.value.hint
        assert applied(scratch) == {1}
        assert conn.execute("SELECT to_regclass('more_things') AS t").fetchone()["t"] is None
        # the migration lock was let go: another migrator is not stuck behind it
        with connect(scratch) as other:
            assert other.execute("SELECT pg_try_advisory_lock(%s) AS ok",
                                 (7_301_001,)).fetchone()["ok"]


def test_a_concurrent_build_waiting_longer_than_the_lock_timeout_gives_up_then_recovers(
        scratch, own_migrations):
    from crawler.errors import MigrationError

    own_migrations["0001_things.sql"] = "CREATE TABLE things (id bigserial PRIMARY KEY, k int);"
    with connect(scratch) as conn:
        migrate(conn)
    own_migrations["0002_things_k.sql"] = CONCURRENT
    with connect(scratch) as holder, connect(scratch) as conn:
        with holder.transaction():
            holder.execute("INSERT INTO things (k) VALUES (1)")
            with pytest.raises(MigrationError) as failed:
                migrate(conn, lock_timeout_s=1)
            assert "0002_things_k.sql waited more than 1 s" in str(failed.value)
            assert "nothing was applied" in str(failed.value)
            holder.execute("INSERT INTO things (k) VALUES (2)")  # not disturbed
        assert 2 not in applied(scratch)
        assert conn.execute("SHOW lock_timeout").fetchone()["lock_timeout"] == "0"  # restored
        assert migrate(conn, lock_timeout_s=1) == ["0002_things_k.sql"]
        assert index_valid(conn, "things_k") is True
    assert applied(scratch) == {1, 2}


def test_a_second_migrator_waits_for_one_running_a_no_transaction_migration(
        scratch, own_migrations):
    # the advisory lock is held across the no-transaction steps too: the second migrator
    # waits, then finds nothing left to apply (no second build, no duplicate row). Waiting
    # inside pg_advisory_lock held a snapshot the first one's build waits for: a deadlock.
    import threading
    import time

    own_migrations["0001_things.sql"] = "CREATE TABLE things (id bigserial PRIMARY KEY, k int);"
    with connect(scratch) as conn:
        migrate(conn)
    own_migrations["0002_things_k.sql"] = CONCURRENT
    results: dict = {}

    def run(key):
        with connect(scratch) as mconn:
            results[key] = migrate(mconn, lock_timeout_s=60)

    with connect(scratch) as holder, connect(scratch) as watch:
        with holder.transaction():
            holder.execute("INSERT INTO things (k) VALUES (1)")
            first = threading.Thread(target=run, args=("first",))
            first.start()
            wait_until_waiting_on_a_lock(watch, "CREATE INDEX")  # first is building
            second = threading.Thread(target=run, args=("second",))
            second.start()
            deadline = time.monotonic() + 30  # until the second has tried the lock (a guard)
            while not running(watch, "advisory_lock"):
                assert time.monotonic() < deadline, "the second migrator never tried the lock"
                time.sleep(0.05)
            assert "second" not in results  # it waits for the first
        first.join(60)
        second.join(60)
    assert results == {"first": ["0002_things_k.sql"], "second": []}
    assert applied(scratch) == {1, 2}


def test_a_no_transaction_migration_is_split_at_lines_ending_in_a_semicolon():
    from crawler.db.migrate import no_transaction, statements

    sql = ("-- forecourt:no-transaction\n-- builds two;\n"
           "CREATE INDEX CONCURRENTLY IF NOT EXISTS a ON t (x);\n\n"
           "CREATE INDEX CONCURRENTLY IF NOT EXISTS b\n    ON t (y);\n-- the end\n")
    assert no_transaction(sql) and not no_transaction("CREATE TABLE t (x int);\n" + sql)
    found = statements(sql)
    assert len(found) == 2
    assert found[0].rstrip().endswith("a ON t (x);") and "-- builds two;" in found[0]
    assert found[1].strip() == "CREATE INDEX CONCURRENTLY IF NOT EXISTS b\n    ON t (y);"


def test_jobs_public_ids_are_backfilled_unique_and_given_to_new_jobs(scratch):
    # 0019 and 0020 on a live jobs table: rows written before them get a public id, rows
    # written by the release before (which knows no public_id) get one by default, and the
    # no-transaction file is safe to run again after a failure part-way (each statement is).
    with connect(scratch) as conn:
        migrate(conn)
        conn.execute("DELETE FROM schema_migrations WHERE version IN (19, 20)")
        conn.execute("DROP INDEX jobs_public_id")
        conn.execute("ALTER TABLE jobs DROP COLUMN public_id")
        dealer = conn.execute("INSERT INTO dealerships (slug, name) VALUES ('a', 'A')"
                              " RETURNING id").fetchone()["id"]
        for _ in range(3):
            conn.execute("INSERT INTO jobs (dealership_id, kind, trigger, state)"
                         " VALUES (%s, 'crawl', 'api', 'succeeded')", (dealer,))
        before = {r["id"]: r["updated_at"] for r in conn.execute(
            "SELECT id, updated_at FROM jobs")}
        assert migrate(conn) == ["0019_job_public_ids.sql", "0020_job_public_ids_unique.sql"]
        sql = dict((n, s) for _, n, s in migration_files())["0020_job_public_ids_unique.sql"]
        for statement in statements(sql):  # all again: harmless
            conn.execute(statement)
        conn.execute("INSERT INTO jobs (dealership_id, kind, trigger, state)"
                     " VALUES (%s, 'crawl', 'api', 'queued')", (dealer,))
        rows = conn.execute("SELECT id, public_id, updated_at FROM jobs").fetchall()
        assert len({r["public_id"] for r in rows}) == 4
        assert all(isinstance(r["public_id"], uuid.UUID) for r in rows)
        assert {r["id"]: r["updated_at"] for r in rows if r["id"] in before} == before, \
            "a backfill is no change a poller sees: versions hold"
        nullable = conn.execute(
            "SELECT is_nullable FROM information_schema.columns"
            " WHERE table_name = 'jobs' AND column_name = 'public_id'").fetchone()
        assert nullable["is_nullable"] == "NO"
        assert index_valid(conn, "jobs_public_id") is True
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("UPDATE jobs SET public_id = %s WHERE id <> %s",
                         (rows[0]["public_id"], rows[0]["id"]))
