"""Entry point of a crawl's child process: `python -m crawler.crawl_process JOB_ID [ATTEMPT]`.

Scrapy's reactor cannot be restarted inside a process, so every crawl runs here, alone. The
store pipeline settles the run and the job record; this module only starts the crawl.
"""

from __future__ import annotations

import gc
import os
import sys

os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "crawler.settings")

# The exit status of a crawl stopped because its attempt was taken over by another (its
# worker stalled past the stale limit): it stored nothing after and settled nothing, and
# its log's last words say so ("job N attempt A was taken over by attempt B: stopping").
TAKEN_OVER_EXIT = 3


def main(argv: list[str]) -> int:
    from scrapy.crawler import CrawlerProcess
    from scrapy.utils.project import get_project_settings

    from crawler.db import connect
    from crawler.db import dealers as dealers_db
    from crawler.db import jobs as jobs_db
    from spiders.registry import spider_for

    job_id = int(argv[1])
    # the attempt its worker claimed (`crawler.crawl_process JOB_ID ATTEMPT`), not the one
    # the job's row says when this child gets to read it (another worker's, after a take-over)
    attempt = int(argv[2]) if len(argv) > 2 else None
    with connect() as conn:
        job = jobs_db.get(conn, job_id)
        dealer = dealers_db.get_by_id(conn, job.dealership_id)
    if attempt is not None and (job.attempts, job.state) != (attempt, "running"):
        # its worker stalled while this child started and another took the attempt over
        # (or it ended): the crawl is that one's now, and nothing here is written
        print(f"job {job_id} attempt {attempt} is no longer running (the job is {job.state}, "
              f"attempt {job.attempts}): not crawled", flush=True)
        return 0
    url = job.params.get("url") or dealer.website_url
    platform = job.params.get("platform") or dealer.platform
    from crawler import logging as fc_logging
    from crawler import netguard
    from crawler.errors import ForecourtError, Transient, UnsafeURL, describe

    # JSON (or text) lines carrying this job's ids, secrets redacted (crawler/logging.py).
    fc_logging.configure(static={"job_id": job_id, "dealership_id": dealer.id,
                                "dealer": dealer.slug})
    try:  # a dealer URL that points at a forbidden address never starts a crawl
        netguard.check_url(url or "")
    except UnsafeURL as exc:
        with connect() as conn:
            jobs_db.finish(conn, job_id, "failed", counters=job.counters, error=describe(exc),
                           error_kind="unsafe_url", attempt=attempt)
        return 0
    try:  # a dealer misconfigured (no spider for its platform, say) never starts a crawl
        spider = spider_for(platform)
        settings = get_project_settings()
        settings.set("FORECOURT_JOB_ID", job_id)
        if attempt is not None:
            settings.set("FORECOURT_JOB_ATTEMPT", attempt)
        settings.set("FORECOURT_DEALERSHIP_ID", dealer.id)
        for key, value in (dealer.settings.get("scrapy") or {}).items():
            settings.set(key, value, priority="spider")
        settings.set("LOG_INSTALL_ROOT_HANDLER", False)  # fc_logging's handler is the root's
    except ForecourtError as exc:
        # Settled here, not left to the parent as a "crash": a retry would meet the same
        # configuration (jobs/outcome.py reads error_kind "permanent" as not worth retrying).
        with connect() as conn:
            jobs_db.finish(conn, job_id, "failed", counters=job.counters, error=describe(exc),
                           error_kind="transient" if isinstance(exc, Transient)
                           else "permanent", attempt=attempt)
        return 0
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(spider)
    process.crawl(crawler, url=url, dealer_settings=dealer.settings)
    # What is loaded by now (modules, settings, the engine) lives as long as the crawl: out
    # of the collector's way, the VIN decoder's cold start alone is ~0.1 s quicker (measured).
    gc.freeze()
    process.start()
    from pipelines.scrapy_stages import TAKEN_OVER_STAT

    return TAKEN_OVER_EXIT if crawler.stats.get_value(TAKEN_OVER_STAT) else 0


if __name__ == "__main__":
    status = main(sys.argv)
    # The crawl is settled. Freezing what is left spares the interpreter's last garbage
    # collections over every object Scrapy, the stages and the VIN decoder's caches hold:
    # about 0.2 s of every crawl's exit (measured), which the caller waits for.
    gc.freeze()
    sys.exit(status)
