"""Benchmark: crawl jobs for many fixture dealerships through real `forecourt worker`s.

Generates (seeded) one fixture site per dealership with --vehicles vehicles each, published
as schema.org JSON-LD on paginated listing pages of 100 (valid, unique VINs), serves them all
from one fixture server on 127.0.0.1, and then:

  baseline   --baseline dealerships crawled one after another in this process with the
             spine's direct path (create job, crawl_runner.run_crawl), no queue;
  workers    --dealers dealerships triggered at once on the `scheduled` queue (as the
             scheduler does) and run by `forecourt worker --processes P --threads T`; while
             that backlog runs, --probes operator jobs are triggered on the `priority`
             queue, one at a time, to show what an operator waits behind scheduled work.

Prints jobs per minute and vehicles per second for both (and their ratio), and p50/p95 of
the time from trigger to running (created_at -> started_at in the job records) for the
scheduled backlog and for the operator probes.

Run: .venv/bin/python bench/bench_jobs.py [--dealers 200] [--vehicles 500]
     [--processes 2] [--threads 3] [--baseline 4] [--probes 6] [--seed 7]
Uses DATABASE_URL/REDIS_URL when set (a scratch database and Redis namespace are created
and dropped), else the embedded servers in a scratch data directory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# (first 8 characters, model year code and plant) of real VINs, with what they are.
MODELS = [
    ("19XFC2F7", "ME", 2021, "Honda", "Civic", "Sedan"),
    ("2T3P1RFV", "PC", 2023, "Toyota", "RAV4", "SUV"),
    ("1FTFW1E8", "NF", 2022, "Ford", "F-150", "Pickup"),
    ("3GNAXKEG", "RS", 2024, "Chevrolet", "Equinox", "SUV"),
    ("3VW6T7AU", "KM", 2019, "Volkswagen", "Golf GTI", "Hatchback"),
    ("4S4BTACC", "L3", 2020, "Subaru", "Outback", "Wagon"),
    ("KM8JBCD1", "RU", 2024, "Hyundai", "Tucson", "SUV"),
    ("1C4HJXDG", "NW", 2022, "Jeep", "Wrangler", "SUV"),
]


def vin(prefix: str, tail: str, serial: int) -> str:
    from quality.vins import check_digit

    draft = f"{prefix}0{tail}{serial:06d}"
    return draft[:8] + check_digit(draft) + draft[9:]


def make_sites(root: Path, slugs: list[str], vehicles: int, seed: int, start: int) -> None:
    """One site per slug under root/<slug>/inventory/, 100 vehicles per listing page."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    serial = start
    for slug in slugs:
        pages = max(1, (vehicles + 99) // 100)
        folder = root / slug
        folder.mkdir(parents=True)
        (folder / "inventory").mkdir()
        for page in range(1, pages + 1):
            nodes = []
            for _ in range(min(100, vehicles - (page - 1) * 100)):
                serial += 1
                prefix, tail, year, make, model, body = rng.choice(MODELS)
                v = vin(prefix, tail, serial)
                url = f"{{{{BASE}}}}/{slug}/inventory/used-{year}-{make.lower()}-{v}"
                nodes.append({
                    "@type": "Car", "name": f"{year} {make} {model}",
                    "vehicleIdentificationNumber": v, "brand": {"@type": "Brand", "name": make},
                    "model": model, "vehicleModelDate": str(year), "bodyType": body,
                    "color": rng.choice(["Black", "White", "Silver", "Blue", "Red"]),
                    "itemCondition": "https://schema.org/UsedCondition", "sku": f"S{serial}",
                    "url": url, "image": [f"{{{{BASE}}}}/photos/{v}-1.jpg"],
                    "mileageFromOdometer": {"@type": "QuantitativeValue",
                                            "value": rng.randint(5, 90) * 1000,
                                            "unitCode": "SMI"},
                    "offers": {"@type": "Offer", "price": rng.randint(90, 600) * 100,
                               "priceCurrency": "USD"},
                })
            doc = {"@context": "https://schema.org", "@graph": nodes}
            nav = (f'<a rel="next" href="/{slug}/inventory/?page={page + 1}">Next</a>'
                   if page < pages else "")
            html = ("<!doctype html><html><head><meta charset='utf-8'><title>Inventory "
                    f"page {page}</title><script type=\"application/ld+json\">"
                    f"{json.dumps(doc)}</script></head><body><nav class='pagination'>{nav}"
                    "</nav></body></html>")
            name = "index.html" if page == 1 else f"../inventory__page-{page}.html"
            (folder / "inventory" / name).write_text(html)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summarize(conn, ids: list[int]) -> dict:
    rows = conn.execute(
        "SELECT state, created_at, started_at, finished_at, counters FROM jobs"
        " WHERE id = ANY(%s)", (ids,)).fetchall()
    start = min(r["created_at"] for r in rows)
    end = max(r["finished_at"] for r in rows)
    seconds = (end - start).total_seconds()
    waits = [(r["started_at"] - r["created_at"]).total_seconds() for r in rows]
    vehicles = sum(int(r["counters"].get("upserted", 0)) + int(r["counters"].get("unchanged", 0))
                   for r in rows)
    states: dict[str, int] = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    return {"jobs": len(rows), "seconds": seconds, "jobs_per_min": len(rows) / seconds * 60,
            "vehicles": vehicles, "vehicles_per_s": vehicles / seconds, "states": states,
            "wait_p50": percentile(waits, 0.5), "wait_p95": percentile(waits, 0.95)}


def wait_all(conn, ids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        left = conn.execute("SELECT count(*) AS n FROM jobs WHERE id = ANY(%s)"
                            " AND state IN ('queued', 'running')", (ids,)).fetchone()["n"]
        if not left:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"{left} jobs still unfinished after {timeout:.0f} s")
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dealers", type=int, default=200)
    parser.add_argument("--vehicles", type=int, default=500)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=3)
    parser.add_argument("--baseline", type=int, default=4)
    parser.add_argument("--probes", type=int, default=6)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="forecourt-bench-jobs-"))
    base_db = os.environ.get("DATABASE_URL")
    db_name = None
    os.environ["FORECOURT_DATA_DIR"] = str(scratch / "data")
    os.environ["FORECOURT_REDIS_NAMESPACE"] = f"bench-{uuid.uuid4().hex[:8]}"
    os.environ["FORECOURT_ALLOW_PRIVATE_HOSTS"] = '["127.0.0.1"]'
    os.environ["FORECOURT_LOG_LEVEL"] = "WARNING"
    if base_db:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        db_name = f"forecourt_bench_jobs_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(base_db, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{db_name}"')
        os.environ["DATABASE_URL"] = make_conninfo(**{**conninfo_to_dict(base_db),
                                                      "dbname": db_name})
    from crawler import fixture_server
    from crawler.config import reset_settings
    from crawler.db import connect, database_url, migrate, redis_url
    from crawler.db import dealers as dealers_db
    from crawler.db import jobs as jobs_db

    reset_settings()
    os.environ["DATABASE_URL"] = database_url()
    os.environ["REDIS_URL"] = redis_url()
    worker = server = None
    try:
        sites = scratch / "sites"
        slugs = [f"bench-{i:04d}" for i in range(args.dealers)]
        base_slugs = [f"base-{i:04d}" for i in range(args.baseline)]
        probe_slugs = [f"probe-{i:04d}" for i in range(args.probes)]
        t = time.perf_counter()
        make_sites(sites, slugs + base_slugs + probe_slugs, args.vehicles, args.seed, 100_000)
        print(f"generated {len(slugs) + len(base_slugs) + len(probe_slugs)} sites of "
              f"{args.vehicles} vehicles in {time.perf_counter() - t:.1f} s", flush=True)
        server = fixture_server.serve(sites, 0)
        base = fixture_server.base_url(server)
        conn = connect()
        migrate(conn)
        ids = {}
        for slug in slugs + base_slugs + probe_slugs:
            ids[slug] = dealers_db.create(conn, slug=slug, name=slug,
                                          website_url=f"{base}/{slug}/inventory/").id

        # Baseline: the direct path, one crawl after another, no queue.
        from crawler.crawl_runner import run_crawl

        base_jobs = []
        for slug in base_slugs:
            job, _ = jobs_db.create_or_get_active(conn, ids[slug], "crawl", "operator")
            jobs_db.start(conn, job.id, "bench")
            run_crawl(job.id)
            base_jobs.append(job.id)
        baseline = summarize(conn, base_jobs) if base_jobs else None
        if baseline:
            print(f"baseline: {baseline['jobs']} crawls in {baseline['seconds']:.1f} s",
                  flush=True)

        # Workers.
        log = open(scratch / "worker.log", "ab")
        worker = subprocess.Popen(
            [sys.executable, "-c", "import sys; from crawler.cli import main; sys.exit(main())",
             "worker", "--processes", str(args.processes), "--threads", str(args.threads)],
            # INFO: the "ready for action" line waited for below is an INFO record, which
            # forecourt's handler (adopted in each worker process) drops at WARNING
            env=dict(os.environ, FORECOURT_LOG_LEVEL="INFO"), stdout=log,
            stderr=subprocess.STDOUT, cwd=str(ROOT), start_new_session=True)
        deadline = time.monotonic() + 120
        while b"ready for action" not in (scratch / "worker.log").read_bytes():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit((scratch / "worker.log").read_text()[-2000:])
            time.sleep(0.2)
        time.sleep(1.0)  # every worker process up
        from jobs import service

        t0 = time.perf_counter()
        bulk = [service.trigger(conn, ids[slug], "crawl", "schedule")[0].id for slug in slugs]
        print(f"triggered {len(bulk)} scheduled jobs in {time.perf_counter() - t0:.1f} s",
              flush=True)
        probes = []
        for i, slug in enumerate(probe_slugs):
            # Spread the operator probes over the backlog, one at a time.
            target = len(bulk) * (i + 1) // (len(probe_slugs) + 1)
            while conn.execute("SELECT count(*) AS n FROM jobs WHERE id = ANY(%s) AND state"
                               " NOT IN ('queued', 'running')", (bulk,)).fetchone()["n"] < target:
                time.sleep(0.5)
            job = service.trigger(conn, ids[slug], "crawl", "operator")[0]
            probes.append(job.id)
            wait_all(conn, [job.id], args.timeout)
        wait_all(conn, bulk + probes, args.timeout)
        work = summarize(conn, bulk)
        probe = summarize(conn, probes) if probes else None

        print()
        print(f"machine: {os.cpu_count()} cores; workers: {args.processes} process(es) x "
              f"{args.threads} thread(s); {args.vehicles} vehicles per dealership")
        print(f"{'':28}{'jobs':>6}{'seconds':>10}{'jobs/min':>10}{'vehicles/s':>12}"
              f"{'p50 wait':>10}{'p95 wait':>10}  states")
        rows = [("baseline (direct, serial)", baseline), ("workers: scheduled backlog", work),
                ("workers: operator probes", probe)]
        for name, r in rows:
            if r and name.endswith("probes"):  # one at a time: only their wait means much
                print(f"{name:28}{r['jobs']:>6}{'-':>10}{'-':>10}{'-':>12}"
                      f"{r['wait_p50']:>9.2f}s{r['wait_p95']:>9.2f}s  {r['states']}")
            elif r:
                print(f"{name:28}{r['jobs']:>6}{r['seconds']:>10.1f}{r['jobs_per_min']:>10.1f}"
                      f"{r['vehicles_per_s']:>12.0f}{r['wait_p50']:>9.2f}s{r['wait_p95']:>9.2f}s"
                      f"  {r['states']}")
        if baseline:
            ratio = work["jobs_per_min"] / baseline["jobs_per_min"]
            print(f"ratio workers / baseline: {ratio:.2f}x jobs per minute")
        print("(wait = trigger to running; the backlog is queued all at once, so its wait is "
              "mostly queueing; operator probes go on the priority queue)")
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
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


if __name__ == "__main__":
    main()
