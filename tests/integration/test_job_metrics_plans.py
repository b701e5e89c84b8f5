"""/metrics job figures at scale: with many finished jobs, no statement the metrics run reads
the whole jobs table, and the figures match the jobs. Plan shapes only: nothing is timed."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from crawler.db import database_url
from crawler.db import jobs as jobs_db

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
            return await jobs_db.astats(recording), recording.statements

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
