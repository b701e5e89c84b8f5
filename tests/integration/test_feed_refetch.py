"""When a fetched feed counts as unchanged, and how long a fetch may take: against a real
PostgreSQL and feed servers on 127.0.0.1.

A feed is skipped as unchanged (HTTP 304, or the same body hash) only against the
validators of the last run that succeeded, recorded under the same mapping, format and
PIPELINE_VERSION; a run that did not succeed (partial, failed, died midway) leaves the next
fetch to process its body; `forecourt ingest --force` ignores the validators. A download
that outlasts feed_fetch_deadline_s fails as Transient, however slowly bytes keep coming.
"""

from __future__ import annotations

import csv
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from crawler.config import get_settings, reset_settings
from crawler.db import dealers as dealers_db
from crawler.db import job_ends as ends_db
from crawler.db import job_queue as queue_db
from crawler.db import jobs as jobs_db
from ingest import feed, feed_job
from tests.integration.test_ingest_feeds import (
    FeedServer,
    dealer,
    fast_retries,  # noqa: F401 (a fixture)
    forecourt,
    ingest,
    make_feed,
)

pytestmark = pytest.mark.integration
PRICE, MSRP = make_feed.HEADER.index("SellingPrice"), make_feed.HEADER.index("MSRP")
ROWS = 8


def csv_body(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(make_feed.HEADER)
    writer.writerows(rows)
    return out.getvalue().encode()


def good_rows(price: str = "$20,000") -> list[list[str]]:
    rows = list(make_feed.rows(ROWS, seed=21))
    for r in rows:
        r[PRICE], r[MSRP] = price, "$31,000"
    return rows


def broken_body() -> bytes:
    """The provider's bad day: every price garbled (letter O for zero) and the file cut off
    inside a quoted field, so the run is partial and stores the vehicles without prices."""
    rows = good_rows("$2O,OOO")
    return csv_body(rows) + b'STK-CUT,Used,2021,Honda,"Civic'


def prices(db, d) -> dict[str, float | None]:
    return {r["vin"]: None if r["price"] is None else float(r["price"]) for r in db.execute(
        "SELECT vin, price FROM vehicles WHERE dealership_id = %s AND status = 'active'",
        (d.id,))}


def validators(db, d) -> dict | None:
    return db.execute("SELECT * FROM feed_sources WHERE dealership_id = %s",
                      (d.id,)).fetchone()


@pytest.fixture
def served():
    servers: list[FeedServer] = []

    def start(body: bytes, **kw) -> FeedServer:
        servers.append(FeedServer(body, **kw))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.mark.parametrize("etag", ['"b1"', None], ids=["etag-304", "same-body-hash"])
def test_a_restored_feed_is_processed_after_a_run_that_did_not_succeed(
        db, fast_retries, served, etag):  # noqa: F811
    good = csv_body(good_rows())
    server = served(good, etag=etag)
    d = dealer(db, feed_url=server.url)
    first = ingest(db, d)
    assert first.state == "succeeded" and set(prices(db, d).values()) == {20000.0}

    server.body, server.etag = broken_body(), etag and '"b2"'
    broken = ingest(db, d)
    assert broken.state == "partial" and broken.counters.get("removed", 0) == 0
    assert set(prices(db, d).values()) == {None}  # the damage
    assert validators(db, d)["body_sha256"] is None  # nothing vouches for the stored rows

    server.body, server.etag = good, etag  # the provider restores yesterday's file
    restored = ingest(db, d)
    assert not restored.report.get("unchanged_feed"), restored.report.get("note")
    assert "If-None-Match" not in server.requests[-1]
    assert restored.state == "succeeded" and restored.counters["changed"] == ROWS
    assert set(prices(db, d).values()) == {20000.0}  # repaired

    again = ingest(db, d)  # now it really is the body the stored rows came from
    assert again.state == "succeeded" and again.report["unchanged_feed"]
    if etag:
        assert server.requests[-1]["If-None-Match"] == '"b1"'


def test_a_run_that_dies_midway_leaves_the_next_fetch_to_process_the_feed(
        db, fast_retries, served, monkeypatch):  # noqa: F811
    monkeypatch.setenv("FORECOURT_FEED_BATCH_SIZE", "2")  # a batch stored before it dies
    reset_settings()
    try:
        good = csv_body(good_rows())
        server = served(good, etag='"b1"')
        d = dealer(db, feed_url=server.url)
        assert ingest(db, d).state == "succeeded"
        server.body, server.etag = csv_body(good_rows("$18,500")), '"b2"'
        batches = []

        def killed(counters):  # the worker dies once some rows are written
            batches.append(counters)
            if len(batches) == 3:
                raise RuntimeError("worker killed")
        with pytest.raises(RuntimeError, match="worker killed"):
            ingest(db, d, on_batch=killed)
        assert 18500.0 in prices(db, d).values()  # half-written
        dead = jobs_db.list_for(db, d.id, limit=1)[0]
        queue_db.fail_running(db, dead.id, "worker killed", "crash")  # as the reaper would
        server.body, server.etag = good, '"b1"'
        restored = ingest(db, d)
    finally:
        monkeypatch.undo()
        reset_settings()
    assert not restored.report.get("unchanged_feed"), restored.report.get("note")
    assert restored.state == "succeeded" and set(prices(db, d).values()) == {20000.0}


@pytest.mark.parametrize("change", ["mapping", "format", "pipeline_version"])
def test_a_feed_is_processed_again_when_what_its_result_depends_on_changed(
        db, fast_retries, served, monkeypatch, change):  # noqa: F811
    server = served(csv_body(good_rows()), etag='"b1"')
    d = dealer(db, feed_url=server.url)
    assert ingest(db, d).state == "succeeded"
    assert ingest(db, d).report["unchanged_feed"]  # as it stands: unchanged
    if change == "mapping":  # the dealer's price is its MSRP column from now on
        dealers_db.update(db, d.id, feed_mapping={"price": "MSRP"})
    elif change == "format":
        dealers_db.update(db, d.id, feed_format="csv")
    else:
        monkeypatch.setattr(feed, "PIPELINE_VERSION", feed.PIPELINE_VERSION + "-next")
    job = ingest(db, d)
    assert not job.report.get("unchanged_feed"), job.report.get("note")
    assert "If-None-Match" not in server.requests[-1]
    assert job.state == "succeeded" and job.counters["items"] == ROWS
    if change == "mapping":
        assert job.counters["changed"] == ROWS
        assert set(prices(db, d).values()) == {31000.0}
    assert ingest(db, d).report["unchanged_feed"]  # recorded under the new fingerprint


def test_a_file_ingested_by_hand_makes_the_next_fetch_of_the_url_process_it(
        db, fast_retries, served, tmp_path):  # noqa: F811
    good = csv_body(good_rows())
    server = served(good, etag='"b1"')
    d = dealer(db, feed_url=server.url)
    assert ingest(db, d).state == "succeeded"
    by_hand = tmp_path / "by-hand.csv"
    by_hand.write_bytes(csv_body(good_rows("$15,000")))
    assert ingest(db, d, by_hand).state == "succeeded"
    assert set(prices(db, d).values()) == {15000.0}
    job = ingest(db, d)  # the URL's body is still the one of the first run
    assert not job.report.get("unchanged_feed"), job.report.get("note")
    assert set(prices(db, d).values()) == {20000.0}


def test_cli_ingest_force_processes_a_feed_that_looks_unchanged(
        db, capsys, fast_retries, served):  # noqa: F811
    server = served(csv_body(good_rows()), etag='"b1"')
    d = dealer(db, "forced-motors", feed_url=server.url)
    code, out, err = forecourt(capsys, "ingest", "forced-motors")
    assert code == 0, err
    code, out, err = forecourt(capsys, "ingest", "forced-motors")
    assert code == 0 and "feed unchanged" in out
    assert server.requests[-1]["If-None-Match"] == '"b1"'

    code, out, err = forecourt(capsys, "ingest", "forced-motors", "--force")
    assert code == 0, err
    assert "feed unchanged" not in out
    assert "If-None-Match" not in server.requests[-1]
    job = jobs_db.list_for(db, d.id, limit=1)[0]
    assert job.state == "succeeded" and job.params["force"] is True
    assert job.report["fetch"]["forced"] is True and job.counters["items"] == ROWS
    assert validators(db, d)["etag"] == '"b1"'  # recorded again by the forced run
    code, out, err = forecourt(capsys, "ingest", "forced-motors")
    assert code == 0 and "feed unchanged" in out


# -- the fetch deadline ------------------------------------------------------------------------

class TrickleServer:
    """A feed URL that sends its body `piece` bytes at a time, every `every_s`, each well
    inside any read timeout: it takes several seconds, and would take days at a real feed's
    size. `sent` counts the bytes sent; `finished` is set once all of them were, `gone`
    once the client hung up before that."""

    def __init__(self, body: bytes, piece: int = 16, every_s: float = 0.05,
                 name: str = "slow.csv"):
        self.requests: list[dict] = []
        self.sent = 0
        self.stop, self.finished, self.gone = (threading.Event(), threading.Event(),
                                               threading.Event())
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(dict(self.headers))
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    for i in range(0, len(body), piece):
                        if server.stop.wait(every_s):
                            return
                        self.wfile.write(body[i:i + piece])
                        self.wfile.flush()
                        server.sent += len(body[i:i + piece])
                except OSError:  # the client gave up
                    server.gone.set()
                    return
                server.finished.set()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/feeds/{name}"

    def close(self):
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def deadline_1s(monkeypatch):
    monkeypatch.setenv("FORECOURT_FEED_FETCH_DEADLINE_S", "1")
    monkeypatch.setenv("FORECOURT_FEED_FETCH_BACKOFF_S", "0.01")
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


def test_a_feed_trickled_slower_than_the_deadline_fails_the_job_as_transient(db, deadline_1s):
    from jobs.outcome import TRANSIENT, classify_settled

    body = csv_body(good_rows())  # ~2 KB at 16 bytes per 50 ms: several seconds
    server = TrickleServer(body)
    try:
        d = dealer(db, feed_url=server.url)
        job = ingest(db, d)
    finally:
        server.close()
    assert job.state == "failed" and job.error_kind == "Transient"
    assert "was not downloaded within its 1 s deadline" in job.error
    assert "FORECOURT_FEED_FETCH_DEADLINE_S" in job.error
    assert classify_settled(job) == TRANSIENT  # the job layer retries it later, with backoff
    assert len(server.requests) == 1  # the deadline is not retried within the fetch
    assert prices(db, d) == {} and validators(db, d) is None
    assert not list((get_settings().data_dir / "feeds").glob("feed-*"))  # temp file removed


def test_retries_stop_when_their_backoff_would_pass_the_deadline(db, deadline_1s,
                                                                 monkeypatch, served):
    monkeypatch.setenv("FORECOURT_FEED_FETCH_BACKOFF_S", "30")  # the first wait alone: 30 s
    reset_settings()
    server = served(b"", fail=10)
    job = ingest(db, dealer(db), server.url)
    assert job.state == "failed" and job.error_kind == "Transient"
    assert "answered HTTP 500" in job.error  # the real cause, not the deadline
    assert len(server.requests) == 1


# -- cancels and answers that only look like "unchanged" ---------------------------------------

@pytest.mark.parametrize("etag", ['"b1"', None], ids=["etag-304", "same-body-hash"])
def test_a_cancelled_job_whose_feed_is_unchanged_ends_cancelled(
        db, fast_retries, served, etag):  # noqa: F811
    server = served(csv_body(good_rows()), etag=etag)
    d = dealer(db, feed_url=server.url)
    assert ingest(db, d).state == "succeeded"
    job, _ = jobs_db.create_or_get_active(db, d.id, "feed", "operator")
    jobs_db.start(db, job.id, "test")
    ends_db.request_cancel(db, job.id)  # while the feed is being fetched
    done = feed_job.run_job(db, job.id)
    assert done.state == "cancelled" and done.error_kind == "cancelled", done.report
    assert done.report["unchanged_feed"]  # what the fetch found is kept for the record
    if etag:
        assert server.requests[-1]["If-None-Match"] == etag


@pytest.mark.parametrize("etag", ['"b1"', None], ids=["etag-304", "same-body-hash"])
def test_a_stale_attempt_whose_feed_is_unchanged_leaves_the_job_to_its_successor(
        db, fast_retries, served, etag):  # noqa: F811
    """A feed worker that stalled was taken over (attempt 2 runs the job); resumed, its
    attempt 1 found the feed unchanged and finished the job `succeeded` under attempt 2,
    whose run then settled nothing. Now a job is finished only by its running attempt: the
    stale one leaves it as it is."""
    server = served(csv_body(good_rows()), etag=etag)
    d = dealer(db, feed_url=server.url)
    assert ingest(db, d).state == "succeeded"
    job, _ = jobs_db.create_or_get_active(db, d.id, "feed", "schedule")
    queue_db.set_message(db, job.id, "scheduled", "m1")
    assert queue_db.claim(db, job.id, "w1:1:T", 60, "m1").attempts == 1
    with db.transaction():  # another worker takes the stale attempt over
        db.execute("UPDATE jobs SET heartbeat_at = now() - interval '1 minute' WHERE id = %s",
                   (job.id,))
        assert queue_db.take_over(db, job.id, "w2:2:T", 30, "m2").attempts == 2
    left = feed_job.run_job(db, job.id, attempt=1)
    assert (left.state, left.attempts, left.worker) == ("running", 2, "w2:2:T"), left.report
    assert left.finished_at is None
    done = feed_job.run_job(db, job.id, attempt=2)  # the running attempt finishes it
    assert done.state == "succeeded" and done.report["unchanged_feed"]


def test_a_cancelled_job_stays_cancelling_whatever_step_it_reaches(db):
    """Found while fixing cancels: run_job's progress(phase="fetching") overwrote 'cancelling', so a
    polling dealer UI saw a cancelled job carry on fetching."""
    job, _ = jobs_db.create_or_get_active(db, dealer(db).id, "feed", "operator")
    jobs_db.start(db, job.id, "test")
    ends_db.request_cancel(db, job.id)
    jobs_db.progress(db, job.id, {"items": 3}, phase="fetching")
    now = jobs_db.get(db, job.id)
    assert now.phase == "cancelling" and now.counters == {"items": 3}


class Turns304:
    """A feed server that serves its body (with an ETag, or none) until `broken` is set, then
    answers HTTP 304 to every request, validators or not."""

    def __init__(self, body: bytes, etag: str | None):
        self.requests: list[dict] = []
        self.broken = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(dict(self.headers))
                if server.broken:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                if etag:
                    self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/feeds/inventory.csv"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("case", ["never-fetched", "body-hash-only", "force"])
def test_a_304_to_a_request_without_validators_fails_the_job_not_unchanged(
        db, fast_retries, case):  # noqa: F811
    """No validators were sent (none stored, only a body hash stored, or --force): a 304
    is the server's error. Retried within the fetch, then the job fails Transient."""
    from jobs.outcome import TRANSIENT, classify_settled

    server = Turns304(csv_body(good_rows()), etag=None if case == "body-hash-only" else '"b1"')
    try:
        d = dealer(db, feed_url=server.url)
        if case != "never-fetched":  # a good run first: its validators are stored
            assert ingest(db, d).state == "succeeded"
            assert validators(db, d)["body_sha256"]
        server.broken = True
        tries = len(server.requests)
        job = ingest(db, d, force=case == "force")
    finally:
        server.close()
    assert job.state == "failed" and job.error_kind == "Transient", job.report
    assert "answered HTTP 304 Not Modified to a request without If-None-Match" in job.error
    assert not (job.report or {}).get("unchanged_feed")
    assert classify_settled(job) == TRANSIENT  # the job layer retries it later
    sent = server.requests[tries:]
    assert len(sent) == get_settings().feed_fetch_attempts  # retried within the fetch
    assert all("If-None-Match" not in r and "If-Modified-Since" not in r for r in sent)


def test_a_304_to_a_request_with_validators_is_still_unchanged(
        db, fast_retries):  # noqa: F811
    server = Turns304(csv_body(good_rows()), etag='"b1"')
    try:
        d = dealer(db, feed_url=server.url)
        assert ingest(db, d).state == "succeeded"
        server.broken = True
        job = ingest(db, d)
    finally:
        server.close()
    assert job.state == "succeeded" and job.report["note"] == "feed unchanged (HTTP 304)"
    assert server.requests[-1]["If-None-Match"] == '"b1"' and len(server.requests) == 2
