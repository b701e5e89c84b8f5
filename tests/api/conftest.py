"""The API served for real: `forecourt api` subprocesses on 127.0.0.1, the session database,
httpx clients. Tokens and dealers are created per test (the `db` fixture empties tables)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from crawler.db import connect
from crawler.db import dealers as dealers_db
from crawler.db import tokens as tokens_db

FORECOURT = str(Path(sys.executable).parent / "forecourt")
# The main server's FORECOURT_API_METRICS_TOKEN: what Prometheus presents to read /metrics.
METRICS_TOKEN = "metrics-" + "0123456789abcdef" * 3
# The no_redis server's FORECOURT_API_BODY_TIMEOUT_S.
SHORT_BODY_TIMEOUT_S = 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, env: dict[str, str] | None = None, workers: int = 1):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(os.environ["FORECOURT_DATA_DIR"]) / f"api-{self.port}.log"
        self.proc = subprocess.Popen(
            [FORECOURT, "api", "--port", str(self.port), "--workers", str(workers)],
            env={**os.environ, "FORECOURT_LOG_LEVEL": "WARNING", **(env or {})},
            stdout=self.log.open("w"), stderr=subprocess.STDOUT)

    def ready(self) -> Server:
        deadline = time.monotonic() + 180  # a 2-core box busy with other suites is slow
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"API exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=3).status_code in (200, 503):
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"API did not start: {self.log.read_text()[-2000:]}")

    def logs(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Relay:
    """A TCP port on 127.0.0.1 relaying to the session's PostgreSQL until `cut()`: then its
    connections are closed and new ones refused, as a database host that went away. A
    server whose DATABASE_URL points here starts against the real database and loses it."""

    def __init__(self, database_url: str):
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        given = conninfo_to_dict(database_url)
        host, port = given.get("host") or "127.0.0.1", int(given.get("port") or 5432)
        self.upstream = ((socket.AF_UNIX, f"{host}/.s.PGSQL.{port}") if host.startswith("/")
                         else (socket.AF_INET, (host, port)))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = make_conninfo(database_url, host="127.0.0.1",
                                 port=self.listener.getsockname()[1])
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.is_cut = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # cut
                return
            with self.lock:
                if self.is_cut:
                    client.close()
                    return
                server = socket.socket(self.upstream[0])
                server.connect(self.upstream[1])
                self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self.lock:
            self.is_cut = True
            try:  # wakes the accepting thread (closing alone would leave it listening)
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


@pytest.fixture(scope="session")
def servers(forecourt_env):
    """Every API process the tests use, started together (startup is mostly waiting):
    main: generous limits, a 4-connection pool, no metrics cache, CORS for one UI origin,
    a metrics token (METRICS_TOKEN);
    limited_a, limited_b: 5 requests per token and 3 failed authentications per client
    address per minute, sharing Redis keys of their own (the main server's failures from
    127.0.0.1 do not count against their 3); limited_a also trusts 127.0.0.5 as a proxy;
    no_redis: Redis unreachable (3 failed authentications per address, were it counting),
    a body must arrive within SHORT_BODY_TIMEOUT_S (the others allow the default 10 s).
    Only main has a metrics token."""
    limited = {"FORECOURT_API_RATE_LIMIT": "5", "FORECOURT_API_RATE_WINDOW_S": "60",
               "FORECOURT_API_AUTH_FAIL_LIMIT": "3", "FORECOURT_API_AUTH_FAIL_WINDOW_S": "60",
               "FORECOURT_REDIS_NAMESPACE": os.environ["FORECOURT_REDIS_NAMESPACE"] + ":limited"}
    started = {
        "main": Server({"FORECOURT_API_RATE_LIMIT": "100000", "FORECOURT_API_POOL_SIZE": "4",
                        "FORECOURT_API_AUTH_FAIL_LIMIT": "100000",
                        "FORECOURT_API_METRICS_CACHE_S": "0",
                        "FORECOURT_API_METRICS_TOKEN": METRICS_TOKEN,
                        "FORECOURT_API_CORS_ORIGINS": '["https://ui.example"]'}),
        "limited_a": Server({**limited, "FORWARDED_ALLOW_IPS": "127.0.0.1,::1,127.0.0.5"}),
        "limited_b": Server(limited),
        "no_redis": Server({"REDIS_URL": "redis://127.0.0.1:9/0",  # nothing on port 9
                            "FORECOURT_API_AUTH_FAIL_LIMIT": "3",
                            "FORECOURT_API_BODY_TIMEOUT_S": str(SHORT_BODY_TIMEOUT_S)}),
    }
    try:
        yield {name: server.ready() for name, server in started.items()}
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="session")
def api_server(servers):
    return servers["main"]


@pytest.fixture
def api(api_server):
    with httpx.Client(base_url=api_server.url, timeout=40) as client:
        yield client


@pytest.fixture
def world():
    """Two dealerships (acme with a website, bolt with a feed) and a token for each, plus an
    operator token: {'acme': Dealership, 'bolt': ..., 'tokens': {name: token}, 'db': conn}.

    Emptied by deleting dealerships (their jobs, vehicles, rejects and tokens go with them by
    cascade) and operator tokens: much cheaper than the shared `db` fixture's TRUNCATE."""
    conn = connect()
    conn.execute("DELETE FROM dealerships")
    conn.execute("DELETE FROM api_tokens")
    conn.execute("DELETE FROM job_totals")  # the running totals /metrics reports
    db = conn
    acme = dealers_db.create(db, slug="acme", name="Acme Motors", website_url="https://acme.test/")
    bolt = dealers_db.create(db, slug="bolt", name="Bolt Cars", feed_url="https://bolt.test/f.csv")
    tokens = {
        "acme": tokens_db.create(db, "dealer", acme.id, "acme ui")[1],
        "bolt": tokens_db.create(db, "dealer", bolt.id, "bolt ui")[1],
        "operator": tokens_db.create(db, "operator", None, "ops")[1],
    }
    yield {"acme": acme, "bolt": bolt, "tokens": tokens, "db": db}
    conn.close()


def client_from(server: Server, address: str) -> httpx.Client:
    """A client whose connections come from `address`, another loopback address (all of
    127.0.0.0/8 is this machine's): to the API, another client machine."""
    return httpx.Client(base_url=server.url, timeout=40,
                        transport=httpx.HTTPTransport(local_address=address))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def metrics_text(client: httpx.Client) -> str:
    """The main server's /metrics page, read as Prometheus does (its metrics token)."""
    resp = client.get("/metrics", headers=auth(METRICS_TOKEN))
    assert resp.status_code == 200, resp.text
    return resp.text


def add_job(db, dealership_id: int, kind: str = "crawl", state: str = "succeeded",
            **fields) -> int:
    """Insert a job record directly (the API only reads it)."""
    cols = {"dealership_id": dealership_id, "kind": kind, "trigger": "schedule",
            "state": state, **fields}
    from psycopg.types.json import Jsonb

    values = [Jsonb(v) if isinstance(v, dict | list) else v for v in cols.values()]
    row = db.execute(
        f"INSERT INTO jobs ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})"
        " RETURNING id", values).fetchone()
    return row["id"]


def pid(job) -> str:
    """A job's public id, what the API names it by: `job` is a job's number (from add_job;
    a random UUID, no job's, when there is no such job), a Job, or a public id already."""
    import uuid

    if isinstance(job, str):
        return job
    if getattr(job, "public_id", None) is not None:
        return str(job.public_id)
    with connect() as conn:
        row = conn.execute("SELECT public_id FROM jobs WHERE id = %s", (int(job),)).fetchone()
    return str(row["public_id"]) if row is not None else str(uuid.uuid4())


def freshness_world(db, acme_id: int, bolt_id: int) -> None:
    """Scheduled dealers in every shape of freshness (ages relative to the database's now):
    acme, hourly, last success 3 h ago then a failed run: stale, last run failed;
    bolt, hourly, succeeded 30 min ago: fresh;
    degraded, hourly, last success 5 h ago then runs judged degraded: stale, last run partial;
    never, daily cron, added 3 days ago, never succeeded: stale, last run none;
    newbie, daily cron, added just now, never ran: never succeeded but not stale yet;
    resumed, hourly, last success 10 days ago, paused until just now: old, not stale yet;
    paused and unscheduled dealers with old successes: not counted at all."""
    from crawler.db import dealers as dealers_db

    def ago(hours: float) -> str:
        return db.execute("SELECT now() - make_interval(secs => %s) AS t",
                          (hours * 3600,)).fetchone()["t"]

    dealers_db.update(db, acme_id, schedule_interval_s=3600)
    dealers_db.update(db, bolt_id, schedule_interval_s=3600)
    # hourly all along: not put on schedule just now, which would restart their promise
    db.execute("UPDATE dealerships SET scheduled_since = NULL WHERE id = ANY(%s)",
               ([acme_id, bolt_id],))
    add_job(db, acme_id, state="succeeded", verdict="healthy", finished_at=ago(3))
    add_job(db, acme_id, state="failed", finished_at=ago(1), error="downloads failed: boom",
            error_kind="failed")
    add_job(db, bolt_id, kind="feed", state="succeeded", finished_at=ago(0.5))
    degraded = dealers_db.create(db, slug="degraded", name="Degraded",
                                 website_url="https://degraded.test/", schedule_interval_s=3600)
    add_job(db, degraded.id, state="succeeded", verdict="healthy", finished_at=ago(5))
    for hours in (4, 2):
        add_job(db, degraded.id, state="partial", verdict="degraded", finished_at=ago(hours),
                error="valid count 40 is 60% below the baseline 100", error_kind="partial")
    never = dealers_db.create(db, slug="never", name="Never", website_url="https://never.test/",
                              schedule_cron="0 6 * * *", schedule_tz="America/Chicago")
    db.execute("UPDATE dealerships SET created_at = now() - interval '3 days' WHERE id = %s",
               (never.id,))
    add_job(db, never.id, state="queued", phase="retrying", error="no such host",
            error_kind="transient")  # an attempt failed; the job waits for its retry
    dealers_db.create(db, slug="newbie", name="Newbie", website_url="https://newbie.test/",
                      schedule_cron="0 6 * * *")
    paused = dealers_db.create(db, slug="paused", name="Paused", website_url="https://p.test/",
                               schedule_interval_s=3600, paused=True)
    add_job(db, paused.id, state="succeeded", finished_at=ago(100))
    resumed = dealers_db.create(db, slug="resumed", name="Resumed",
                                website_url="https://r.test/", schedule_interval_s=3600,
                                paused=True)
    add_job(db, resumed.id, state="succeeded", finished_at=ago(240))
    dealers_db.update(db, resumed.id, paused=False)  # what `forecourt schedule resume` does
    idle = dealers_db.create(db, slug="unscheduled", name="Unscheduled",
                             website_url="https://u.test/")
    add_job(db, idle.id, state="succeeded", finished_at=ago(200))


def assert_problem(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status
    assert {"type", "title", "status", "detail", "instance"} <= set(body)
    assert "Traceback" not in resp.text and 'File "' not in resp.text
    return body


def eventually(call, status: int, within_s: float = 5.0) -> httpx.Response:
    """Repeat a request until it answers `status` (changes that reach the API through a
    notification, like a revocation evicting a cached token, land within milliseconds)."""
    deadline = time.monotonic() + within_s
    while True:
        resp = call()
        if resp.status_code == status or time.monotonic() > deadline:
            return resp
        time.sleep(0.01)


def raw_request(url: str, head: str, body: bytes = b"") -> tuple[httpx.Response, bool]:
    """Send `head` (request line and headers, without the blank line) and `body` over a raw
    socket, then read the answer: (the answer, whether the server then closed the
    connection). For what an HTTP client library will not send: a body it never finishes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode() + b"\r\n\r\n" + body)
        reader = sock.makefile("rb")
        status = int(reader.readline().split()[1])
        headers = []
        while (line := reader.readline().strip()):
            name, _, value = line.decode().partition(":")
            headers.append((name.strip(), value.strip()))
        answer = httpx.Response(status, headers=headers)
        answer = httpx.Response(status, headers=headers,
                                content=reader.read(int(answer.headers["content-length"])))
        sock.settimeout(5)
        try:
            closed = reader.read(1) == b""  # blocks until the server closes it
        except TimeoutError:
            closed = False
    return answer, closed


def slow_body(url: str, method: str, path: str, token: str | None = None
              ) -> tuple[httpx.Response, bool]:
    """A request that declares a 100-byte body and sends 10 bytes of it, then waits."""
    auth_line = f"\r\nAuthorization: Bearer {token}" if token else ""
    return raw_request(url, f"{method} {path} HTTP/1.1\r\nHost: x{auth_line}\r\n"
                            "Content-Type: application/json\r\nContent-Length: 100",
                       b'{"kind": "')
