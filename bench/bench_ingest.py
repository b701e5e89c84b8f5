"""Feed ingestion against plain binary COPY, in one run on one database.

1. generate a seeded HomeNet-style CSV feed (fixtures/tools/make_feed.py), not timed;
2. forecourt end to end: `ingest.feed_job.run_job` on a new dealership (read, map, normalize,
   validate, VIN, dedup, quality, store with events, settle);
3. the baseline: the same CSV read with the csv module, each row typed just enough for
   binary COPY (ints, numerics, the image list split) and COPYed into a table identical to
   vehicles (`LIKE vehicles INCLUDING ALL`: columns, defaults, indexes and checks; plus its
   storage parameters and foreign key, which LIKE leaves out);
4. the same feed with 10% of rows re-priced, re-ingested by forecourt (the fast path skips
   the 90% unchanged rows).

Each timed phase starts after an untimed CHECKPOINT, so none pays for the dirty pages and
WAL the one before it left behind (the server's checkpoints would otherwise land in whichever
phase came next, the COPY after the first load's, the re-ingest after the COPY's).

Prints rows/s of each, forecourt's ratios to COPY, the process's peak RSS (sampled, and
getrusage's maximum), alone and with its stage worker processes, and each phase's CPU
seconds: this process, its stage workers, a local PostgreSQL's processes, the whole box.
Targets: first load >= 0.6x COPY, re-ingest >= 2x COPY, RSS < 500 MB.

    .venv/bin/python bench/bench_ingest.py [--rows 1000000] [--keep]
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "fixtures" / "tools"))

import make_feed  # noqa: E402
import psutil  # noqa: E402
import psycopg  # noqa: E402

from crawler.db import connect, migrate  # noqa: E402
from crawler.db import dealers as dealers_db  # noqa: E402
from crawler.db import jobs as jobs_db  # noqa: E402
from ingest import feed_job  # noqa: E402

COPY_COLUMNS = [("stock_number", "text"), ("condition", "text"), ("year", "int2"),
                ("make", "text"), ("model", "text"), ("trim", "text"), ("body_style", "text"),
                ("exterior_color", "text"), ("interior_color", "text"),
                ("transmission", "text"), ("drivetrain", "text"), ("fuel_type", "text"),
                ("engine", "text"), ("mileage", "int4"), ("price", "numeric"),
                ("msrp", "numeric"), ("vin", "text"), ("image_urls", "text[]"),
                ("description", "text"), ("dealership_id", "int8"), ("content_hash", "text")]


class PeakRSS:
    """Samples RSS every 50 ms: .peak of this process, .peak_all of it and its children
    (the feed's stage worker processes) together, in bytes."""

    def __init__(self):
        self.peak, self.peak_all, self._stop = 0, 0, threading.Event()
        self._proc = psutil.Process()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            own = self._proc.memory_info().rss
            children = 0
            for child in self._proc.children(recursive=True):
                try:
                    children += child.memory_info().rss
                except psutil.Error:
                    pass
            self.peak, self.peak_all = max(self.peak, own), max(self.peak_all, own + children)
            time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _postgres_cpu() -> float | None:
    """CPU seconds used so far by this machine's PostgreSQL processes (backends that exited
    are counted through their parent, the postmaster); None when none is visible (a remote
    server)."""
    total, found = 0.0, False
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] not in ("postgres", "postmaster"):
            continue
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
        found = True
    return total if found else None


def _busy(t) -> float:
    """CPU seconds the whole machine has spent working (not idle, waiting on I/O or stolen by
    a hypervisor; guest time is inside user time already)."""
    return t.user + t.nice + t.system + t.irq + t.softirq


class CpuSplit:
    """Where one phase's CPU went, in CPU seconds: .own (this process, its threads
    included), .workers (child processes that ended: the feed's stage workers), .postgres
    (a local server's processes, else None) and .box (the whole machine). On a 2-core box
    a phase cannot take less wall time than half its CPU."""

    def __enter__(self):
        self._start = (resource.getrusage(resource.RUSAGE_SELF),
                       resource.getrusage(resource.RUSAGE_CHILDREN), _postgres_cpu(),
                       psutil.cpu_times())
        return self

    def __exit__(self, *exc):
        own0, kids0, pg0, box0 = self._start
        own, kids = (resource.getrusage(resource.RUSAGE_SELF),
                     resource.getrusage(resource.RUSAGE_CHILDREN))
        pg, box = _postgres_cpu(), psutil.cpu_times()
        self.own = own.ru_utime + own.ru_stime - own0.ru_utime - own0.ru_stime
        self.workers = max(0.0, kids.ru_utime + kids.ru_stime - kids0.ru_utime - kids0.ru_stime)
        self.postgres = None if pg is None or pg0 is None else pg - pg0
        self.box = _busy(box) - _busy(box0)


def _int(s: str) -> int | None:
    s = s.replace(",", "").strip()
    return int(s) if s else None


def _num(s: str) -> Decimal | None:
    s = s.replace("$", "").replace(",", "").strip()
    return Decimal(s) if s else None


def identical_table(conn, name: str) -> None:
    """A new empty table identical to vehicles: LIKE ... INCLUDING ALL gives its columns,
    defaults, indexes and checks; its storage parameters (fillfactor) and foreign keys are
    added from the catalog, so every row is stored and checked as a vehicle is."""
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.execute(f"CREATE TABLE {name} (LIKE vehicles INCLUDING ALL)")
    options = conn.execute("SELECT reloptions FROM pg_class WHERE oid = 'vehicles'::regclass"
                           ).fetchone()["reloptions"]
    if options:
        conn.execute(f"ALTER TABLE {name} SET ({', '.join(options)})")
    for row in conn.execute("SELECT pg_get_constraintdef(oid) AS d FROM pg_constraint"
                            " WHERE conrelid = 'vehicles'::regclass AND contype = 'f'"
                            ).fetchall():
        conn.execute(f"ALTER TABLE {name} ADD {row['d']}")


def copy_baseline(conn, path: Path, dealership_id: int) -> float:
    identical_table(conn, "bench_copy")
    names = ", ".join(c for c, _ in COPY_COLUMNS)
    started = time.perf_counter()
    with path.open(newline="", encoding="utf-8") as f, conn.transaction():
        reader = csv.reader(f)
        next(reader)
        with conn.cursor().copy(f"COPY bench_copy ({names}) FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types([t for _, t in COPY_COLUMNS])
            for r in reader:
                cp.write_row((r[0], r[1].lower(), int(r[2]), *r[3:13], _int(r[13]),
                              _num(r[14]), _num(r[15]), r[16], r[17].split("|"), r[18],
                              dealership_id, ""))
    return time.perf_counter() - started


def checkpoint(conn) -> bool:
    """CHECKPOINT, untimed, before a timed phase; False where this role may not (PostgreSQL
    15 wants a superuser or pg_checkpoint)."""
    try:
        conn.execute("CHECKPOINT")
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


def forecourt_load(conn, dealership_id: int, path: Path) -> tuple[float, dict]:
    job, _ = jobs_db.create_or_get_active(conn, dealership_id, "feed", "operator")
    jobs_db.start(conn, job.id, "bench")
    started = time.perf_counter()
    job = feed_job.run_job(conn, job.id, path)
    elapsed = time.perf_counter() - started
    if job.state != "succeeded":
        raise SystemExit(f"forecourt run ended {job.state}: {job.error}")
    return elapsed, job.counters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--keep", action="store_true", help="keep the bench dealership's rows")
    args = ap.parse_args()
    n = args.rows
    tmp = Path(tempfile.mkdtemp(prefix="forecourt-bench-"))
    first, second = tmp / "feed.csv", tmp / "feed-next-day.csv"
    t = time.perf_counter()
    make_feed.write(first, n, seed=11)
    make_feed.write(second, n, seed=11, changed=0.10)
    print(f"generated 2 x {n:,} rows ({first.stat().st_size / 1e6:,.0f} MB each) "
          f"in {time.perf_counter() - t:.1f} s")
    conn = connect()
    migrate(conn)
    slug = f"bench-{os.getpid()}-{int(time.time())}"
    dealer = dealers_db.create(conn, slug=slug, name="Bench Motors")
    try:
        with PeakRSS() as rss:
            settled = checkpoint(conn)
            with CpuSplit() as cpu_first:
                t_first, c1 = forecourt_load(conn, dealer.id, first)
            checkpoint(conn)
            with CpuSplit() as cpu_copy:
                t_copy = copy_baseline(conn, first, dealer.id)
            # the baseline's table is not part of either measurement: it would only crowd
            # the re-ingest's tables out of the database's cache
            conn.execute("DROP TABLE bench_copy")
            checkpoint(conn)
            with CpuSplit() as cpu_again:
                t_again, c2 = forecourt_load(conn, dealer.id, second)
        if not settled:
            print("(no CHECKPOINT between phases: this role may not run one)")
        copy_rate, first_rate, again_rate = n / t_copy, n / t_first, n / t_again
        print(f"\n{'run':<34}{'seconds':>9}{'rows/s':>11}{'x COPY':>9}")
        print(f"{'binary COPY (baseline)':<34}{t_copy:>9.1f}{copy_rate:>11,.0f}{1:>9.2f}")
        print(f"{'forecourt first load':<34}{t_first:>9.1f}{first_rate:>11,.0f}"
              f"{first_rate / copy_rate:>9.2f}   target >= 0.6")
        print(f"{'forecourt re-ingest, 10% changed':<34}{t_again:>9.1f}{again_rate:>11,.0f}"
              f"{again_rate / copy_rate:>9.2f}   target >= 2")
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS {rss.peak / 2**20:,.0f} MB sampled, {maxrss:,.0f} MB max "
              f"(target < 500 MB); with the stage worker processes "
              f"{rss.peak_all / 2**20:,.0f} MB")
        print(f"\n{'CPU seconds':<34}{'this process':>13}{'workers':>9}{'PostgreSQL':>11}"
              f"{'whole box':>10}")
        for label, cpu in (("binary COPY (baseline)", cpu_copy),
                           ("forecourt first load", cpu_first),
                           ("forecourt re-ingest, 10% changed", cpu_again)):
            pg = "n/a" if cpu.postgres is None else f"{cpu.postgres:.1f}"
            print(f"{label:<34}{cpu.own:>13.1f}{cpu.workers:>9.1f}{pg:>11}{cpu.box:>10.1f}")
        print(f"first load: added {c1.get('added'):,}, rejected {c1.get('rejected'):,}; "
              f"re-ingest: unchanged {c2.get('unchanged'):,}, changed {c2.get('changed'):,}, "
              f"price_changed {c2.get('price_changed'):,}")
    finally:
        if not args.keep:
            conn.execute("DELETE FROM dealerships WHERE id = %s", (dealer.id,))
            # leave no dead rows behind: with autovacuum off (as on some servers) they
            # would slow every later run of this bench on the same database
            conn.execute("VACUUM vehicles, vehicle_events, rejects")
        conn.execute("DROP TABLE IF EXISTS bench_copy")
        for p in (first, second):
            p.unlink(missing_ok=True)
        tmp.rmdir()


if __name__ == "__main__":
    main()
