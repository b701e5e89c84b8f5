"""Cancelling a feed job while its feed downloads: against a real `forecourt worker`, Redis,
PostgreSQL and feed servers on 127.0.0.1.

The attempt stops at the next chunk of the download (or during a wait between the
download's tries), not at the first ingest batch after the whole body has arrived: the job
ends cancelled while the server is still sending, the temporary file is removed and the
dealer's vehicles are left as they were.
"""

from __future__ import annotations

import threading

import pytest

from crawler.config import get_settings, reset_settings
from crawler.db import connect
from crawler.db import jobs as jobs_db
from crawler.models import FINAL_STATES
from tests.integration.test_feed_refetch import TrickleServer, csv_body, good_rows
from tests.integration.test_ingest_feeds import FeedServer, dealer, ingest, make_feed
from tests.jobs.conftest import wait_final, wait_for

pytestmark = pytest.mark.integration
SEND_S = 60  # how long the slow server takes to send its whole body


def slow_feed_server(body: bytes, send_s: float = SEND_S, every_s: float = 0.05
                     ) -> TrickleServer:
    """A feed URL whose body (valid CSV: the dealer's vehicles re-priced, and thousands
    more) takes `send_s` seconds to send, a piece every 50 ms."""
    return TrickleServer(body, piece=max(1, len(body) // int(send_s / every_s)),
                         every_s=every_s, name="big.csv")


def vehicles(db, d) -> dict[str, tuple]:
    """Per VIN: status, price, updated_at and xmin (which any write of the row changes)."""
    return {r["vin"]: (r["status"], r["price"], r["updated_at"], r["xmin"]) for r in db.execute(
        "SELECT vin, status, price, updated_at, xmin::text AS xmin FROM vehicles"
        " WHERE dealership_id = %s", (d.id,))}


def temp_feeds() -> list:
    return list((get_settings().data_dir / "feeds").glob("feed-*"))


def test_cancel_while_a_feed_downloads_ends_the_job_before_the_body_has_arrived(
        db, shared_worker, tmp_path):
    from jobs import service

    d = dealer(db, "slow-feed")
    first = tmp_path / "first.csv"
    first.write_bytes(csv_body(good_rows()))
    assert ingest(db, d, first).state == "succeeded"  # the dealer's vehicles
    before = vehicles(db, d)
    assert len(before) == len(good_rows())

    server = slow_feed_server(csv_body(good_rows("$18,000") + list(make_feed.rows(3000, seed=5))))
    try:
        job, _ = service.trigger(db, d.id, "feed", "operator", {"source": server.url})
        wait_for(lambda: server.sent > 0 and jobs_db.get(db, job.id).phase == "fetching",
                 timeout=60, what="the download to start")
        assert temp_feeds()  # the body is going to its temporary file
        service.cancel(db, job.id)
        wait_for(lambda: jobs_db.get(db, job.id).state in FINAL_STATES
                 or server.finished.is_set(), timeout=SEND_S * 2,
                 what="the job to end or the server to finish sending")
        done = wait_final(db, job.id)
        assert not server.finished.is_set(), f"the job ended {done.state} only after the body"
        wait_for(server.gone.is_set, what="the worker to hang up")
    finally:
        server.close()
    assert done.state == "cancelled" and done.error_kind == "cancelled", done.error
    assert done.attempts == 1 and len(server.requests) == 1
    assert not temp_feeds()
    assert vehicles(db, d) == before  # untouched: no row of the new body was stored


def test_cancel_while_a_feed_download_waits_to_retry_does_not_wait_for_the_retry(
        db, monkeypatch):
    """The wait between a download's tries (here 30 s after a 503) notices the cancel too.
    (The attempt as a worker runs it, jobs.attempt.run_feed, in a thread of this process:
    the test needs a long backoff only that attempt has.)"""
    from jobs import attempt, service

    monkeypatch.setenv("FORECOURT_FEED_FETCH_BACKOFF_S", "30")
    reset_settings()
    server = FeedServer(b"", fail=100, status=503)
    ended: list = []
    try:
        d = dealer(db, "flaky-feed", feed_url=server.url)
        job, _ = jobs_db.create_or_get_active(db, d.id, "feed", "operator")
        jobs_db.start(db, job.id, "test-worker")

        def run() -> None:
            with connect() as conn:
                ended.append(attempt.run_feed(conn, job.id, "test-worker", server.url))

        runner = threading.Thread(target=run, daemon=True)
        runner.start()
        wait_for(lambda: len(server.requests) == 1, what="the first try")
        service.cancel(db, job.id)
        wait_for(lambda: ended or len(server.requests) > 1, timeout=120,
                 what="the attempt to end or try again")
        runner.join(timeout=30)
    finally:
        server.close()
        monkeypatch.undo()
        reset_settings()
    assert len(server.requests) == 1, "the download tried again after the cancel"
    assert ended and ended[0].state == "cancelled" and ended[0].error_kind == "cancelled"
    assert jobs_db.get(db, job.id).state == "cancelled"


def test_a_feed_attempt_whose_heartbeat_connection_is_cut_beats_again_and_hears_a_cancel(db):
    """The attempt heartbeats its job on a connection of its own. Cut by the server (a
    restart of a pooler, an operator's pg_terminate_backend, a network blip) while the
    feed downloads, it is opened again: the job keeps beating (else the reaper would take
    a live attempt for dead and start a second one beside it) and a cancel still stops it.
    (jobs.attempt.run_feed, as a worker runs it, in a thread of this process.)"""
    from jobs import attempt, service

    server = slow_feed_server(csv_body(good_rows() + list(make_feed.rows(3000, seed=5))))
    ended: list = []
    try:
        d = dealer(db, "cut-beat", feed_url=server.url)
        job, _ = jobs_db.create_or_get_active(db, d.id, "feed", "operator")
        jobs_db.start(db, job.id, "test-worker")

        def run() -> None:
            with connect() as conn:
                ended.append(attempt.run_feed(conn, job.id, "test-worker", server.url))

        runner = threading.Thread(target=run, daemon=True)
        runner.start()
        wait_for(lambda: server.sent > 0 and jobs_db.get(db, job.id).phase == "fetching",
                 timeout=60, what="the download to start")
        beat = wait_for(lambda: db.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND query LIKE '%UPDATE jobs SET heartbeat_at%'"
        ).fetchall(), what="the heartbeat's connection")
        assert len(beat) == 1
        db.execute("SELECT pg_terminate_backend(%s)", (beat[0]["pid"],))
        cut = db.execute("SELECT now() AS t").fetchone()["t"]
        wait_for(lambda: jobs_db.get(db, job.id).heartbeat_at > cut or server.finished.is_set(),
                 timeout=SEND_S * 2, what="a heartbeat after the cut, or the whole body")
        assert not server.finished.is_set(), "no heartbeat from the cut to the end of the body"
        service.cancel(db, job.id)
        wait_for(lambda: ended or server.finished.is_set(), timeout=SEND_S * 2,
                 what="the attempt to end or the server to finish sending")
        runner.join(timeout=30)
        assert not server.finished.is_set(), f"the attempt ended only after the body: {ended}"
    finally:
        server.close()
    assert ended and ended[0].state == "cancelled" and ended[0].error_kind == "cancelled"
