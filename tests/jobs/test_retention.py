"""Job retention: old finished jobs go with their rejects and seen sets, in batches; the
jobs something still reads stay, and vehicles and their history are never touched."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from crawler.db import dealers as dealers_db
from tests.test_cli import run


def _job(db, dealer_id: int, kind: str, state: str, days: float | None,
         verdict: str | None = None, **fields) -> int:
    """A job that finished `days` ago (None: not finished)."""
    cols = {"dealership_id": dealer_id, "kind": kind, "trigger": "schedule", "state": state,
            "verdict": verdict, "counters": Jsonb({"upserted": 1, "rejected": 1}), **fields}
    finished = "now() - make_interval(days => %s)" if days is not None else "NULL"
    row = db.execute(
        f"INSERT INTO jobs ({', '.join(cols)}, started_at, finished_at)"
        f" VALUES ({', '.join(['%s'] * len(cols))}, {finished}, {finished})"
        " RETURNING id", [*cols.values(), *([days, days] if days is not None else [])],
    ).fetchone()
    return row["id"]


def _world(db) -> tuple[dict[str, int], list[int]]:
    """Dealer a's history, oldest first, and dealer b's one old run. Returns the jobs by
    name and the ids that retention (90 days) must delete."""
    a = dealers_db.create(db, slug="a", name="A", website_url="https://a.test/").id
    b = dealers_db.create(db, slug="b", name="B", website_url="https://b.test/").id
    j = {}
    for n in range(6):  # healthy crawls, 200..195 days ago
        j[f"healthy{n}"] = _job(db, a, "crawl", "succeeded", 200 - n, "healthy")
    j["cancelled"] = _job(db, a, "crawl", "cancelled", 190)
    j["dead_purged"] = _job(db, a, "crawl", "dead", 185, dlq_cleared_at="2026-01-01T00:00Z")
    j["dead_letter"] = _job(db, a, "crawl", "dead", 180)  # on the dead-letter list: kept
    j["feed_failed"] = _job(db, a, "feed", "failed", 175)
    j["feed_partial"] = _job(db, a, "feed", "partial", 170, "degraded")  # last feed run
    j["crawl_failed"] = _job(db, a, "crawl", "failed", 100)
    j["recent"] = _job(db, a, "crawl", "succeeded", 10, "healthy")  # last crawl run
    j["running"] = _job(db, a, "crawl", "running", None)
    j["b_only"] = _job(db, b, "crawl", "failed", 300)  # b's last run, however old
    # the gate's baseline is a's 5 latest healthy crawls: recent and healthy5..healthy2
    doomed = [j["healthy0"], j["healthy1"], j["cancelled"], j["dead_purged"],
              j["feed_failed"], j["crawl_failed"]]
    for job_id in j.values():
        dealer = b if job_id == j["b_only"] else a
        db.execute("INSERT INTO rejects (job_id, dealership_id, reasons) VALUES (%s, %s, %s)",
                   (job_id, dealer, ["bad"]))
        db.execute("INSERT INTO run_seen (job_id, vin) VALUES (%s, 'V1')", (job_id,))
    db.execute("INSERT INTO vehicles (dealership_id, vin, content_hash, last_job_id)"
               " VALUES (%s, 'V1', 'h', %s)", (a, j["healthy0"]))
    for job_id in (j["healthy0"], j["feed_failed"], j["recent"]):
        db.execute("INSERT INTO vehicle_events (dealership_id, vin, job_id, kind)"
                   " VALUES (%s, 'V1', %s, 'added')", (a, job_id))
    return j, doomed


def _ids(db, table: str, column: str = "job_id") -> set[int]:
    return {r["id"] for r in db.execute(f"SELECT {column} AS id FROM {table}").fetchall()}


def _rows(db, table: str, order: str = "id") -> list[dict]:
    return db.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()


def test_old_finished_jobs_go_in_batches_and_the_ones_still_read_stay(db):
    from jobs import retention

    jobs, doomed = _world(db)
    events, vehicles = _rows(db, "vehicle_events"), _rows(db, "vehicles")
    totals = _rows(db, "job_totals", "kind, state, le")
    done = retention.prune(db, 90, batch=2)  # three full batches, then one with none due
    assert sorted(done["ids"]) == sorted(doomed)
    assert done["rejects"] == len(doomed) and done["seen"] == len(doomed)
    kept = set(jobs.values()) - set(doomed)
    assert _ids(db, "jobs", "id") == kept
    assert _ids(db, "rejects") == kept and _ids(db, "run_seen") == kept
    # vehicles and their history untouched: an event keeps the id of the run that made it
    assert _rows(db, "vehicle_events") == events and _rows(db, "vehicles") == vehicles
    # the /metrics counters are running totals: pruning does not lower them
    assert _rows(db, "job_totals", "kind, state, le") == totals
    assert retention.prune(db, 90)["ids"] == []
    assert retention.prune(db, 0)["ids"] == [], "0 keeps every job"
    assert retention.prune(db, 5)["ids"] == []  # what is left is still read


def test_the_reaper_and_the_cli_prune_with_the_retention_setting(db, monkeypatch):
    from jobs import reaper, retention

    jobs, doomed = _world(db)
    monkeypatch.setattr(retention, "_last_pass", None)
    assert sorted(reaper.reap(db)["pruned"]) == sorted(doomed)  # FORECOURT_JOB_RETENTION_DAYS
    assert reaper.reap(db)["pruned"] == []  # not again for PRUNE_EVERY_S
    db.execute("UPDATE jobs SET dlq_cleared_at = now() WHERE id = %s", (jobs["dead_letter"],))
    out = run("jobs", "prune", "--older-than", "150")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "pruned 1 job(s), 1 reject(s)"
    assert jobs["dead_letter"] not in _ids(db, "jobs", "id")
