"""A feed job, end to end: fetch its feed (or take its file), end it at once when the feed
is unchanged since the last run that succeeded, run the feed loop (ingest/feed.py) on the
rest, and settle the job's record.

A feed is "unchanged" against the validators (ETag, Last-Modified, body hash) its last
successful run recorded (crawler/db/feeds.py), and only under the same fingerprint: the
mapping, the format and ingest/feed.py's PIPELINE_VERSION (feed_fingerprint).
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from crawler.db import feeds as feeds_db
from crawler.db import jobs as jobs_db
from crawler.errors import ForecourtError, Permanent, TakenOver, describe
from crawler.logging import redact
from crawler.models import Job
from ingest import feed as feed_mod
from ingest import workers
from pipelines import run as run_mod

log = logging.getLogger(__name__)


@contextmanager
def _few_collections() -> Iterator[None]:
    """Run the feed loop with the cyclic garbage collector mostly out of the way.

    See workers.GC_THRESHOLDS (the stage workers run the same way). Objects that exist
    before the run are frozen out of its scans; the thresholds are restored after."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*workers.GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def feed_fingerprint(fmt: str | None, mapping: dict[str, Any] | None) -> str:
    """What a feed body's result depends on besides its bytes: PIPELINE_VERSION, the format
    and the mapping in use (as given: the dealer's or an override; None detects them). Kept
    beside a feed's validators: a feed is "unchanged" only under the same fingerprint."""
    text = json.dumps([feed_mod.PIPELINE_VERSION, (fmt or "").lower() or None, mapping],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def run_job(conn: psycopg.Connection, job_id: int, source: str | Path | None = None, *,
            fmt: str | None = None, mapping: dict[str, Any] | None = None,
            on_batch: Callable[[dict[str, int]], None] | None = None,
            force: bool = False, check_stop: Callable[[], None] | None = None,
            attempt: int | None = None) -> Job:
    """Run a started feed job to its end and settle its record; returns the job.

    `source` is a file path or an http(s) URL (default: the dealership's feed_url); `fmt`
    and `mapping` default to the dealership's feed_format and feed_mapping. A URL whose
    server answers 304, or whose body is byte-identical to the last one processed, ends the
    job succeeded with the note "feed unchanged" and removes nothing; that holds only
    against the validators of the last run that *succeeded*, recorded under the same
    mapping, format and PIPELINE_VERSION (feed_fingerprint). A run clears the stored
    validators before it writes anything, so one that fails, ends partial or dies midway
    leaves the next fetch to process its body (a restored earlier body included). `force`
    ignores the stored validators: the feed is fetched and processed whatever they say.
    A job whose cancel was requested by the time its feed proves unchanged ends cancelled.

    `check_stop` is called as the download goes (see fetch.fetch): what it raises abandons
    the fetch and leaves this function, for the caller to settle the job. `attempt`: the
    one its worker claimed; taken over by another (its worker stalled), the run writes
    nothing more and the job is left to the attempt that runs it now.
    """
    from crawler.db import dealers as dealers_db
    from ingest import fetch as fetch_mod

    job = jobs_db.get(conn, job_id)
    dealer = dealers_db.get_by_id(conn, job.dealership_id)
    source = str(source or dealer.feed_url or "")
    fmt = fmt or dealer.feed_format
    mapping = mapping if mapping is not None else dealer.feed_mapping
    fingerprint = feed_fingerprint(fmt, mapping)
    fetched = None
    try:
        if not source:
            raise Permanent(f"dealership {dealer.slug!r} has no feed",
                                    hint="pass a file or URL, or set the dealer's feed URL")
        if source.startswith(("http://", "https://")):
            jobs_db.progress(conn, job_id, {}, phase="fetching",
                             attempt=None if attempt is None else (attempt, "running"))
            previous = None if force else feeds_db.get(conn, dealer.id, source, fingerprint)
            fetched = fetch_mod.fetch(source, previous, check_stop=check_stop)
            if fetched.unchanged:
                note = ("feed unchanged (HTTP 304)" if fetched.status == 304
                        else "feed unchanged (same content as the last run)")
                report = {"note": note, "unchanged_feed": True, "removed": 0,
                          "fetch": {"status": fetched.status, "attempts": fetched.attempts}}
                counters = {"fetch_attempts": fetched.attempts}
                if jobs_db.get(conn, job_id).cancel_requested_at is not None:
                    return jobs_db.finish(conn, job_id, "cancelled", counters=counters,
                                          report=report, error="cancelled while running",
                                          error_kind="cancelled", attempt=attempt)
                feeds_db.touch(conn, dealer.id)
                return jobs_db.finish(conn, job_id, "succeeded", counters=counters,
                                      report=report, attempt=attempt)
            path: str | Path = fetched.path
        else:
            path = source[len("file://"):] if source.startswith("file://") else source
        # From here on the dealer's vehicles may be written from this body: the stored
        # validators describe them only again if this run succeeds (recorded below).
        feeds_db.forget(conn, dealer.id, job_id)
        with _few_collections():
            report = feed_mod.ingest(conn, dealer.id, job_id, path, fmt=fmt,
                                     mapping=mapping, on_batch=on_batch, attempt=attempt)
    except TakenOver as exc:  # another attempt runs the job now: it is that one's to settle
        log.warning("%s: stopping", exc)
        return jobs_db.get(conn, job_id)
    except (ForecourtError, OSError, ValueError) as exc:
        job = jobs_db.get(conn, job_id)
        return jobs_db.finish(conn, job_id, "failed", counters=job.counters,
                              error=describe(exc), error_kind=type(exc).__name__,
                              attempt=attempt)
    finally:
        if fetched is not None and fetched.path is not None:
            fetch_mod.discard(fetched.path)
    if report["state"] == run_mod.SUPERSEDED:  # the job's current attempt settles it
        return jobs_db.get(conn, job_id)
    ok = report["state"] == "succeeded"
    if fetched is not None:
        # the feed is its URL (credentials hidden, as everywhere it is shown), not the name
        # it was downloaded to; a file inside it (a zip's member) is still named
        feed = report.get("feed") or {}
        if feed.get("file") == fetched.path.name:
            del feed["file"]
        report["feed"] = {"url": redact(source), **feed}
        report["fetch"] = {"status": fetched.status, "attempts": fetched.attempts,
                           "bytes": fetched.body_bytes}
        if force:
            report["fetch"]["forced"] = True
        report["counters"]["fetch_attempts"] = fetched.attempts
        if ok:
            feeds_db.record(conn, dealer.id, source, etag=fetched.etag,
                            last_modified=fetched.last_modified,
                            body_sha256=fetched.body_sha256, body_bytes=fetched.body_bytes,
                            fingerprint=fingerprint, job_id=job_id)
    return jobs_db.finish(conn, job_id, report["state"], counters=report["counters"],
                          verdict=report["verdict"], report=report,
                          error=None if ok else ("; ".join(report["reasons"]) or None),
                          error_kind=None if ok else report["state"], attempt=attempt)
