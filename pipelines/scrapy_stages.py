"""The pipeline stages wrapped once as a Scrapy item pipeline.

Items are buffered and handed to `pipelines.run` in batches, so a crawl runs exactly the
stages a feed runs. The run is closed when the spider closes, with the close reason and the
spider's page problems deciding whether it was complete. Pages read after rendering in the
headless browser are counted (`counters["rendered"]`) and listed (`report["rendered_pages"]`).

A batch whose write fails (a deadlock victim, a lost connection) stops the crawl: its
vehicles were neither stored nor seen, so the run is not judged (it would remove them) but
given up, and the job fails as transient, to be retried. A batch refused because the run's
attempt was taken over (its worker stalled past the stale limit, and another runs the job
now) stops the crawl too, with one log line, and settles nothing: the job is the other
attempt's (the stat TAKEN_OVER_STAT tells crawler.crawl_process to exit non-zero).
"""

from __future__ import annotations

import logging

from scrapy import signals
from scrapy.exceptions import NotConfigured

from crawler.config import get_settings
from crawler.db import connect
from crawler.db import jobs as jobs_db
from crawler.errors import NoChromium, TakenOver
from crawler.models import VehicleItem
from pipelines import run as run_mod

log = logging.getLogger(__name__)
STORE_FAILED = "store_failed"  # the close reason of a crawl stopped by a failed write
TAKEN_OVER = "taken_over"  # the close reason of a crawl whose attempt was taken over
TAKEN_OVER_STAT = "forecourt/taken_over"  # its one line (crawler stats), set when it was


class StorePipeline:
    """Runs normalize, validate, vin, dedup, quality and store over batches of items."""

    def __init__(self, crawler, job_id: int, dealership_id: int, batch_size: int):
        self.crawler = crawler
        self.job_id = job_id
        self.dealership_id = dealership_id
        self.batch_size = batch_size
        self.buffer: list[VehicleItem] = []
        self.run: run_mod.Run | None = None
        self.report: dict | None = None
        self.failure: str | None = None  # why a batch could not be stored
        self.taken_over = False  # a batch was refused: the job runs as another attempt now
        self.ticker = None  # records live progress while the crawl runs

    @classmethod
    def from_crawler(cls, crawler):
        job_id = crawler.settings.getint("FORECOURT_JOB_ID")
        dealership_id = crawler.settings.getint("FORECOURT_DEALERSHIP_ID")
        if not job_id or not dealership_id:
            raise NotConfigured("no FORECOURT_JOB_ID: items are not stored")
        batch_size = crawler.settings.getint("FORECOURT_BATCH_SIZE", get_settings().batch_size)
        pipeline = cls(crawler, job_id, dealership_id, batch_size)
        # the attempt the worker claimed (crawler.crawl_process): its run is fenced by it
        pipeline.attempt = crawler.settings.getint("FORECOURT_JOB_ATTEMPT") or None
        crawler.signals.connect(pipeline.spider_closed, signal=signals.spider_closed)
        return pipeline

    def open_spider(self, spider=None):
        from twisted.internet import task

        conn = connect()
        self.run = run_mod.open_run(conn, self.dealership_id, self.job_id, "crawl",
                                    attempt=getattr(self, "attempt", None))
        run_mod.report_progress(self.run, phase="crawling", force=True)
        self.ticker = task.LoopingCall(self._live_progress)
        self.ticker.start(run_mod.PROGRESS_EVERY_S, now=False)

    def _live_progress(self) -> None:
        """Pages read and items found so far, on the job every PROGRESS_EVERY_S: a crawl
        below one batch (most dealers) stores nothing until it ends, and its job showed
        "pages 0 items 0" all along."""
        if self.run is None or self.failure is not None:
            return
        try:
            self._count_pages()
            run_mod.report_progress(self.run, waiting=len(self.buffer))
        except Exception:  # noqa: BLE001 - a live figure is not worth stopping the crawl
            log.warning("could not record the crawl's progress", exc_info=True)

    def _stop_ticker(self) -> None:
        ticker, self.ticker = self.ticker, None
        if ticker is not None and ticker.running:
            ticker.stop()

    def process_item(self, item, spider=None):
        if isinstance(item, VehicleItem):
            self.buffer.append(item)
            if len(self.buffer) >= self.batch_size:
                self._flush()
        return item

    def _flush(self, closing: bool = False) -> None:
        if self.failure is not None:  # the run is given up: nothing more is stored
            self.buffer.clear()
            return
        if self.buffer and self.run is not None:
            batch, self.buffer = self.buffer, []
            self._count_pages()
            try:
                run_mod.process(self.run, batch)
            except TakenOver as exc:  # not ours to store, judge or settle any more
                self.failure, self.taken_over = str(exc), True
                line = f"{exc}: stopping"
                self.crawler.stats.set_value(TAKEN_OVER_STAT, line)
                log.warning("%s", line)
                if not closing:
                    self._stop(TAKEN_OVER)
            except Exception as exc:  # noqa: BLE001 - the run is given up, the job failed
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                self.failure = f"storing a batch failed: {type(exc).__name__}: {first}"[:500]
                log.exception("storing a batch of %d items failed: the crawl stops",
                              len(batch))
                if not closing:
                    self._stop(STORE_FAILED)

    def _stop(self, reason: str) -> None:
        """Close the spider (`reason`): what it would crawl next is not stored."""
        from scrapy.utils.defer import deferred_from_coro

        engine = self.crawler.engine
        if hasattr(engine, "close_spider_async"):  # Scrapy 2.14+
            deferred_from_coro(engine.close_spider_async(reason=reason))
        else:
            engine.close_spider(self.crawler.spider, reason)

    def _count_pages(self) -> None:
        """Pages fetched, and of them the ones read after rendering in the browser."""
        assert self.run is not None
        self.run.counters["pages"] = self._stat("response_received_count")
        rendered = self._stat("forecourt/rendered/pages")
        if rendered:
            self.run.counters["rendered"] = rendered

    def _stat(self, name: str) -> int:
        return int(self.crawler.stats.get_value(name, 0) or 0)

    def spider_closed(self, spider, reason):
        assert self.run is not None
        self._stop_ticker()
        self._flush(closing=True)
        run = self.run
        if self.taken_over:  # nothing to settle: the job is its current attempt's
            run_mod.abandon(run)
            run.conn.close()
            return
        if self.failure is not None:
            self._give_up(run)
            return
        self._count_pages()
        problems = list(getattr(spider, "problems", []))
        errors = sum(int(v) for k, v in self.crawler.stats.get_stats().items()
                     if k.startswith("spider_exceptions/") and isinstance(v, int))
        if errors:
            problems.append(f"{errors} page(s) raised errors while parsing")
        complete = reason == "finished" and not getattr(spider, "incomplete", False)
        run_mod.report_progress(run, phase="settling", force=True)
        report = run_mod.close(run, complete=complete, problems=problems)
        report["close_reason"] = reason
        if report["state"] == run_mod.SUPERSEDED:  # the job's current attempt settles it
            attempt = run.attempt[0] if run.attempt else "?"
            line = (f"job {run.job_id} attempt {attempt} was taken over before it settled: "
                    "stopping")
            self.crawler.stats.set_value(TAKEN_OVER_STAT, line)
            log.warning("%s", line)
            self.report = report
            run.conn.close()
            return
        rendered = list(getattr(spider, "rendered_pages", []))
        if rendered:  # which pages needed the headless browser (the first 100)
            report["rendered_pages"] = rendered
        ok = report["state"] == "succeeded"
        kind = None if ok else report["state"]
        if report["state"] == "failed" and getattr(spider, "misconfigured", False):
            kind = "permanent"  # e.g. no Chromium: every retry here would fail the same way
            if getattr(spider, "lacks_chromium", False):  # a worker that has it may not
                kind = f"permanent:{NoChromium.__name__}"  # jobs.outcome.NO_CHROMIUM
        jobs_db.finish(run.conn, run.job_id, report["state"], counters=report["counters"],
                       verdict=report["verdict"], report=report,
                       error=None if ok else ("; ".join(report["reasons"]) or None),
                       error_kind=kind, attempt=_running(run))
        self.report = report
        run.conn.close()

    def _give_up(self, run: run_mod.Run) -> None:
        """A batch was not stored: remove nothing, and fail the job as transient (retried).
        If the database is out of reach even for that, the child exits with the job still
        running, and its worker settles it as a crash (retried too)."""
        self._count_pages()
        try:
            if run_mod.give_up(run):  # (else another attempt holds the job now)
                jobs_db.finish(run.conn, run.job_id, "failed", counters=dict(run.counters),
                               error=self.failure, error_kind="transient",
                               attempt=_running(run))
        finally:
            run.conn.close()


def _running(run: run_mod.Run) -> int | None:
    """The run's attempt, to finish the job only while that attempt runs it (a take-over
    between the run's settling and its finish leaves the job to its new attempt)."""
    return run.attempt[0] if run.attempt and run.attempt[1] == "running" else None
