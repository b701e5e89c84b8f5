"""/metrics job figures at scale: with many finished jobs, no statement the metrics run reads
the whole jobs table, and the figures match the jobs. Plan shapes only: nothing is timed."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from crawler.db import database_url
from crawler.db import job_queue as queue_db
from crawler.db import jobs as jobs_db
from crawler.db import jobs_async as ajobs_db

pytestmark = pytest.mark.integration

FINISHED = 50_000


class Recording:
    """An async connection that records the statements run through it."""

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self.conn = conn
        self.statements: list[tuple[str, Any]] = []

    async def execute(self, sql: str, params: Any = None):
        self.statements.append((sql, params))
        return await self.conn.execute(sql, params)


def _stats() -> tuple[dict, list[tuple[str, Any]]]:
    async def run():
        async with await psycopg.AsyncConnection.connect(
                database_url(), autocommit=True, row_factory=dict_row) as conn:
            recording = Recording(conn)
            return await ajobs_db.astats(recording), recording.statements

    return asyncio.run(run())


def _scans(plan: dict) -> list[tuple[str, str]]:
    found = [(plan["Node Type"], plan.get("Relation Name", ""))]
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found


def test_metrics_read_no_whole_jobs_table_and_count_right(db):
    db.execute("INSERT INTO dealerships (slug, name)"
               " SELECT 'd' || i, 'D' || i FROM generate_series(1, 200) i")
    first = db.execute("SELECT min(id) AS id FROM dealerships").fetchone()["id"]
    # 50k finished jobs of 200 dealers (each ran 2 minutes), then 30 queued and 5 running;
    # in statements of 2,500 (jobs end one per statement: one statement ending 50k would
    # update each running total thousands of times in one transaction, which is slow)
    for start in range(1, FINISHED, 2_500):
        db.execute(
            """
            INSERT INTO jobs (dealership_id, kind, trigger, state, counters, started_at,
                              finished_at)
            SELECT %s + i %% 200, CASE WHEN i %% 4 = 0 THEN 'feed' ELSE 'crawl' END,
                   'schedule', CASE WHEN i %% 10 = 0 THEN 'failed' ELSE 'succeeded' END,
                   jsonb_build_object('upserted', 2, 'rejected', 1),
                   now() - make_interval(days => i %% 300) - interval '2 minutes',
                   now() - make_interval(days => i %% 300)
              FROM generate_series(%s::int, %s::int) i
            """, (first, start, start + 2_499))
    db.execute("INSERT INTO jobs (dealership_id, kind, trigger, state)"
               " SELECT %s + i, 'crawl', 'schedule', CASE WHEN i < 5 THEN 'running'"
               " ELSE 'queued' END FROM generate_series(0, 34) i", (first,))
    db.execute("ANALYZE jobs")

    stats, statements = _stats()
    assert stats["states"] == {"queued": 30, "running": 5}
    assert stats["finished"] == {("crawl", "succeeded"): 35_000, ("crawl", "failed"): 2_500,
                                 ("feed", "succeeded"): 10_000, ("feed", "failed"): 2_500}
    assert stats["upserted"] == 2 * FINISHED and stats["rejected"] == FINISHED
    assert stats["durations"]["crawl"]["count"] == 37_500
    assert stats["durations"]["crawl"]["sum"] == pytest.approx(37_500 * 120)
    bounds = stats["bounds"]
    assert stats["durations"]["feed"]["buckets"] == [
        0 if bound < 120 else 12_500 for bound in bounds]

    for sql, params in statements:
        plan = db.execute(f"EXPLAIN (FORMAT JSON) {sql}", params).fetchone()["QUERY PLAN"]
        scans = _scans(plan[0]["Plan"])
        assert ("Seq Scan", "jobs") not in scans, (sql, scans)


def test_a_counter_that_is_not_a_number_never_fails_a_job_ending(db):
    dealer = db.execute("INSERT INTO dealerships (slug, name) VALUES ('odd', 'Odd')"
                        " RETURNING id").fetchone()["id"]
    job, _ = jobs_db.create_or_get_active(db, dealer, "feed", "operator")
    db.execute("UPDATE jobs SET state = 'succeeded', finished_at = now(),"
               """ counters = '{"upserted": "many", "rejected": 2.6}' WHERE id = %s""",
               (job.id,))
    assert db.execute("SELECT state FROM jobs WHERE id = %s", (job.id,)).fetchone()["state"] \
        == "succeeded"
    stats, _ = _stats()
    assert stats["finished"] == {("feed", "succeeded"): 1}
    assert (stats["upserted"], stats["rejected"]) == (0, 3)


def _crawl_totals(db) -> dict:
    row = db.execute("SELECT coalesce(sum(finished), 0) AS finished,"
                     " coalesce(sum(duration_sum), 0) AS seconds,"
                     " coalesce(sum(upserted), 0) AS upserted FROM job_totals"
                     " WHERE kind = 'crawl'").fetchone()
    return {k: float(v) for k, v in row.items()}


def _queued_crawl(db, slug: str):
    from crawler.db import dealers as dealers_db

    dealer = dealers_db.create(db, slug=slug, name=slug, website_url="http://127.0.0.1:9/")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "schedule")
    return job


def test_a_retried_attempt_is_timed_from_its_own_start_not_the_first_attempts(db):
    """A retry used to be timed from the job's first start (started_at, which claims keep):
    its backoff and any backlog it waited behind counted as run time, once per attempt."""
    job = _queued_crawl(db, "metrics-duration")
    queue_db.claim(db, job.id, "w1", 60)
    queue_db.fail_running(db, job.id, "connection reset", "transient")
    queue_db.requeue(db, job.id, 0)
    # the first attempt and its wait in line for a retry were two hours ago
    db.execute("UPDATE jobs SET started_at = started_at - interval '2 hours',"
               " attempt_started_at = attempt_started_at - interval '2 hours' WHERE id = %s",
               (job.id,))
    first_seconds = _crawl_totals(db)["seconds"]
    retried = queue_db.claim(db, job.id, "w2", 60)
    ended = queue_db.fail_running(db, job.id, "connection reset", "transient")  # at once
    after = _crawl_totals(db)
    assert after["finished"] == 2
    second_seconds = after["seconds"] - first_seconds
    assert second_seconds < 3600, (
        f"the second attempt, which ran for a moment, was counted as {second_seconds:.0f} s")
    assert second_seconds == pytest.approx(
        (ended.finished_at - retried.attempt_started_at).total_seconds())
    # the job's own start is still its first attempt's (the API and CLI show it)
    assert retried.started_at < retried.attempt_started_at


def test_vehicles_are_counted_once_when_later_attempts_end_before_reporting_progress(db):
    """An attempt that ends before reporting progress (its crawl child failing at start,
    the reaper abandoning it) used to be settled with the counters the previous attempt
    left, and the trigger added that attempt's `upserted` once more per attempt."""
    job = _queued_crawl(db, "metrics-upserted")
    queue_db.claim(db, job.id, "w1", 60)
    jobs_db.progress(db, job.id, {"upserted": 100, "rejected": 4})  # 100 vehicles written
    queue_db.fail_running(db, job.id, "crawl process died", "crash")
    queue_db.requeue(db, job.id, 0)
    for worker in ("w2", "w3"):  # two more attempts that write nothing
        claimed = queue_db.claim(db, job.id, worker, 60)
        assert claimed.counters == {}, "a new attempt starts with its own counters"
        queue_db.fail_running(db, job.id, "could not connect", "transient")
        queue_db.requeue(db, job.id, 0)
    assert _crawl_totals(db)["upserted"] == 100
    stats, _ = _stats()
    assert (stats["upserted"], stats["rejected"]) == (100, 4)
