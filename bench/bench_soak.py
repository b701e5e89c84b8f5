"""Soak: the 200-dealer workload on real workers for several minutes while workers are killed.

Generates (seeded, at run time, into a scratch directory) one fixture website per crawl
dealership (bench/bench_jobs.py's generator: schema.org listing pages on 127.0.0.1) and one
HomeNet-style CSV feed per feed dealership (fixtures/tools/make_feed.py), then:

  - starts --workers separate `forecourt worker` process groups;
  - keeps every dealership busy until --minutes have passed: whenever a dealer has no
    queued or running job, a new one is triggered (as the scheduler would);
  - every --kill-every seconds (randomised) SIGKILLs one worker group at random, its crawl
    children included, and starts a replacement, as an orchestrator would;
  - with --stall-every, now and then SIGSTOPs one worker group for --stall-s seconds (past
    the soak's 4 s stale limit) and resumes it: a starved or paused worker whose crawl
    child, in a session of its own, runs on;
  - samples the resident memory of every worker process (and, separately, of crawl
    children) once a second;
  - stops triggering, waits for every job to end, and checks the database.

Prints jobs completed (by state), jobs lost (triggered but never ended: must be 0),
duplicate vehicles and duplicate "added" events per (dealer, VIN) (must be 0), dealers whose
last successful run left the wrong number of active vehicles (must be 0), and peak memory
per worker process. Exit status 1 when any must-be-zero figure is not.

It also checks what the job layer's own machinery could get wrong under kills (must be 0):
  - flaky sites (--flaky-share of them answer 503 at random): their failed attempts are
    retried, or their retries refused for a newer job (settled 'superseded'); a superseded
    job whose dealer has no newer job, a dead letter of a site that is not flaky (unless
    every one of its attempts died with a worker the soak killed), a failure still
    undecided (awaiting a retry nobody sends) after the drain;
  - a crawl run twice at once (two live crawl children of one job, each a worker's), and a
    crawl child that outlived its killed worker (found among all processes by the soak's
    Redis namespace in its environment);
  - a queued job whose message was not sent UNSENT_AFTER_S (+ two reaper passes) after its
    record changed (the reaper never sent it), and a message re-sent under the same id
    sooner than half of job_resend_after_s after its last send (re-sent every pass);
  - ERROR lines and tracebacks in the worker logs, messages in Dramatiq's dead letters.

A mixed fleet (--without-chromium N of the --workers have no Chromium: their
FORECOURT_CHROMIUM_PATH is a file they may not execute, as on a machine without it; a
killed worker is replaced by one of its kind, so one with Chromium is always alive) and
--javascript dealers whose sites render every listing page (the `javascript` fixture site,
platform `javascript`): their crawls go to the render queues (jobs/queues.py). Checked
(must be 0): a rendered crawl not ended, or still waiting on a render queue, after the
drain; one failed for want of Chromium (a worker with Chromium lived throughout); one
handed on for want of Chromium more than outcome.MAX_CHROMIUM_HANDOFFS times. Hand-offs
(a worker without Chromium met the crawl: a take-over of an interrupted one) are counted.

The kills cost time, not correctness: jobs per minute is printed for scale.

Run: .venv/bin/python bench/bench_soak.py [--dealers 200] [--vehicles 100] [--minutes 4]
     [--feed-share 0.25] [--flaky-share 0.1] [--workers 3] [--threads 2] [--kill-every 20]
     [--without-chromium 0] [--javascript 0] [--stall-every 0] [--stall-s 6] [--seed 7]
     [--keep]
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

JS_VEHICLES = 5  # on the fixture JavaScript site (its two pages: fixtures/sites/javascript/api)
FLAKY_SLUGS: list[str] = []  # sites whose listing page answers 503 at random
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
    # INFO: Dramatiq's "ready for action" line, which the soak waits for, is an INFO record
    # that forecourt's handler (adopted in each worker process) drops at WARNING
    "FORECOURT_LOG_LEVEL": "INFO",
}


def _ppid(p) -> int | None:
    import psutil

    try:
        return p.ppid()
    except psutil.Error:
        return None


class Workers:
    """Worker process groups that can be killed and replaced; memory sampled per process."""

    def __init__(self, n: int, threads: int, logs: Path, without_chromium: int = 0):
        self.threads, self.logs = threads, logs
        self.procs: list[subprocess.Popen] = []
        # the first `without_chromium` slots have no Chromium (a replacement keeps its kind):
        # their FORECOURT_CHROMIUM_PATH is a file they may not execute
        self.renders = [i >= without_chromium for i in range(n)]
        self.fake_chromium = logs / "no-chromium"
        self.fake_chromium.write_text("#!/bin/sh\n")
        self.fake_chromium.chmod(0o644)
        self.started = 0
        self.kills = 0
        self.stalls = 0
        self.killed: set[int] = set()  # pids of the processes of the killed worker groups
        self.peak_worker: dict[int, int] = {}  # pid -> peak RSS bytes (worker processes)
        self.peak_child = 0  # largest crawl child seen
        self.twice: set[int] = set()  # jobs seen with two live crawl children at once
        self.twice_seen: list[str] = []  # what each of those looked like, for the report
        self.orphaned: set[int] = set()  # jobs with a crawl child no live worker holds
        self._orphans_before: set[int] = set()
        self._stop = threading.Event()
        for i in range(n):
            self.procs.append(self._start(self.renders[i]))
        threading.Thread(target=self._sample, daemon=True).start()

    def _start(self, renders: bool = True) -> subprocess.Popen:
        self.started += 1
        log = open(self.logs / f"worker-{self.started}.log", "ab")
        env = dict(os.environ)
        if not renders:
            env["FORECOURT_CHROMIUM_PATH"] = str(self.fake_chromium)
        return subprocess.Popen(
            [sys.executable, "-c", "import sys; from crawler.cli import main; sys.exit(main())",
             "worker", "--processes", "1", "--threads", str(self.threads)],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT),
            start_new_session=True)

    def kill_one(self, rng: random.Random) -> None:
        import psutil

        i = rng.randrange(len(self.procs))
        victim = self.procs[i]
        try:  # its worker processes, whose jobs' attempts it interrupts
            self.killed |= {p.pid for p in psutil.Process(victim.pid).children(recursive=True)}
        except psutil.Error:
            pass
        try:
            os.killpg(victim.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        victim.wait()
        self.kills += 1
        self.procs[i] = self._start(self.renders[i])

    def stall_one(self, rng: random.Random, seconds: float) -> None:
        """SIGSTOP one worker group (its crawl children, in sessions of their own, run on)
        for `seconds`, as a starved or paused machine would, then SIGCONT it."""
        victim = self.procs[rng.randrange(len(self.procs))]
        try:
            os.killpg(victim.pid, signal.SIGSTOP)
        except ProcessLookupError:
            return
        self.stalls += 1

        def resume() -> None:
            try:
                os.killpg(victim.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

        threading.Timer(seconds, resume).start()

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(1.0):
            running: dict[int, list] = {}  # job id -> its live crawl children
            for proc in list(self.procs):
                try:
                    family = [psutil.Process(proc.pid),
                              *psutil.Process(proc.pid).children(recursive=True)]
                except psutil.Error:
                    continue
                for p in family:
                    try:
                        rss = p.memory_info().rss
                        cmd = p.cmdline()
                        crawl = "crawler.crawl_process" in cmd
                        if crawl and p.status() == psutil.STATUS_ZOMBIE:
                            continue
                    except psutil.Error:
                        continue
                    if crawl:
                        self.peak_child = max(self.peak_child, rss)
                        job = int(cmd[cmd.index("crawler.crawl_process") + 1])
                        running.setdefault(job, []).append((proc.pid, p))
                    else:
                        self.peak_worker[p.pid] = max(self.peak_worker.get(p.pid, 0), rss)
            # and crawl children no worker holds any more: a killed worker's crawl child
            # lives on, writing, if PDEATHSIG failed it (group 0: no worker)
            held = {p.pid for children in running.values() for _, p in children}
            orphans = {p.pid: p for p in self._orphans(held)}
            # (one killed with its worker a moment ago is not gone yet: seen twice in a row)
            for pid in set(orphans) & self._orphans_before:
                p = orphans[pid]
                try:
                    cmd = p.cmdline()
                    running.setdefault(int(cmd[cmd.index("crawler.crawl_process") + 1]),
                                       []).append((0, p))
                except (psutil.Error, ValueError, IndexError):
                    continue
            for job, children in running.items():
                # a crawl child's own child not yet past its exec (the Playwright driver
                # starting, say, or `uname -p`) has its command line: it is no second crawl
                # (one gone by now, its parent unreadable, was no crawl either: such a fork)
                pids = {p.pid for _, p in children}
                children[:] = [(g, p) for g, p in children
                               if _ppid(p) is not None and _ppid(p) not in pids]
                if len(children) > 1:
                    self.twice.add(job)
                    self._describe_twice(job, children)
                if any(g == 0 for g, _ in children):
                    self.orphaned.add(job)
            self._orphans_before = set(orphans)

    def _orphans(self, held: set[int]) -> list:
        """Live crawl processes of this soak (its Redis namespace) outside every worker."""
        import psutil

        mine = os.environ["FORECOURT_REDIS_NAMESPACE"]
        found = []
        for p in psutil.process_iter(["cmdline"]):
            try:
                if p.pid in held or "crawler.crawl_process" not in (p.info["cmdline"] or ()):
                    continue
                if p.status() != psutil.STATUS_ZOMBIE and \
                        p.environ().get("FORECOURT_REDIS_NAMESPACE") == mine:
                    found.append(p)
            except psutil.Error:
                continue
        return found

    def _describe_twice(self, job: int, children: list) -> None:
        """One line per sighting of a job's two live crawl children: each one's worker
        group, pid, age and status, and the job's record as it is now (who holds it)."""
        import psutil

        now = time.time()
        seen = []
        for group, p in children:
            try:
                seen.append(f"worker {group} (process {p.ppid()}) child {p.pid} "
                            f"{now - p.create_time():.1f}s old {p.status()}")
            except psutil.Error:
                seen.append(f"worker {group} child {p.pid} gone")
        try:
            from crawler.db import connect

            with connect() as conn:
                row = conn.execute(
                    "SELECT state, worker, attempts, error_kind, extract(epoch FROM"
                    " now() - heartbeat_at)::float AS beat_age FROM jobs WHERE id = %s",
                    (job,)).fetchone()
            record = (f"job {row['state']} attempt {row['attempts']} by {row['worker']}, "
                      f"beat {row['beat_age']:.1f}s ago, error_kind {row['error_kind']}")
        except Exception as exc:  # noqa: BLE001 - a description only
            record = f"job record unread: {exc}"
        self.twice_seen.append(f"job {job} at {time.strftime('%H:%M:%S')}: "
                               f"{'; '.join(seen)}; {record}")

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


class Sends:
    """The sends of queued jobs' messages, sampled from their records once a second:
    messages the reaper left unsent too long, and same-id re-sends that came too soon.

    A message being sent shows unsent for the moment of its send (queue_db.set_message, then
    the send, then mark_sent), and a reaper's same-id re-send keeps the record's updated_at:
    one sighting of an old record unsent is that moment; unsent still after a send's
    longest (jobs.broker.REDIS_TIMEOUT_S), the message was left unsent."""

    def __init__(self, unsent_after_s: float, resend_after_s: float):
        from jobs.broker import REDIS_TIMEOUT_S

        self.unsent_after_s, self.resend_after_s = unsent_after_s, resend_after_s
        self.send_s = REDIS_TIMEOUT_S + 1.0
        self.sent: dict[tuple[int, str], set] = {}  # (job, message id) -> its send times
        self.unsent_since: dict[tuple[int, str], float] = {}  # first seen late, in a row
        self.unsent_late: set[int] = set()

    def sample(self, conn) -> None:
        late_now = set()
        for row in conn.execute(
                "SELECT id, message_id, message_sent_at, message_sent_at IS NULL AND"
                " updated_at < now() - make_interval(secs => %s) AS late FROM jobs"
                " WHERE state = 'queued'", (self.unsent_after_s,)):
            if row["late"]:
                key = (row["id"], row["message_id"])
                late_now.add(key)
                since = self.unsent_since.setdefault(key, time.monotonic())
                if time.monotonic() - since > self.send_s:
                    self.unsent_late.add(row["id"])
            elif row["message_sent_at"] is not None:
                self.sent.setdefault((row["id"], row["message_id"]), set()).add(
                    row["message_sent_at"])
        self.unsent_since = {k: v for k, v in self.unsent_since.items() if k in late_now}

    def resends(self) -> tuple[int, list[str]]:
        """(same-id re-sends seen, those sooner than half job_resend_after_s after the last:
        the job and the two sends' times)"""
        total, soon = 0, []
        for (job, _), times in sorted(self.sent.items()):
            ordered = sorted(times)
            total += len(ordered) - 1
            soon += [f"job {job} sent {a:%H:%M:%S.%f} and {b:%H:%M:%S.%f}"
                     for a, b in zip(ordered, ordered[1:], strict=False)
                     if (b - a).total_seconds() < self.resend_after_s / 2]
        return total, soon


def flaky_handler(sites: Path, slugs: list[str], p: float) -> None:
    """A handler.py for the fixture server: these sites' listing pages answer 503 at random
    (with Scrapy's own retries, an attempt fails now and then: retried, or superseded)."""
    (sites / "handler.py").write_text(
        "import random\n"
        f"FLAKY = {sorted(slugs)!r}\n"
        "def handle(request):\n"
        "    slug = request.path.strip('/').split('/')[0]\n"
        f"    if slug in FLAKY and request.path.endswith('/inventory/')"
        f" and random.random() < {p}:\n"
        "        return 503, 'text/plain', b'flaky'\n"
        "    return None\n")


def undecided(conn, triggered: list[int], newest: bool = True) -> list[int]:
    """Failed jobs still awaiting their worker's decision (a retry, a burial...): the
    dealers' newest (which a worker or the reaper must decide), or (newest=False) those
    behind a newer job of their dealer (left so for good: no reaper looks at them)."""
    from crawler.models import Job
    from jobs import outcome

    rows = conn.execute(
        "SELECT * FROM jobs j WHERE id = ANY(%s) AND state = 'failed' AND"
        " EXISTS (SELECT 1 FROM jobs k WHERE k.dealership_id = j.dealership_id"
        " AND k.id > j.id) <> %s", (triggered, newest)).fetchall()
    return [r["id"] for r in rows if outcome.undecided(Job.model_validate(r))]


def log_problems(logs: Path) -> tuple[int, dict[str, int]]:
    """ERROR/CRITICAL lines and tracebacks in the worker logs; warnings by their shape."""
    import re

    bad, shapes = 0, {}
    for path in logs.glob("worker-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if "Traceback" in line or re.search(r"\b(ERROR|CRITICAL)\b[:\]]", line):
                bad += 1
                if bad <= 5:
                    print(f"  {path.name}: {line[:200]}", flush=True)
            elif "WARNING" in line:
                shape = re.sub(r"\d+", "N", line.split("WARNING", 1)[1].split(" [job_id")[0])
                shapes[shape[:90]] = shapes.get(shape[:90], 0) + 1
    return bad, shapes


def redis_dead_letters() -> int:
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        ns = os.environ["FORECOURT_REDIS_NAMESPACE"]
        return sum(client.zcard(k) for k in client.scan_iter(match=f"{ns}:*.XQ"))
    finally:
        client.close()


def _pid(worker: str | None) -> int | None:
    """The process id in a worker's name (host:pid:thread)."""
    try:
        return int((worker or "").split(":")[1])
    except (IndexError, ValueError):
        return None


def check(conn, triggered: list[int], expected: dict[int, int],
          killed: set[int] = frozenset()) -> dict:
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
    superseded = conn.execute(
        "SELECT count(*) AS n, count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM jobs k"
        " WHERE k.dealership_id = j.dealership_id AND k.id > j.id)) AS orphan"
        " FROM jobs j WHERE id = ANY(%s) AND error_kind = 'superseded'",
        (triggered,)).fetchone()
    dead_rows = conn.execute(
        "SELECT j.errors, d.slug = ANY(%s::text[]) AS flaky FROM jobs j JOIN dealerships d"
        " ON d.id = j.dealership_id WHERE j.id = ANY(%s) AND j.state = 'dead'",
        (FLAKY_SLUGS, triggered)).fetchall()
    # a job whose every attempt died with a worker the soak killed was buried as it must be
    killed_only = [all(e.get("kind") == "abandoned" and _pid(e.get("worker")) in killed
                       for e in r["errors"]) for r in dead_rows]
    dead = {"n": len(dead_rows), "killed": sum(killed_only),
            "unexpected": sum(not r["flaky"] and not k
                              for r, k in zip(dead_rows, killed_only, strict=True))}
    # an attempt settled abandoned (taken over, reaped) whose worker the soak did not kill:
    # it lived, but its heartbeat went stale (a starved worker): its crawl and the next
    # attempt's may have overlapped until its watch saw the job taken
    live_taken = [r["id"] for r in conn.execute(
        "SELECT id, errors FROM jobs WHERE id = ANY(%s)", (triggered,))
        if any(e.get("kind") == "abandoned" and _pid(e.get("worker")) not in killed
               for e in r["errors"])]
    return {"live_taken": live_taken, "superseded": superseded["n"],
            "superseded_orphan": superseded["orphan"],
            "dead": dead["n"], "dead_unexpected": dead["unexpected"],
            "dead_killed": dead["killed"],
            "undecided": len(undecided(conn, triggered)),
            "left_undecided": undecided(conn, triggered, newest=False),
            "states": states, "completed": sum(v for k, v in states.items() if k in FINAL),
            "lost": lost + missing, "dup_vehicles": dup_vehicles, "dup_added": dup_added,
            "wrong_inventory": wrong, "retried": attempts["retried"],
            "max_attempts": attempts["m"]}


def check_rendered(conn, triggered: list[int], js_ids: list[int]) -> dict:
    """The rendered crawls (of the javascript dealers) and every crawl's hand-offs for want
    of Chromium (an attempt that failed on a worker without it: jobs.outcome.NO_CHROMIUM)."""
    from crawler.models import Job
    from jobs import outcome, queues

    rows = [Job.model_validate(r) for r in conn.execute(
        "SELECT * FROM jobs WHERE id = ANY(%s) AND kind = 'crawl'", (triggered,))]
    rendered = [j for j in rows if j.dealership_id in set(js_ids)]
    handoffs = {j.id: outcome.chromium_handoffs(j) for j in rows if outcome.chromium_handoffs(j)}
    return {
        "rendered": len(rendered),
        "rendered_states": dict(sorted(
            {s: sum(j.state == s for j in rendered) for s in {j.state for j in rendered}}
            .items())),
        "rendered_unended": [j.id for j in rendered if j.state not in FINAL],
        "on_render_queue": [j.id for j in rows if (queues.waits_on(j) or "").endswith(".render")],
        "chromium_failed": [j.id for j in rows if j.state in ("failed", "dead")
                            and "chromium" in (j.error or "").lower()],
        "handed_on": len(handoffs), "max_handoffs": max(handoffs.values(), default=0),
        "handed_on_again": sorted(i for i, n in handoffs.items() if n > 1),
        "over_limit": sorted(i for i, n in handoffs.items()
                             if n > outcome.MAX_CHROMIUM_HANDOFFS),
    }


def _forget_namespace() -> None:
    """Delete the soak's Redis keys (its namespace)."""
    import redis

    if not os.environ.get("REDIS_URL"):
        return
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        keys = list(client.scan_iter(match=f"{os.environ['FORECOURT_REDIS_NAMESPACE']}:*",
                                     count=1000))
        if keys:
            client.delete(*keys)
    except redis.RedisError as exc:
        print(f"could not delete the soak's Redis keys: {exc}", flush=True)
    finally:
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dealers", type=int, default=200)
    parser.add_argument("--vehicles", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--feed-share", type=float, default=0.25)
    parser.add_argument("--flaky-share", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kill-every", type=float, default=20.0)
    parser.add_argument("--stall-every", type=float, default=0.0, metavar="S",
                        help="every ~S seconds SIGSTOP a worker group for --stall-s (0: never)")
    parser.add_argument("--stall-s", type=float, default=6.0)
    parser.add_argument("--without-chromium", type=int, default=0, metavar="N",
                        help="of the workers, N have no Chromium (a mixed fleet)")
    parser.add_argument("--javascript", type=int, default=0, metavar="N",
                        help="N more dealers whose sites render every listing page")
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true",
                        help="keep the scratch database and directory (logs) to look into")
    args = parser.parse_args()
    if args.javascript and args.without_chromium >= args.workers:
        parser.error("--javascript needs a worker with Chromium: --without-chromium must be "
                     "below --workers")
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
    workers = server = js_server = None
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
        FLAKY_SLUGS[:] = rng.sample(crawl_slugs, int(len(crawl_slugs) * args.flaky_share))
        flaky_handler(scratch / "sites", FLAKY_SLUGS, 0.7)
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
        js_ids: list[int] = []
        if args.javascript:  # the fixture JavaScript site (its pages are root-absolute)
            js_server = fixture_server.serve("javascript", 0)
            js_base = fixture_server.base_url(js_server)
            for i in range(args.javascript):
                js_ids.append(dealers_db.create(
                    conn, slug=f"soak-js-{i:04d}", name=f"soak-js-{i:04d}",
                    platform="javascript", website_url=f"{js_base}/inventory/").id)
                expected[js_ids[-1]] = JS_VEHICLES
        dealer_ids = list(expected)

        logs = scratch / "logs"
        logs.mkdir()
        workers = Workers(args.workers, args.threads, logs, args.without_chromium)
        deadline = time.monotonic() + 120
        while sum(b"ready for action" in p.read_bytes() for p in logs.iterdir()) < args.workers:
            if time.monotonic() > deadline:
                raise SystemExit("workers did not start")
            time.sleep(0.2)
        from crawler.config import get_settings
        from jobs import queues, reaper, renderers, service

        while args.javascript and not renderers.alive(queues.SCHEDULED_RENDER):
            if time.monotonic() > deadline:  # (a JavaScript crawl sent before would fail)
                raise SystemExit("no worker with Chromium advertised the render queues")
            time.sleep(0.2)

        settings = get_settings()  # a worker reaps every max(5 s, reap_after / 4), 2 passes:
        sends = Sends(reaper.UNSENT_AFTER_S + 2 * max(5.0, settings.job_reap_after_s / 4),
                      settings.job_resend_after_s)
        triggered: list[int] = []
        started = time.monotonic()
        end = started + args.minutes * 60
        next_kill = started + rng.uniform(0.5, 1.5) * args.kill_every
        next_stall = started + rng.uniform(0.5, 1.5) * args.stall_every if args.stall_every \
            else float("inf")
        print(f"soaking for {args.minutes:g} min: {args.workers} workers x {args.threads} "
              f"threads, a kill every ~{args.kill_every:g} s", flush=True)
        while time.monotonic() < end:
            keep_busy(conn, service, dealer_ids, triggered)
            sends.sample(conn)
            if time.monotonic() >= next_stall:
                workers.stall_one(rng, args.stall_s)
                next_stall = time.monotonic() + rng.uniform(0.5, 1.5) * args.stall_every
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
                " ('queued','running')", (triggered,)).fetchone()["n"] + \
                len(undecided(conn, triggered)):  # a failure awaiting its retry is not over
            if time.monotonic() - drain > args.drain_timeout:
                break
            sends.sample(conn)
            time.sleep(1.0)
        if unfinished:
            print(f"drain timed out after {args.drain_timeout:.0f} s with {unfinished} jobs"
                  " still queued or running: the figures below are not a verdict", flush=True)
        result = check(conn, triggered, expected, workers.killed)
        rendered = check_rendered(conn, triggered, js_ids)
        log_errors, warnings = log_problems(logs)
        resent, resent_soon = sends.resends()
        xq = redis_dead_letters()
        vehicles = conn.execute("SELECT count(*) AS n FROM vehicles").fetchone()["n"]
        peak = sorted(workers.peak_worker.values(), reverse=True)
        mb = 1024 * 1024
        print()
        print(f"machine: {os.cpu_count()} cores; {args.dealers} dealers ({len(crawl_slugs)} "
              f"sites, {len(feed_slugs)} feeds) x {args.vehicles} vehicles; {args.workers} "
              f"workers x {args.threads} threads; {workers.kills} kills in {soak_s:.0f} s"
              + (f"; {workers.stalls} stalls of {args.stall_s:g} s" if workers.stalls else ""))
        print(f"mixed fleet:           {args.without_chromium} of {args.workers} workers "
              f"without Chromium; {len(js_ids)} JavaScript dealers")
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
        print(f"flaky sites:           {len(FLAKY_SLUGS)}; dead letters {result['dead']} (every "
              f"attempt killed {result['dead_killed']}), else of sites not flaky "
              f"{result['dead_unexpected']}  (must be 0)")
        print(f"superseded retries:    {result['superseded']}, with no newer job "
              f"{result['superseded_orphan']}  (must be 0)")
        print(f"undecided failures:    {result['undecided']}, behind a newer job "
              f"{len(result['left_undecided'])}  (must be 0) {result['left_undecided'][:10]}")
        print(f"crawls run twice at once: {len(workers.twice)}  (must be 0) "
              f"{sorted(workers.twice)[:10]}")
        for line in workers.twice_seen[:10]:
            print(f"  {line}")
        print(f"taken from a live worker: {len(result['live_taken'])} jobs (its heartbeat went "
              f"stale: starved?) {result['live_taken'][:10]}")
        print(f"crawls outliving their worker: {len(workers.orphaned)}  (must be 0) "
              f"{sorted(workers.orphaned)[:10]}")
        print(f"rendered crawls:       {rendered['rendered']} {rendered['rendered_states']}")
        print(f"rendered not ended:    {len(rendered['rendered_unended'])}, left on a render "
              f"queue {len(rendered['on_render_queue'])}  (must be 0) "
              f"{(rendered['rendered_unended'] + rendered['on_render_queue'])[:10]}")
        print(f"failed for Chromium:   {len(rendered['chromium_failed'])}  (must be 0) "
              f"{rendered['chromium_failed'][:10]}")
        print(f"handed on (Chromium):  {rendered['handed_on']} jobs, max "
              f"{rendered['max_handoffs']} times; more than once "
              f"{len(rendered['handed_on_again'])} {rendered['handed_on_again'][:10]}; over "
              f"the limit {len(rendered['over_limit'])}  (must be 0)")
        print(f"messages left unsent:  {len(sends.unsent_late)}  (must be 0) "
              f"{sorted(sends.unsent_late)[:10]}")
        print(f"same-id re-sends:      {resent}, too soon {len(resent_soon)}  (must be 0)")
        for line in resent_soon[:10]:
            print(f"  {line}")
        print(f"Dramatiq dead letters: {xq}  (must be 0)")
        print(f"worker log errors:     {log_errors}  (must be 0)")
        for shape, n in sorted(warnings.items(), key=lambda kv: -kv[1])[:8]:
            print(f"  {n:5d} x WARNING{shape}")
        print(f"peak RSS per worker process: max {peak[0] / mb:.0f} MB, median "
              f"{peak[len(peak) // 2] / mb:.0f} MB over {len(peak)} processes; "
              f"largest crawl child {workers.peak_child / mb:.0f} MB" if peak else "no samples")
        bad = result["lost"] + result["dup_vehicles"] + result["dup_added"] + \
            result["wrong_inventory"] + result["dead_unexpected"] + \
            result["superseded_orphan"] + result["undecided"] + \
            len(result["left_undecided"]) + len(workers.twice) + len(sends.unsent_late) + \
            len(resent_soon) + xq + log_errors + len(workers.orphaned) + \
            len(rendered["rendered_unended"]) + \
            len(rendered["on_render_queue"]) + len(rendered["chromium_failed"]) + \
            len(rendered["over_limit"])
        status = 2 if unfinished else (0 if bad == 0 else 1)
    finally:
        if workers is not None:
            workers.stop()
        for serving in (server, js_server):
            if serving is not None:
                serving.shutdown()
                serving.server_close()
        if args.keep:
            print(f"kept: scratch {scratch}, database {db_name or '(embedded)'}, Redis "
                  f"namespace {os.environ['FORECOURT_REDIS_NAMESPACE']}", flush=True)
        if db_name and not args.keep:
            import psycopg

            with psycopg.connect(base_db, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        if not args.keep:
            _forget_namespace()
        if not db_name:  # embedded servers stop, kept or not (their data stays when kept)
            from crawler import embedded

            embedded.stop(scratch / "data")
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
