"""The scheduler: enqueues each dealership's job when its schedule says so.

Each dealership has a cron expression in its own timezone (`schedule_cron`, `schedule_tz`) or
an interval (`schedule_interval_s`); a cron line at fixed times runs once on a daylight-saving
night (see next_slot). An interval's slots are fixed times: the dealership's own phase (an
offset from its id, see phase) plus whole intervals, so dealers sharing an interval are
spread over it, evenly for dealers added together, and each keeps its own time for good:
after an outage, a retry, a backoff or a pause, and over weeks (no run's lateness carries
into the next). After each run the next slot is the first one after *now*, so slots missed
while no scheduler ran (or Redis was away) are run once, not once per missed slot. A cron
slot gets random jitter (`schedule_jitter_s`) so dealers sharing a cron line do not start at
once; interval slots need none.
A paused dealership is skipped, also when the pause lands during a tick: the slot is claimed
and its job recorded in one transaction that re-checks the pause under the dealership's row
lock (schedules.claim), so a pause (or `dealers remove`) committed first wins, and one
committed after finds the job and cancels it. After two or more failures in a row the next
run is pushed back exponentially (capped at `schedule_backoff_max_s`), and a success resets
it: a job that succeeds after a failing scheduled run (an operator fixed the dealer and ran it
by hand) brings the next run back to the schedule's next slot.

High availability: any number of `forecourt scheduler` processes may run. Each tries to take
a PostgreSQL session advisory lock; the one holding it leads and enqueues, the others wait
and take over within a tick of the leader's connection closing (process death). A leader that
is alive to the network but not running (stopped, stuck outside the database, its VM paused)
keeps its connection open: the leader queries every tick, so a standby that finds the lock's
session idle and silent for `scheduler_leader_stale_s` ends that session and leads; the old
leader, when it runs again, finds its connection gone and stands by. A leader whose machine
vanished (power, network) is dropped by the server's TCP keepalive, which every forecourt
session sets to about a minute (crawler.db.connect.KEEPALIVE). Moving a dealership's next run is
also a compare-and-set, so even two leaders could not both enqueue one slot; and triggering
goes through jobs.service, which allows one active job per dealership.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
from croniter import CroniterError, croniter
from redis.exceptions import RedisError

from crawler import logging as fc_logging
from crawler.config import get_settings
from crawler.db import connect
from crawler.db import schedules as schedules_db
from crawler.errors import ForecourtError, InvalidInput, Transient, one_line
from crawler.models import Dealership
from jobs import reaper, service

log = logging.getLogger("forecourt.scheduler")

# An interval schedule runs at most once a minute (a tick is seconds; a crawl takes minutes)
# and at least once a year (a huge one overflowed the integer column: a psycopg traceback).
MIN_INTERVAL_S = 60
MAX_INTERVAL_S = 366 * 86_400
# A slot whose job could not be queued (Redis away) is tried again this much later.
ENQUEUE_RETRY_S = 60


def validate(cron: str | None, tz: str, interval_s: int | None = None) -> None:
    """Raise InvalidInput unless the schedule can be computed."""
    if cron is None and interval_s is None:
        raise InvalidInput("a schedule needs a cron expression or an interval")
    if interval_s is not None and not MIN_INTERVAL_S <= interval_s <= MAX_INTERVAL_S:
        raise InvalidInput(f"interval {interval_s:,} s is "
                           + ("shorter than a minute" if interval_s < MIN_INTERVAL_S
                              else "longer than 366 days"),
                           hint="give 1m to 366d, e.g. 30m or 6h")
    if cron is not None and not croniter.is_valid(cron):
        raise InvalidInput(f"not a cron expression: {cron!r}",
                           hint="five fields, e.g. '0 6 * * *' for 06:00 daily")
    try:
        zone = ZoneInfo(tz)
    except Exception as exc:  # ZoneInfoNotFoundError, ValueError
        raise InvalidInput(f"unknown timezone {tz!r}",
                           hint="an IANA name such as 'America/Chicago'") from exc
    if cron is not None:
        try:  # a valid line may still never fire ('0 0 30 2 *': February 30th)
            croniter(cron, datetime.now(zone)).get_next(datetime)
        except CroniterError as exc:
            raise InvalidInput(f"cron expression {cron!r} never fires",
                               hint="check the day and month fields") from exc


def next_slot(dealer: Dealership, after: datetime) -> datetime:
    """The dealership's first scheduled time strictly after `after` (aware, in UTC).

    Cron lines are read in the dealership's timezone and, like cron's, a line at fixed times
    runs once on a daylight-saving night: a time skipped by the clock going forward runs just
    after the gap, and a time the clock passes twice going back runs the first time only. A
    line with '*' in its minute or hour field runs by the clock, in both passes."""
    if dealer.schedule_cron:
        utc = ZoneInfo("UTC")
        zone = ZoneInfo(dealer.schedule_tz or "UTC")
        slot = after.astimezone(zone)
        for _ in range(3):  # at most one repeat to step over
            slot = croniter(dealer.schedule_cron, slot).get_next(datetime)
            if _by_the_clock(dealer.schedule_cron) or not _repeated(slot, zone):
                break
        return slot.astimezone(utc)
    interval = timedelta(seconds=int(dealer.schedule_interval_s or 3600))
    base = _EPOCH + phase(dealer.id or 0, interval)
    return base + ((after - base) // interval + 1) * interval


_EPOCH = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))
_GOLDEN = (5 ** 0.5 - 1) / 2  # 0.618...: successive multiples mod 1 spread the most evenly


def phase(dealership_id: int, interval: timedelta) -> timedelta:
    """Where in each interval the dealership's slots fall: a fixed offset from its id (the
    fractional part of id x 0.618..., in whole seconds), so dealers sharing an interval are
    spread over it, evenly for ids added in a row (an import), and each keeps its own time
    whatever happened before: an outage, a retry, a backoff, a pause."""
    return timedelta(seconds=int((dealership_id * _GOLDEN) % 1.0 * interval.total_seconds()))


def _by_the_clock(cron: str) -> bool:
    """Whether a cron line's minute or hour is a wildcard ('*', '*/15'; '@hourly')."""
    line = cron.strip().lower()
    if line.startswith("@"):
        return line == "@hourly"
    minute, hour = line.split()[:2]
    return minute.startswith("*") or hour.startswith("*")


def _repeated(slot: datetime, zone: ZoneInfo) -> bool:
    """Whether the local wall time of `slot` already happened earlier (the second pass of the
    hour the clock goes back)."""
    first = slot.replace(tzinfo=None).replace(tzinfo=zone, fold=0)
    return first.astimezone(ZoneInfo("UTC")) != slot.astimezone(ZoneInfo("UTC"))


def backoff_s(failures: int) -> float:
    """How far to push the next run back after `failures` failures in a row."""
    if failures < 2:
        return 0.0
    return min(get_settings().schedule_backoff_max_s, 300.0 * 2 ** (failures - 2))


def upcoming_run(dealer: Dealership, due: datetime | None, now: datetime, failures: int,
                 jitter_s: float) -> datetime:
    """When the dealership runs next, once the tick at `now` runs its slot due at `due`
    after `failures` failures in a row (due None: a new, changed or resumed schedule, whose
    first run is its next slot): the schedule's first slot after now, so slots missed
    meanwhile are not run. `jitter_s` (this slot's random jitter) is added to a cron slot;
    an interval's slots are already spread by their phase and are never jittered, so nothing
    carries one run's lateness into the next."""
    jitter = timedelta(seconds=jitter_s if dealer.schedule_cron else 0.0)
    slot = next_slot(dealer, now)
    if due is None:
        return slot + jitter
    return max(slot, now + timedelta(seconds=backoff_s(failures))) + jitter


def enqueue_retry_at(upcoming: datetime, now: datetime, failures: int,
                     jitter_s: float) -> datetime:
    """When to try again a slot whose job could not be queued (Redis away), instead of at
    the next run `upcoming`: in a minute, or after the failure backoff."""
    return min(upcoming, now + timedelta(
        seconds=max(ENQUEUE_RETRY_S, backoff_s(failures + 1)) + jitter_s))


def job_kind(dealer: Dealership) -> str:
    return dealer.settings.get("schedule_kind") or ("crawl" if dealer.website_url else "feed")


def queue_down() -> str | None:
    """Why Redis cannot take a message now, else None (a ping through the broker's client)."""
    from jobs.broker import get_broker

    try:
        get_broker().client.ping()
        return None
    except (RedisError, OSError) as exc:
        return one_line(exc)


_quiet_until = 0.0  # the next "Redis is down" line of the leader (one a minute)


def tick(conn: psycopg.Connection) -> list[int]:
    """One leader pass: enqueue every due dealership; returns the job ids it created.

    Redis is pinged before the first slot is claimed: while it is down no slot is claimed
    and no job recorded (each would only be failed 'could not enqueue', a row per due dealer
    per retry), and the due slots are run by the first tick after it is back. Redis failing
    between the ping and a send still fails that job, and its slot is tried again in a
    minute (enqueue_retry_at)."""
    global _quiet_until
    settings = get_settings()
    now = schedules_db.server_now(conn)
    created: list[int] = []
    down: str | None = None
    pinged = False
    for dealer_id in schedules_db.end_backoffs(conn):  # set again below, at the next slot
        log.info("dealership %s: a job succeeded since its failing scheduled run; its next "
                 "run is no longer held back", dealer_id)
    for dealer, next_run in schedules_db.scheduled(conn):
        jitter = random.uniform(0, settings.schedule_jitter_s)
        if next_run is not None and next_run > now:
            continue
        failures = 0 if next_run is None else schedules_db.consecutive_failures(conn, dealer.id)
        try:
            upcoming = upcoming_run(dealer, next_run, now, failures, jitter)
        except (CroniterError, ValueError, KeyError) as exc:
            # one dealer's schedule that cannot be computed (stored before it was checked,
            # or a zone gone from tzdata) must not stop every other dealer's: look again in
            # an hour, and say so once an hour
            log.error("dealership %s: schedule %r (%s) cannot be computed: %s; skipped",
                      dealer.slug, dealer.schedule_cron, dealer.schedule_tz, exc)
            schedules_db.set_next(conn, dealer.id, now + timedelta(hours=1), next_run)
            continue
        if next_run is None:  # new or changed schedule: first run at its next slot
            schedules_db.set_next(conn, dealer.id, upcoming, None)
            continue
        if not pinged:
            down, pinged = queue_down(), True
            if down is not None and time.monotonic() >= _quiet_until:
                _quiet_until = time.monotonic() + 60
                log.warning("the job queue is unavailable (%s): due scheduled jobs wait, "
                            "unrecorded, until Redis is back (check REDIS_URL and that Redis "
                            "is up)", down)
        if down is not None:
            continue
        # Claim the slot (compare-and-set, with the dealership still unpaused) and record its
        # job in one transaction, the dealership's row locked: a slot is enqueued once, a
        # pause or removal committed before the claim wins, and one arriving after it waits
        # for the job and cancels it (service.pause). The message is sent once committed.
        with conn.transaction():
            if not schedules_db.claim(conn, dealer.id, upcoming, next_run):
                continue  # paused, removed or rescheduled since read, or run by another leader
            try:
                job, was_created = service.record(conn, dealer.id, job_kind(dealer),
                                                  "schedule")
            except ForecourtError as exc:  # no website or feed to run: the slot passes
                log.warning("dealership %s: scheduled job not queued: %s", dealer.slug, exc)
                continue
            schedules_db.set_next(conn, dealer.id, upcoming, upcoming, last_job_id=job.id)
        if was_created:
            try:
                job = service.enqueue(conn, job)
            except Transient as exc:
                # Redis away: the slot is not lost until the next one (a day, for a daily
                # schedule) but tried again in a minute, or after the failure backoff
                retry = enqueue_retry_at(upcoming, now, failures, jitter)
                schedules_db.set_next(conn, dealer.id, retry, upcoming)
                log.warning("dealership %s: scheduled job not queued: %s; trying again at %s",
                            dealer.slug, exc, retry.isoformat())
                continue
        with fc_logging.bind(job_id=job.id, dealership_id=dealer.id, dealer=dealer.slug):
            if was_created:
                created.append(job.id)
                log.info("dealership %s: job %s queued; next run %s", dealer.slug, job.id,
                         upcoming.isoformat())
            else:  # one active job per dealership: a run outlasting its interval
                log.info("dealership %s: slot skipped: job %s (%s) is still %s; next run %s",
                         dealer.slug, job.id, job.trigger, job.state, upcoming.isoformat())
    return created


def leader_connection() -> psycopg.Connection:
    """A connection for leading or standing by: named for operators (pg_stat_activity, the
    takeover warning) and, like every connection, kept alive by TCP keepalives on both ends
    (crawler.db.connect.KEEPALIVE)."""
    return connect(
        application_name=f"forecourt scheduler {socket.gethostname()}:{os.getpid()}"[:63])


def take_over(conn: psycopg.Connection) -> bool:
    """End a silent leader's session (see the module's docstring) and take the lock."""
    stale_s = get_settings().scheduler_leader_stale_s
    ended = schedules_db.end_silent_leader(conn, stale_s)
    if ended is None:
        return False
    log.warning("the leading scheduler (backend pid %s, %s, from %s) was silent for %.0f s, "
                "%s: ended its session to lead in its place", ended["pid"],
                ended["application_name"] or "no application_name", ended["client"],
                ended["silent_s"], ended["state"])
    return schedules_db.try_lead(conn)


def run(stop: threading.Event | None = None, on_tick=None) -> None:
    """Lead when possible, else stand by; until `stop` is set or SIGTERM/SIGINT."""
    settings = get_settings()
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    conn = None
    leading = False
    while not stop.is_set():
        try:
            if conn is None or conn.closed:
                conn, leading = leader_connection(), False
            if not leading:
                leading = schedules_db.try_lead(conn) or take_over(conn)
                if leading:
                    log.info("this scheduler leads")
            if leading:
                created = tick(conn)
                reaper.reap(conn)
                if on_tick is not None:
                    on_tick(created)
        except Exception as exc:  # noqa: BLE001 - nothing in one pass may end scheduling
            if not isinstance(exc, (psycopg.Error, ForecourtError, OSError, RedisError)):
                log.exception("scheduler tick failed")  # a bug: its traceback, then on
            elif leading and conn is not None and (conn.closed or conn.broken):
                # the session (and the lock) is gone: the server went away, or a standby
                # ended it after this process stood still; a slot it had read and not yet
                # claimed is refused by the compare-and-set, so nothing runs twice
                log.warning("this scheduler no longer leads: its database connection was "
                            "lost (%s); standing by", str(exc).strip().splitlines()[0]
                            if str(exc).strip() else type(exc).__name__)
            else:  # the database or Redis is away: try again next tick
                log.warning("scheduler tick failed: %s", exc)
            if conn is not None:
                conn.close()
            conn, leading = None, False
        stop.wait(settings.scheduler_tick_s)
    if conn is not None:
        conn.close()
