"""Shared test fixtures: a real PostgreSQL database and Redis for the session.

With DATABASE_URL set (CI sets the machine's server), the session creates its own database
on that server and drops it at the end; without it, the embedded pgserver runs in a temporary
data directory. REDIS_URL likewise, with a per-session namespace; without it, embedded Redis.
Subprocesses (crawl children, workers) inherit the session's settings through the environment.
Under pytest-xdist each worker is a session of its own: its own database, namespace and data dir.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg
import pytest

from crawler.config import reset_settings
from crawler.db import connect, migrate
from crawler.db.connect import forget_urls

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "fixtures" / "real"

TABLES = ("vehicle_events", "rejects", "run_seen", "vehicles", "jobs", "dealerships",
          "job_totals")


def _with_db(url: str, name: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    return make_conninfo(url, dbname=name) if "://" not in url else \
        make_conninfo(**{**conninfo_to_dict(url), "dbname": name})


def _forget_namespace(url: str, namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start:start + 500])
    finally:
        client.close()


@pytest.fixture(scope="session", autouse=True)
def forecourt_env(tmp_path_factory):
    """Point forecourt at a fresh database, Redis namespace and data directory."""
    data_dir = tmp_path_factory.mktemp("forecourt-data")
    saved = dict(os.environ)
    os.environ["FORECOURT_DATA_DIR"] = str(data_dir)
    os.environ["FORECOURT_ALLOW_PRIVATE_HOSTS"] = '["127.0.0.1", "localhost"]'
    os.environ["FORECOURT_REDIS_NAMESPACE"] = f"fctest-{uuid.uuid4().hex[:8]}"
    reset_settings()
    forget_urls()
    base = os.environ.get("DATABASE_URL")
    test_db = f"forecourt_test_{uuid.uuid4().hex[:10]}"
    if base:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{test_db}"')
        os.environ["DATABASE_URL"] = _with_db(base, test_db)
    else:
        from crawler.db import database_url

        os.environ["DATABASE_URL"] = database_url()  # embedded, in data_dir
    if not os.environ.get("REDIS_URL"):  # embedded, in data_dir, like the database: tests
        from crawler.db import redis_url  # and subprocesses read it from the environment

        os.environ["REDIS_URL"] = redis_url()
    reset_settings()
    forget_urls()
    with connect() as conn:
        migrate(conn)
    yield {"data_dir": data_dir, "database_url": os.environ["DATABASE_URL"]}
    if os.environ.get("REDIS_URL"):  # a shared server: leave no keys of this session's
        _forget_namespace(os.environ["REDIS_URL"], os.environ["FORECOURT_REDIS_NAMESPACE"])
    forget_urls()
    if base:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{test_db}" WITH (FORCE)')
    else:
        from crawler import embedded

        embedded.stop(data_dir)
    os.environ.clear()
    os.environ.update(saved)
    reset_settings()


@pytest.fixture
def db():
    """A connection to the session's migrated database, emptied before each test."""
    with connect() as conn:
        # ids keep growing across tests, as in production: a job id (and its crawl log,
        # logs/<database>/job-<id>.log) is never reused within a session
        conn.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")
        yield conn


@pytest.fixture
def site():
    """Serve a fixture site (a folder under fixtures/sites, or any path) on 127.0.0.1."""
    from crawler import fixture_server

    servers = []

    def start(name: str | Path) -> str:
        server = fixture_server.serve(name)
        servers.append(server)
        return fixture_server.base_url(server)

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
