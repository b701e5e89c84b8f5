"""One run of the pipeline for one dealership and job: batches in, a settled run out.

Crawls (through the Scrapy wrappers) and feeds (through the ingest loop) both open a run,
feed it batches of VehicleItems, and close it with what they know about completeness.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg

from crawler.db import baselines as baselines_db
from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from crawler.db import settling as settling_db
from crawler.db import vehicle_reads as reads_db
from crawler.db import vehicles as vehicles_db
from crawler.db.connect import sibling
from crawler.errors import TakenOver
from crawler.models import Dealership, Reject, Vehicle, VehicleItem
from pipelines import dedup, quality, store
from pipelines.stages import stage_items
from quality import gate, webhook

PROGRESS_EVERY_S = 1.0
SUPERSEDED = "superseded"  # close's state for a run whose job another attempt has taken
STATISTICS_EVERY_S = 10.0  # how often a run checks whether its tables need ANALYZE
# A run with more rejected rows than this lacking a VIN is broken (the gate holds back its
# removals anyway): the rest are not looked up by URL.
MAX_UNREADABLE_URLS = 10_000
# The counters that are also events (vehicle_events kinds): what a job changed.
LIFECYCLE_COUNTERS = ("added", "price_changed", "relisted", "removed")


@dataclass
class Run:
    """The mutable state of one run: its connection, counters and the VINs it has seen."""

    conn: psycopg.Connection
    dealership_id: int
    job_id: int
    kind: str
    counters: Counter = field(default_factory=Counter)
    seen: dict | dedup.VinsOnly = field(default_factory=dict)  # see dedup.batch
    problems: list[str] = field(default_factory=list)
    last_progress: float = 0.0
    last_statistics: float = 0.0
    # per table, counters["upserted"] when forecourt last analyzed it
    upserted_at_statistics: Counter = field(default_factory=Counter)
    quality: Any = None  # pipelines.quality.RunQuality: market medians, photos seen
    fresh: bool = False  # the dealership had no vehicles when the run began
    # Overlapped writes (feeds): batch N is stored on its own connection by a thread while
    # batch N+1 goes through the stages; `pending` is that write.
    writer: ThreadPoolExecutor | None = None
    writer_conn: psycopg.Connection | None = None
    pending: Future | None = None
    # Look-ups read ahead (feeds): a batch's photo and cross-dealer look-ups, read on a third
    # connection by a thread as soon as the batch is staged (see read_ahead).
    reader: ThreadPoolExecutor | None = None
    reader_conn: psycopg.Connection | None = None
    # the job's (attempts, state) at open: a run whose attempt was superseded writes no
    # further batch (store.write raises crawler.errors.TakenOver) and settles nothing
    attempt: tuple[int, str] | None = None
    # URLs of rejected rows without a readable VIN (at most MAX_UNREADABLE_URLS): each that
    # is one active vehicle's page counts that vehicle as seen when the run closes
    unreadable_urls: set[str] = field(default_factory=set)


def open_run(conn: psycopg.Connection, dealership_id: int, job_id: int, kind: str,
             vins_only: bool = False, overlap_writes: bool = False,
             attempt: int | None = None) -> Run:
    """`overlap_writes`: store each batch on a second connection in a thread while the
    next batch goes through the stages (the database's work then overlaps Python's), and
    read batches' look-ups ahead on a third (see read_ahead). Call `close` or `abandon` to
    end such a run. `attempt`: the running attempt the run belongs to (a worker's crawl
    child), else the job's as its row says now."""
    run = Run(conn=conn, dealership_id=dealership_id, job_id=job_id, kind=kind,
              seen=dedup.VinsOnly() if vins_only else {}, quality=quality.RunQuality(),
              fresh=not vehicles_db.has_vehicles(conn, dealership_id))
    job = jobs_db.get(conn, job_id)
    run.attempt = (job.attempts, job.state) if attempt is None else (attempt, "running")
    if overlap_writes:
        run.writer_conn = sibling(conn)
        run.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"store-{job_id}")
        run.reader_conn = sibling(conn)
        run.reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"look-{job_id}")
    return run


def process(run: Run, items: list[VehicleItem]) -> None:
    """Every stage over one batch; the batch is stored atomically (with overlapped writes,
    by the time the next batch is scored, or the run is closed), and only while the run's
    attempt is the job's running one: else crawler.errors.TakenOver is raised (with
    overlapped writes, by the next batch or `close`) and nothing of it is written."""
    process_staged(run, *stage_items(items), len(items))


def read_ahead(run: Run, heroes: set[str], vins: set[str]) -> Future | None:
    """Start reading a coming batch's look-ups (its first photos, its real VINs) on the
    run's reader; pass the future to process_staged. None when the run has no reader (or
    it has stopped). Safe to call from any thread."""
    reader = run.reader
    if reader is None:
        return None
    try:
        return reader.submit(quality.look_up, run.reader_conn, run.dealership_id, heroes, vins)
    except RuntimeError:  # shut down meanwhile: the run is ending
        return None


def process_staged(run: Run, vehicles: list[Vehicle], rejects: list[Reject],
                   items: int, ahead: Future | None = None) -> None:
    """The rest of `process` for `items` items already through `stage_items`: dedup,
    quality and store. `ahead`: this batch's look-ups, from read_ahead."""
    # begun or done: wait for it; still queued behind others: cancelled and read here
    looked = ahead.result() if ahead is not None and not ahead.cancel() else None
    run.counters["items"] += items
    vehicles, duplicates = dedup.batch(vehicles, run.seen)
    if time.monotonic() - run.last_statistics >= STATISTICS_EVERY_S:
        # a bulk load must not outrun the planner's statistics (of the table batches read)
        refresh_statistics(run, ("vehicles",))
    # With overlapped writes the batches before this one may not have been stored when its
    # look-ups were read: their first photos come from memory (quality.remember_unstored);
    # the rest of the context does not depend on this dealer's latest batches.
    vehicles = quality.batch(vehicles, quality.context_for(run.conn, run.dealership_id,
                                                           vehicles, run.quality, looked))
    run.counters.update(quality.coverage_counts(vehicles))
    run.counters["valid"] += items - len(rejects)
    run.counters["rejected"] += len(rejects)
    run.counters["duplicates"] += duplicates
    for r in rejects:
        if r.url and len(run.unreadable_urls) < MAX_UNREADABLE_URLS:
            run.unreadable_urls.add(r.url)
    wait_for_writes(run)  # batches are written in order, one at a time
    if run.writer is not None:
        quality.remember_unstored(run.quality, vehicles)
        run.pending = run.writer.submit(store.write, run.writer_conn, run.dealership_id,
                                        run.job_id, store.prepare(vehicles),
                                        vehicles, rejects, fresh=run.fresh,
                                        attempt=run.attempt)
        return
    _count(run, store.batch(run.conn, run.dealership_id, run.job_id, vehicles, rejects,
                            fresh=run.fresh, attempt=run.attempt))


def refresh_statistics(run: Run, tables: tuple[str, ...] = ("vehicles", "vehicle_events")
                       ) -> None:
    """ANALYZE the vehicle tables if they changed a lot since they last were (see
    crawler.db.vehicles.refresh_statistics)."""
    run.last_statistics = time.monotonic()
    upserted = run.counters["upserted"]
    for table in tables:  # one at a time: each has its own count of rows written since
        written = upserted - run.upserted_at_statistics[table]
        if vehicles_db.refresh_statistics(run.conn, written, (table,)):
            run.upserted_at_statistics[table] = upserted


def wait_for_writes(run: Run) -> None:
    """Wait for the batch being stored (if any) and count what it wrote; its error, if it
    failed, is raised here."""
    if run.pending is not None:
        pending, run.pending = run.pending, None
        _count(run, pending.result())


def abandon(run: Run) -> None:
    """End a run that failed midway: let a pending write finish (its error is the caller's
    to report already) and release the writer. Idempotent."""
    if run.pending is not None:
        run.pending.exception()
        run.pending = None
    _stop_writer(run)


def give_up(run: Run) -> bool:
    """End a run that failed midway without judging it: nothing is removed and its seen set
    is dropped. False, and the seen set left alone, when another attempt holds the job now
    (it is that attempt's to settle). Raises if the database is out of reach: the job's
    next attempt starts from a clean seen set anyway."""
    abandon(run)
    settled = settling_db.settle_run(run.conn, run.dealership_id, run.job_id,
                                     remove_unseen=False, attempt=run.attempt)
    return not settled.get("superseded")


def _stop_writer(run: Run) -> None:
    """Stop the writer and the reader (their work done) and close their connections."""
    for pool in ("writer", "reader"):
        if getattr(run, pool) is not None:
            getattr(run, pool).shutdown(wait=True)
            setattr(run, pool, None)
        conn = getattr(run, f"{pool}_conn")
        if conn is not None:
            conn.close()
            setattr(run, f"{pool}_conn", None)


def _count(run: Run, counts: dict[str, int]) -> None:
    run.counters["added"] += counts["added"]
    run.counters["changed"] += counts["changed"] - counts["relisted"]
    run.counters["relisted"] += counts["relisted"]
    run.counters["upserted"] += counts["added"] + counts["changed"]
    run.counters["unchanged"] += counts["total"] - counts["added"] - counts["changed"]
    run.counters["price_changed"] += counts["price_changed"]
    report_progress(run)


def report_progress(run: Run, phase: str | None = None, force: bool = False,
                    waiting: int = 0) -> None:
    """Record the run's live counters on its job, at most every PROGRESS_EVERY_S unless
    `force`. `waiting`: items found but not yet through the stages (a crawl's buffer, below
    one batch), counted in the shown `items` so a crawl's progress moves before its first
    batch is stored."""
    now = time.monotonic()
    if force or now - run.last_progress >= PROGRESS_EVERY_S:
        counters = dict(run.counters)
        if waiting:
            counters["items"] = counters.get("items", 0) + waiting
        jobs_db.progress(run.conn, run.job_id, counters, phase, run.attempt)
        run.last_progress = now


def _judge(run: Run, dealer: Dealership, complete: bool, problems: list[str],
           candidates: Collection[str] | None) -> dict[str, Any]:
    """The gate's report on a run: against the dealer's healthy runs of its kind (or its
    active vehicles when there are none), coverage over the whole inventory a feed run saw,
    and a count that settled at a new level judged against the runs that settled it."""
    baseline = baselines_db.recent_healthy(run.conn, run.dealership_id, run.kind,
                                           exclude_job=run.job_id)
    other = "feed" if run.kind == "crawl" else "crawl"
    since = baseline and baselines_db.recent_healthy(run.conn, run.dealership_id, other,
                                                     limit=1, exclude_job=run.job_id)
    why = f"no earlier healthy {run.kind} run"
    if since and since[0].id > baseline[0].id:
        # The other kind has stocked the dealer since this kind's last healthy run (crawled,
        # then fed for months): that old count is not the dealer's lot any more.
        baseline = []
        why = f"a healthy {other} run since the last healthy {run.kind} run"
    history = [gate.vehicle_count(j.counters) for j in baseline]
    limits = gate.thresholds(dealer.settings)
    baseline_note = None
    if not history:
        # No healthy run of this kind yet (or none since the other kind's): a dealer crawled
        # for months whose feed is now ingested (or the other way round) must not lose every
        # car the first run of the other kind lacks. Its active vehicles are the usual count.
        stocked = reads_db.active_count(run.conn, run.dealership_id)
        if stocked > gate.vehicle_count(run.counters):
            history = [stocked]
            baseline_note = f"{why}: judged against the {stocked} active vehicles"
    if candidates is not None and run.counters.get("unchanged") and \
            gate.coverage_judgeable(run.counters, limits):
        # The stages counted the coverage of the rows that changed, and the fast path's
        # rows are another sample (new cars, re-priced ones): judge the run, and let later
        # runs judge against it, by the coverage of the whole inventory it saw.
        for name, n in settling_db.stored_coverage(run.conn, run.dealership_id, run.job_id,
                                                   candidates).items():
            run.counters[name] = run.counters.get(name, 0) + n
    removing = None
    if complete and not (baseline and baseline[0].accepted_at is not None):
        # what removal would take of the inventory listed by the baseline's newest run
        # (cars a held-back run added since are not the dealer's lot); right after an
        # operator accepted a run, the next one removes what it does not see
        # (counting the established ones only when enough would go for the check to
        # matter: a count of a million-vehicle dealer's rows cost a re-ingest ~5%)
        before = baseline[0].finished_at if baseline else None
        unseen = settling_db.unseen_established(run.conn, run.dealership_id, run.job_id,
                                                candidates, before)
        if unseen and unseen >= limits.get("min_count_drop", 0):
            removing = (unseen, settling_db.established(run.conn, run.dealership_id, before))
    report = gate.evaluate(dict(run.counters), complete=complete, problems=problems,
                           history_counts=history, limits=limits,
                           history=[j.counters for j in baseline], removing=removing)
    if report["count_only"]:
        # degraded by its count alone: has the count settled at a new level (a lot that
        # really shrank) over the last few complete runs? Then judge it against them.
        earlier = baselines_db.recent_verdicts(run.conn, run.dealership_id, run.kind, run.job_id)
        counts = gate.settled_count(report, earlier, limits, dt.datetime.now(dt.UTC))
        if counts is not None:
            again = gate.evaluate(dict(run.counters), complete=complete,
                                  problems=problems, history_counts=counts,
                                  limits=limits, history=[j.counters for j in baseline])
            if again["verdict"] == "healthy":
                shown = ", ".join(map(str, counts[:10])) + (", ..." if len(counts) > 10 else "")
                again["settled"] = (f"the count settled at a new level: {len(counts)} runs "
                                    f"in a row ({shown}) were below a usual "
                                    f"{report['baseline_count']:g}; judged against them, "
                                    "and the new baseline from now on")
                report = again
    if baseline_note:
        report["baseline_note"] = baseline_note
    return report


def close(run: Run, complete: bool, problems: list[str] | None = None,
          candidates: Collection[str] | None = None) -> dict[str, Any]:
    """Judge the run, remove the unseen only if it is healthy and complete, settle the job's
    counters and report. Returns the report, with the job state it earns (SUPERSEDED, and
    nothing settled, when another attempt of the job has taken over since the run opened).

    `candidates`: for a feed run whose fast path skipped unchanged rows without recording
    them, the VINs of active vehicles it may not have seen (see
    crawler.db.settling.settle_run)."""
    try:
        wait_for_writes(run)
    finally:
        _stop_writer(run)
    if run.unreadable_urls:  # listed, only its VIN unreadable this time: seen, not removed
        try:
            with run.conn.transaction():
                if run.attempt is not None:  # (the seen set is the job's current attempt's)
                    jobs_db.fence(run.conn, run.job_id, run.attempt)
                settling_db.mark_seen_by_url(run.conn, run.dealership_id, run.job_id,
                                             sorted(run.unreadable_urls))
        except TakenOver:
            return {"state": SUPERSEDED, "verdict": None, "may_remove": False, "removed": 0,
                    "reasons": [], "counters": dict(run.counters)}
    all_problems = [*run.problems, *(problems or [])]
    dealer = dealers_db.get_by_id(run.conn, run.dealership_id)
    report = _judge(run, dealer, complete, all_problems, candidates)
    refresh_statistics(run)
    settled = settling_db.settle_run(run.conn, run.dealership_id, run.job_id,
                                     remove_unseen=report["may_remove"],
                                     candidates=candidates, attempt=run.attempt)
    run.counters["removed"] += settled["removed"]
    report["removed"] = settled["removed"]
    if settled.get("superseded"):
        # another attempt of this job runs now and will settle it: leave the job alone
        report.update(state=SUPERSEDED, may_remove=False, counters=dict(run.counters))
        return report
    if run.attempt is not None and run.attempt[0] > 1:
        # An earlier attempt of this job (killed, failed) may have stored changes, or
        # removed vehicles, that this one then found done: the job's changes are counted
        # from its events, whichever attempt recorded them.
        events = settling_db.event_counts(run.conn, run.job_id)
        for name in LIFECYCLE_COUNTERS:  # (Counter.update would add)
            run.counters[name] = events.get(name, 0)
        report["removed"] = run.counters["removed"]
    if report.get("settled"):  # the new level is the baseline from now on
        baselines_db.mark_accepted(run.conn, run.job_id)
    report["cross_dealer_updated"] = quality.settle_duplicates(run.conn, run.dealership_id,
                                                               run.job_id, run.quality)
    if any(p.startswith("blocked") for p in all_problems):
        state = "blocked"
    elif report["verdict"] == "failed":
        state = "failed"
    elif report["may_remove"]:
        state = "succeeded"
    else:
        state = "partial"
    report["state"] = state
    report["counters"] = dict(run.counters)
    if (report["verdict"] != "healthy" or report.get("settled")) and dealer.webhook_url:
        report["webhook_sent"] = webhook.send(
            dealer.webhook_url, webhook.notice(dealer.slug, run.job_id, report))
    return report
