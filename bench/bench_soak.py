"""Soak: the 200-dealer workload on real workers for several minutes while workers are killed.

Generates (seeded, at run time, into a scratch directory) one fixture website per crawl
dealership (bench/bench_jobs.py's generator: schema.org listing pages on 127.0.0.1) and one
HomeNet-style CSV feed per feed dealership (fixtures/tools/make_feed.py), then:

  - starts --workers separate `forecourt worker` process groups;
  - keeps every dealership busy until --minutes have passed: whenever a dealer has no
    queued or running job, a new one is triggered (as the scheduler would);
  - every --kill-every seconds (randomised) SIGKILLs one worker group at random, its crawl
    children included, and starts a replacement, as an orchestrator would;
  - samples the resident memory of every worker process (and, separately, of crawl
    children) once a second;
  - stops triggering, waits for every job to end, and checks the database.

Prints jobs completed (by state), jobs lost (triggered but never ended: must be 0),
duplicate vehicles and duplicate "added" events per (dealer, VIN) (must be 0), dealers whose
last successful run left the wrong number of active vehicles (must be 0), and peak memory
per worker process. Exit status 1 when any must-be-zero figure is not.

The kills cost time, not correctness: jobs per minute is printed for scale.

Run: .venv/bin/python bench/bench_soak.py [--dealers 200] [--vehicles 100] [--minutes 4]
     [--feed-share 0.25] [--workers 3] [--threads 2] [--kill-every 20] [--seed 7]
Uses DATABASE_URL/REDIS_URL when set (a scratch database and Redis namespace are created
and dropped), else embedded servers in a scratch data directory.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

FINAL = ("succeeded", "partial", "failed", "blocked", "cancelled", "dead")
FAST = {  # quick redelivery, as in the fault tests, so a kill costs seconds
    "FORECOURT_JOB_BROKER_HEARTBEAT_MS": "5000",
    "FORECOURT_JOB_BROKER_MAINTENANCE_CHANCE": "300000",
    "FORECOURT_JOB_STALE_AFTER_S": "4",
    "FORECOURT_JOB_REAP_AFTER_S": "30",
    "FORECOURT_JOB_RESEND_AFTER_S": "60",
    "FORECOURT_JOB_MIN_BACKOFF_S": "1",
    "FORECOURT_JOB_MAX_BACKOFF_S": "5",
    "FORECOURT_LOG_FORMAT": "text",
    "FORECOURT_LOG_LEVEL": "WARNING",
}


class Workers:
    """Worker process groups that can be killed and replaced; memory sampled per process."""

    def __init__(self, n: int, threads: int, logs: Path):
        self.threads, self.logs = threads, logs
        self.procs: list[subprocess.Popen] = []
        self.started = 0
        self.kills = 0
        self.peak_worker: dict[int, int] = {}  # pid -> peak RSS bytes (worker processes)
        self.peak_child = 0  # largest crawl child seen
        self._stop = threading.Event()
        for _ in range(n):
            self.procs.append(self._start())
        threading.Thread(target=self._sample, daemon=True).start()

    def _start(self) -> subprocess.Popen:
        self.started += 1
        log = open(self.logs / f"worker-{self.started}.log", "ab")
        return subprocess.Popen(
            [sys.executable, "-c", "import sys; from crawler.cli import main; sys.exit(main())",
             "worker", "--processes", "1", "--threads", str(self.threads)],
            env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT),
            start_new_session=True)

    def kill_one(self, rng: random.Random) -> None:
        i = rng.randrange(len(self.procs))
        victim = self.procs[i]
        try:
            os.killpg(victim.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        victim.wait()
        self.kills += 1
        self.procs[i] = self._start()

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(1.0):
            for proc in list(self.procs):
                try:
                    family = [psutil.Process(proc.pid),
                              *psutil.Process(proc.pid).children(recursive=True)]
                except psutil.Error:
                    continue
                for p in family:
                    try:
                        rss = p.memory_info().rss
                        crawl = "crawler.crawl_process" in " ".join(p.cmdline())
                    except psutil.Error:
                        continue
                    if crawl:
                        self.peak_child = max(self.peak_child, rss)
                    else:
                        self.peak_worker[p.pid] = max(self.peak_worker.get(p.pid, 0), rss)

    def stop(self) -> None:
        self._stop.set()
        for proc in self.procs:  # the run is over: no need to let jobs finish
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def keep_busy(conn, service, dealer_ids: list[int], triggered: list[int]) -> int:
    """Trigger a job for every dealer with none active; returns how many were triggered."""
    idle = conn.execute(
        "SELECT d.id FROM dealerships d WHERE d.id = ANY(%s) AND NOT EXISTS ("
        " SELECT 1 FROM jobs j WHERE j.dealership_id = d.id AND j.state IN ('queued','running'))",
        (dealer_ids,)).fetchall()
    for row in idle:
        job, created = service.trigger(conn, row["id"], _kind(conn, row["id"]), "schedule")
        if created:
            triggered.append(job.id)
    return len(idle)


def _kind(conn, dealer_id: int) -> str:
    row = conn.execute("SELECT feed_url FROM dealerships WHERE id = %s", (dealer_id,)).fetchone()
    return "feed" if row["feed_url"] else "crawl"


def check(conn, triggered: list[int], expected: dict[int, int]) -> dict:
    states = {r["state"]: r["n"] for r in conn.execute(
        "SELECT state, count(*) AS n FROM jobs WHERE id = ANY(%s) GROUP BY 1", (triggered,))}
    lost = conn.execute("SELECT count(*) AS n FROM jobs WHERE id = ANY(%s) AND state NOT IN"
                        " ('succeeded','partial','failed','blocked','cancelled','dead')",
                        (triggered,)).fetchone()["n"]
    missing = len(triggered) - sum(states.values())
    dup_vehicles = conn.execute(
        "SELECT count(*) AS n FROM (SELECT 1 FROM vehicles GROUP BY dealership_id, vin"
        " HAVING count(*) > 1) x").fetchone()["n"]
    dup_added = conn.execute(
        "SELECT count(*) AS n FROM (SELECT 1 FROM vehicle_events WHERE kind = 'added'"
        " GROUP BY dealership_id, vin HAVING count(*) > 1) x").fetchone()["n"]
    wrong = 0
    for dealer_id, n in expected.items():
        ok = conn.execute("SELECT 1 FROM jobs WHERE dealership_id = %s AND state = 'succeeded'"
                          " LIMIT 1", (dealer_id,)).fetchone()
        if ok is None:
            continue
        active = conn.execute("SELECT count(*) AS n FROM vehicles WHERE dealership_id = %s"
                              " AND status = 'active'", (dealer_id,)).fetchone()["n"]
        wrong += active != n
    attempts = conn.execute("SELECT coalesce(max(attempts), 0) AS m, count(*) FILTER"
                            " (WHERE attempts > 1) AS retried FROM jobs WHERE id = ANY(%s)",
                            (triggered,)).fetchone()
    return {"states": states, "completed": sum(v for k, v in states.items() if k in FINAL),
            "lost": lost + missing, "dup_vehicles": dup_vehicles, "dup_added": dup_added,
            "wrong_inventory": wrong, "retried": attempts["retried"],
            "max_attempts": attempts["m"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dealers", type=int, default=200)
    parser.add_argument("--vehicles", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--feed-share", type=float, default=0.25)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kill-every", type=float, default=20.0)
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    for sig in (signal.SIGINT, signal.SIGTERM):  # clean up (workers, servers) when stopped
        signal.signal(sig, lambda *_: (_ for _ in ()).throw(SystemExit(130)))

    scratch = Path(tempfile.mkdtemp(prefix="forecourt-soak-"))
    base_db = os.environ.get("DATABASE_URL")
    db_name = None
    os.environ["FORECOURT_DATA_DIR"] = str(scratch / "data")
    os.environ["FORECOURT_REDIS_NAMESPACE"] = f"soak-{uuid.uuid4().hex[:8]}"
    os.environ["FORECOURT_ALLOW_PRIVATE_HOSTS"] = '["127.0.0.1"]'
    os.environ.update(FAST)
    if base_db:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        db_name = f"forecourt_soak_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(base_db, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{db_name}"')
        os.environ["DATABASE_URL"] = make_conninfo(**{**conninfo_to_dict(base_db),
                                                      "dbname": db_name})
    from bench_jobs import make_sites

    from crawler import fixture_server
    from crawler.config import reset_settings
    from crawler.db import connect, database_url, migrate, redis_url
    from crawler.db import dealers as dealers_db
    from fixtures.tools import make_feed

    reset_settings()
    os.environ["DATABASE_URL"] = database_url()
    os.environ["REDIS_URL"] = redis_url()
    workers = server = None
    status = 1
    try:
        n_feed = int(args.dealers * args.feed_share)
        crawl_slugs = [f"soak-site-{i:04d}" for i in range(args.dealers - n_feed)]
        feed_slugs = [f"soak-feed-{i:04d}" for i in range(n_feed)]
        t = time.perf_counter()
        make_sites(scratch / "sites", crawl_slugs, args.vehicles, args.seed, 200_000)
        feeds = scratch / "feeds"
        feeds.mkdir()
        for i, slug in enumerate(feed_slugs):
            make_feed.write(feeds / f"{slug}.csv", args.vehicles, seed=args.seed * 1000 + i)
        print(f"generated {len(crawl_slugs)} sites and {len(feed_slugs)} feeds of "
              f"{args.vehicles} vehicles in {time.perf_counter() - t:.1f} s", flush=True)
        server = fixture_server.serve(scratch / "sites", 0)
        base = fixture_server.base_url(server)
        conn = connect()
        migrate(conn)
        expected: dict[int, int] = {}
        for slug in crawl_slugs:
            expected[dealers_db.create(conn, slug=slug, name=slug,
                                       website_url=f"{base}/{slug}/inventory/").id] = \
                args.vehicles
        for slug in feed_slugs:
            expected[dealers_db.create(conn, slug=slug, name=slug,
                                       feed_url=str(feeds / f"{slug}.csv")).id] = args.vehicles
        dealer_ids = list(expected)

        logs = scratch / "logs"
        logs.mkdir()
        workers = Workers(args.workers, args.threads, logs)
        deadline = time.monotonic() + 120
        while sum(b"ready for action" in p.read_bytes() for p in logs.iterdir()) < args.workers:
            if time.monotonic() > deadline:
                raise SystemExit("workers did not start")
            time.sleep(0.2)
        from jobs import service

        triggered: list[int] = []
        started = time.monotonic()
        end = started + args.minutes * 60
        next_kill = started + rng.uniform(0.5, 1.5) * args.kill_every
        print(f"soaking for {args.minutes:g} min: {args.workers} workers x {args.threads} "
              f"threads, a kill every ~{args.kill_every:g} s", flush=True)
        while time.monotonic() < end:
            keep_busy(conn, service, dealer_ids, triggered)
            if time.monotonic() >= next_kill:
                workers.kill_one(rng)
                next_kill = time.monotonic() + rng.uniform(0.5, 1.5) * args.kill_every
                done = conn.execute("SELECT count(*) AS n FROM jobs WHERE id = ANY(%s) AND"
                                    " state NOT IN ('queued','running')",
                                    (triggered,)).fetchone()["n"]
                print(f"  {time.monotonic() - started:6.0f} s: kill #{workers.kills}; "
                      f"{len(triggered)} triggered, {done} ended", flush=True)
            time.sleep(1.0)
        soak_s = time.monotonic() - started
        print(f"draining {len(triggered)} jobs...", flush=True)
        drain = time.monotonic()
        unfinished = 0
        while unfinished := conn.execute(
                "SELECT count(*) AS n FROM jobs WHERE id = ANY(%s) AND state IN"
                " ('queued','running')", (triggered,)).fetchone()["n"]:
            if time.monotonic() - drain > args.drain_timeout:
                break
            time.sleep(1.0)
        if unfinished:
            print(f"drain timed out after {args.drain_timeout:.0f} s with {unfinished} jobs"
                  " still queued or running: the figures below are not a verdict", flush=True)
        result = check(conn, triggered, expected)
        vehicles = conn.execute("SELECT count(*) AS n FROM vehicles").fetchone()["n"]
        peak = sorted(workers.peak_worker.values(), reverse=True)
        mb = 1024 * 1024
        print()
        print(f"machine: {os.cpu_count()} cores; {args.dealers} dealers ({len(crawl_slugs)} "
              f"sites, {len(feed_slugs)} feeds) x {args.vehicles} vehicles; {args.workers} "
              f"workers x {args.threads} threads; {workers.kills} kills in {soak_s:.0f} s")
        print(f"jobs triggered:        {len(triggered)}")
        print(f"jobs completed:        {result['completed']}  {result['states']}")
        per_min = result["completed"] / ((time.monotonic() - started) / 60)
        print(f"jobs/min (incl. kills): {per_min:.1f}")
        print(f"jobs retried:          {result['retried']} (max attempts {result['max_attempts']})")
        print(f"jobs lost:             {result['lost']}  (must be 0)")
        print(f"duplicate vehicles:    {result['dup_vehicles']}  (must be 0)")
        print(f"duplicate added events:{result['dup_added']:>2}  (must be 0)")
        print(f"wrong inventories:     {result['wrong_inventory']}  (must be 0)")
        print(f"vehicles stored:       {vehicles}")
        print(f"peak RSS per worker process: max {peak[0] / mb:.0f} MB, median "
              f"{peak[len(peak) // 2] / mb:.0f} MB over {len(peak)} processes; "
              f"largest crawl child {workers.peak_child / mb:.0f} MB" if peak else "no samples")
        bad = result["lost"] + result["dup_vehicles"] + result["dup_added"] + \
            result["wrong_inventory"]
        status = 2 if unfinished else (0 if bad == 0 else 1)
    finally:
        if workers is not None:
            workers.stop()
        if server is not None:
            server.shutdown()
            server.server_close()
        if db_name:
            import psycopg

            with psycopg.connect(base_db, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        else:
            from crawler import embedded

            embedded.stop(scratch / "data")
        shutil.rmtree(scratch, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
