"""Benchmark: the job status API under 200 concurrent pollers over loopback.

Creates a scratch database with 100,000 jobs across 1,000 dealerships (COPY), one dealer
token per poller, starts `forecourt api --workers N`, and drives it from separate load
processes speaking plain HTTP/1.1 keep-alive (a minimal client, so the load generator costs
as little CPU as possible: on 2 cores it competes with the server).

For each endpoint it prints requests/s and p50/p95/p99 latency beside the same figures for
a constant endpoint (/healthz: no auth, no database) measured in the same run, and the CPU
each request cost the API processes and the database's backends (the stable figure on a
shared machine, where wall-clock latency also measures everyone else's load):
  paced      every poller polls once per --interval seconds (a dealer UI tab); latency here
             is the service time plus ordinary queueing
  saturated  every poller sends its next request as soon as the last one answers; this is
             the throughput ceiling, and latency is mostly queueing (Little's law)
  single     one poller back to back: the service time of one request, without queueing
and finally 1,000 long polls (`wait`) answered by one change to their jobs.

Run: .venv/bin/python bench/bench_api.py [--jobs 100000] [--pollers 200] [--workers 2]
Uses DATABASE_URL/REDIS_URL when set (a scratch database is created and dropped), else the
embedded servers.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STATES = ["succeeded"] * 16 + ["partial", "failed", "failed", "dead"]


# --- setup ------------------------------------------------------------------------------

def make_database(base_url: str) -> str:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"forecourt_bench_api_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return make_conninfo(**{**conninfo_to_dict(base_url), "dbname": name}), name


def drop_database(base_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fill(url: str, dealers: int, jobs: int, pollers: int) -> dict:
    """Dealerships, jobs (bulk COPY) and one dealer token per poller."""
    from psycopg.types.json import Jsonb

    from crawler.db import connect, migrate
    from crawler.db import tokens as tokens_db

    started = time.perf_counter()
    with connect(url) as conn:
        migrate(conn)
        with conn.cursor().copy("COPY dealerships (slug, name, website_url) FROM STDIN") as cp:
            for i in range(dealers):
                cp.write_row((f"dealer-{i:04d}", f"Dealer {i}", f"https://d{i}.test/"))
        ids = [r["id"] for r in conn.execute("SELECT id FROM dealerships ORDER BY id")]
        rng = random.Random(7)
        cols = ("dealership_id, kind, trigger, state, phase, attempts, counters, verdict, "
                "error, created_at, started_at, finished_at, updated_at")
        with conn.cursor().copy(f"COPY jobs ({cols}) FROM STDIN") as cp:
            for n in range(jobs):
                state = rng.choice(STATES)
                items = rng.randint(50, 900)
                counters = {"pages": items // 20, "items": items, "valid": items - 3,
                            "rejected": 3, "upserted": rng.randint(0, 40),
                            "unchanged": items - 43, "removed": rng.randint(0, 5)}
                at = f"2026-{1 + n % 12:02d}-{1 + n % 28:02d} {n % 24:02d}:{n % 60:02d}:00+00"
                cp.write_row((ids[n % dealers], "crawl" if n % 3 else "feed", "schedule",
                              state, "done", 1, Jsonb(counters),
                              "healthy" if state == "succeeded" else "degraded",
                              None if state == "succeeded" else "site answered 503",
                              at, at, at, at))
        conn.execute("ANALYZE jobs")
        by_dealer = {}
        for r in conn.execute("SELECT dealership_id, array_agg(id ORDER BY id) AS ids,"
                              " array_agg(public_id::text ORDER BY id) AS public FROM jobs"
                              " WHERE dealership_id = ANY(%s) GROUP BY 1",
                              (ids[:pollers],)):
            by_dealer[r["dealership_id"]] = (r["ids"], r["public"])
        tokens = []
        for i in range(pollers):
            _, token = tokens_db.create(conn, "dealer", ids[i], "bench")
            tokens.append({"token": token, "slug": f"dealer-{i:04d}",
                           # numbers for SQL, public ids (what the API takes) for paths
                           "jobs": by_dealer[ids[i]][0], "public": by_dealer[ids[i]][1]})
    return {"pollers": tokens, "seconds": time.perf_counter() - started}


# What the bench presents to read /metrics (its API's FORECOURT_API_METRICS_TOKEN).
METRICS_TOKEN = secrets.token_hex(32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_api(url: str, port: int, workers: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "FORECOURT_API_RATE_LIMIT": str(10**9),
           "FORECOURT_REDIS_NAMESPACE": f"bench-{uuid.uuid4().hex[:6]}",
           "FORECOURT_LOG_LEVEL": "WARNING", "FORECOURT_API_METRICS_TOKEN": METRICS_TOKEN}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "forecourt"), "api", "--port",
                             str(port), "--workers", str(workers)], env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
                if b"200 OK" in s.recv(4096):
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the API did not start; see {log}")


# --- CPU accounting: on a shared 2-core machine, CPU per request is the stable figure -----

def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = (task / "children").read_text().split()
        except OSError:
            continue
        for kid in kids:
            out += _descendants(int(kid))
    return out


def cpu_snapshot(api_pid: int, db_url: str, db_name: str) -> tuple[float, float]:
    """(API processes' CPU seconds, this database's PostgreSQL backends' CPU seconds)."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        pids = [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (db_name,))]
    return (sum(_proc_cpu(p) for p in _descendants(api_pid)),
            sum(_proc_cpu(p) for p in pids))


# --- load -------------------------------------------------------------------------------

async def _read(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    etag = b""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"etag":
            etag = value.strip()
    body = await reader.readexactly(length) if length else b""
    return status, body, etag


async def _poller(port: int, spec: dict, scenario: str, stop_at: float, interval: float,
                  lat: list, statuses: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    auth = f"Authorization: Bearer {spec['token']}\r\n"
    rng = random.Random(spec["slug"])
    jobs = spec["public"]

    def request(path: str, extra: str = "") -> bytes:
        return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}{extra}\r\n".encode()

    etag = b""
    if scenario == "not-modified":
        writer.write(request(f"/v1/jobs/{jobs[0]}"))
        _, _, etag = await _read(reader)
    next_at = time.perf_counter() + (rng.random() * interval if interval else 0)
    while True:
        if interval:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at += interval
        if time.perf_counter() >= stop_at:
            break
        if scenario == "baseline":
            req = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        elif scenario == "get-job":
            req = request(f"/v1/jobs/{rng.choice(jobs)}")
        elif scenario == "list-jobs":
            req = request(f"/v1/dealerships/{spec['slug']}/jobs?limit=20")
        else:
            req = request(f"/v1/jobs/{jobs[0]}", f"If-None-Match: {etag.decode()}\r\n")
        t0 = time.perf_counter()
        writer.write(req)
        status, _, _ = await _read(reader)
        lat.append(time.perf_counter() - t0)
        statuses[status] = statuses.get(status, 0) + 1
    writer.close()


def _load_process(port, specs, scenario, start_at, seconds, interval, out):
    async def main():
        lat: list[float] = []
        statuses: dict[int, int] = {}
        await asyncio.sleep(max(0.0, start_at - time.time()))
        stop_at = time.perf_counter() + seconds
        await asyncio.gather(*(_poller(port, s, scenario, stop_at, interval, lat, statuses)
                               for s in specs))
        return lat, statuses

    out.put(asyncio.run(main()))


def run_scenario(port: int, pollers: list[dict], scenario: str, seconds: float,
                 interval: float, procs: int) -> dict:
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    start_at = time.time() + 1.0  # every process connects first, then all start together
    workers = [ctx.Process(target=_load_process,
                           args=(port, pollers[i::procs], scenario, start_at, seconds,
                                 interval, out)) for i in range(procs)]
    for w in workers:
        w.start()
    lat: list[float] = []
    statuses: dict[int, int] = {}
    for _ in workers:
        part, st = out.get(timeout=seconds + 120)
        lat += part
        for k, v in st.items():
            statuses[k] = statuses.get(k, 0) + v
    for w in workers:
        w.join()
    lat.sort()
    if len(lat) < 2:
        return {"rps": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "n": len(lat),
                "statuses": statuses}
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {"rps": len(lat) / seconds, "p50": q[49] * 1000, "p95": q[94] * 1000,
            "p99": q[98] * 1000, "n": len(lat), "statuses": statuses}


# --- long polls: many waiting tabs, one change each ----------------------------------------

def _long_poll_process(port, specs, waiters, ready, out):
    async def main():
        etags = {}
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for spec in specs:  # each job's current ETag, as a tab has from its last poll
            path = f"/v1/jobs/{spec['public'][0]}"
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                         f"{spec['token']}\r\n\r\n".encode())
            etags[path] = (await _read(reader))[2].decode()
        writer.close()

        async def open_waiter(i):
            spec = specs[i % len(specs)]
            path = f"/v1/jobs/{spec['public'][0]}"
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path}?wait=30 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                         f"{spec['token']}\r\nIf-None-Match: {etags[path]}\r\n\r\n".encode())
            return reader, writer

        conns = await asyncio.gather(*(open_waiter(i) for i in range(waiters)))
        ready.put(len(conns))

        async def answer(reader):
            status, _, _ = await _read(reader)
            return status, time.time()

        got = await asyncio.gather(*(answer(c[0]) for c in conns))
        for c in conns:
            c[1].close()
        return got

    out.put(asyncio.run(main()))


def _waiting(port: int) -> float:
    data = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                      f"{METRICS_TOKEN}\r\nConnection: close\r\n\r\n".encode())
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return 0.0
    if not data.startswith(b"HTTP/1.1 200"):  # else the wait below would time out silently
        raise SystemExit(f"/metrics refused the bench: {data[:300]!r}")
    for line in data.decode().splitlines():
        if line.startswith("forecourt_api_waiting_requests "):
            return float(line.split()[1])
    return 0.0


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def run_long_poll(port: int, api_pid: int, url: str, name: str, pollers: list[dict],
                  waiters: int) -> None:
    import psycopg

    ctx = mp.get_context("fork")
    ready, out = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_long_poll_process, args=(port, pollers, waiters, ready, out))
    rss_before = _rss_mb(_descendants(api_pid))
    proc.start()
    ready.get(timeout=300)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until the server holds every request waiting
        if _waiting(port) >= waiters:
            break
        time.sleep(0.2)
    rss_waiting = _rss_mb(_descendants(api_pid))
    with psycopg.connect(url, autocommit=True) as conn:
        backends = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                                " AND pid <> pg_backend_pid()", (name,)).fetchone()[0]
        jobs = sorted({p["jobs"][0] for p in pollers[:waiters]})
        changed_at = time.time()
        conn.execute("UPDATE jobs SET phase = 'bench-changed', updated_at = now()"
                     " WHERE id = ANY(%s)", (jobs,))
    answers = out.get(timeout=120)
    proc.join()
    delays = sorted((t - changed_at) * 1000 for _, t in answers)
    ok = sum(1 for status, _ in answers if status == 200)
    q = statistics.quantiles(delays, n=100, method="inclusive")
    print(f"\nlong polls: {waiters:,} requests waiting (wait=30, If-None-Match) on {len(jobs)} "
          f"jobs, then one UPDATE changes them all")
    print(f"  answered 200 with the change: {ok:,}/{len(answers):,}; from the UPDATE to the "
          f"answer p50 {q[49]:.0f} ms, p95 {q[94]:.0f} ms, last {delays[-1]:.0f} ms")
    print(f"  while waiting: {backends} PostgreSQL connections (pools and listeners of all "
          f"API processes), API RSS {rss_before:.0f} MB before, {rss_waiting:.0f} MB waiting")


# --- main -------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--dealers", type=int, default=1_000)
    ap.add_argument("--pollers", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2, help="API worker processes")
    ap.add_argument("--load-procs", type=int, default=1, help="load generator processes")
    ap.add_argument("--seconds", type=float, default=8.0, help="per scenario and mode")
    ap.add_argument("--waiters", type=int, default=1000, help="long-poll requests")
    ap.add_argument("--interval", type=float, default=1.0,
                    help="paced mode: seconds between one poller's requests")
    args = ap.parse_args()

    from crawler.db import database_url

    base = os.environ.get("DATABASE_URL") or database_url()
    url, name = make_database(base)
    server = None
    try:
        data = fill(url, args.dealers, args.jobs, args.pollers)
        print(f"setup: {args.jobs:,} jobs, {args.dealers:,} dealerships, {args.pollers} "
              f"tokens in {data['seconds']:.1f} s")
        port = free_port()
        log = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-api-{port}.log"
        server = start_api(url, port, args.workers, log)
        print(f"API: {args.workers} worker process(es); load: {args.load_procs} process(es), "
              f"{args.pollers} keep-alive connections; {os.cpu_count()} cores shared")
        scenarios = ["baseline", "get-job", "list-jobs", "not-modified"]
        for mode, interval in (("single", 0.0), ("paced", args.interval), ("saturated", 0.0)):
            pollers = data["pollers"][:1] if mode == "single" else data["pollers"]
            if mode == "single":
                print("\nsingle: one poller back to back (service time, no queueing)")
            elif mode == "paced":
                offered = args.pollers / args.interval
                print(f"\n{mode}: each poller every {args.interval:g} s "
                      f"(offered {offered:,.0f} req/s)")
            else:
                print(f"\n{mode}: each poller back to back")
            print(f"{'endpoint':<14}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
                  f"{'p95 vs base':>13}{'API CPU':>9}{'DB CPU':>8}  statuses")
            base_p95 = None
            for scenario in scenarios:
                run_scenario(port, pollers, scenario, 1.0, interval,
                             min(args.load_procs, len(pollers)))  # warm-up
                api0, db0 = cpu_snapshot(server.pid, url, name)
                r = run_scenario(port, pollers, scenario, args.seconds, interval,
                                 min(args.load_procs, len(pollers)))
                api1, db1 = cpu_snapshot(server.pid, url, name)
                n = max(r["n"], 1)
                base_p95 = base_p95 or r["p95"] or 1.0
                label = {"not-modified": "304 path"}.get(scenario, scenario)
                print(f"{label:<14}{r['rps']:>9,.0f}{r['p50']:>9.2f}{r['p95']:>9.2f}"
                      f"{r['p99']:>9.2f}{r['p95'] / base_p95:>12.2f}x"
                      f"{(api1 - api0) / n * 1000:>7.2f}ms{(db1 - db0) / n * 1000:>6.2f}ms"
                      f"  {r['statuses']}")
        run_long_poll(port, server.pid, url, name, data["pollers"], args.waiters)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        drop_database(base, name)


if __name__ == "__main__":
    main()
