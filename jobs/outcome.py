"""Whether a failed attempt is worth retrying: the actors' error classes.

Transient: network errors, 5xx, timeouts of a request, lost database or Redis connections, a
crawl child that crashed. Permanent: a site that is gone (404/410 listings), blocked, a feed
that does not parse, a dealer misconfigured (crawler.errors.Permanent, InvalidInput,
NotFound, ConfigError; a website URL netguard refuses), a crawl past its time limit.
Anything unexpected is retried: after the last attempt it is a dead letter, which is where an
operator looks at it.

A crawl whose listing pages need a Chromium its worker lacks (error kind NO_CHROMIUM) is
permanent on that worker only: while a worker that has Chromium is alive it goes to the render
queue and waits there for one (jobs/failures.py, jobs/queues.py), or, while only workers of a
release without render queues have Chromium, is handed on through its own queue up to
MAX_CHROMIUM_HANDOFFS times; those attempts are not retries and do not use up
`job_max_attempts`.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta

from crawler.errors import (
    ConfigError,
    InvalidInput,
    NoChromium,
    NotFound,
    Permanent,
    Transient,
)
from crawler.models import Job

TRANSIENT = "transient"
PERMANENT = "permanent"
# A crawl failed only for want of Chromium on its worker (pipelines.scrapy_stages sets it).
NO_CHROMIUM = f"{PERMANENT}:{NoChromium.__name__}"
MAX_CHROMIUM_HANDOFFS = 5  # through its own queue, to a release without render queues

# Spider problems that a later attempt may not meet: a listing page that failed at the
# network level or answered 5xx (crawler.spider.DealerSpider.listing_failed).
_TRANSIENT_PROBLEM = re.compile(
    r"listing page \S+ failed:|HTTP 5\d\d|non-200|timed? ?out|refused|connection|DNS",
    re.I)


def classify_exception(exc: BaseException) -> str:
    """The class of an exception raised while running an attempt."""
    if isinstance(exc, Transient):
        return TRANSIENT
    if isinstance(exc, (Permanent, InvalidInput, NotFound)):
        return PERMANENT
    if isinstance(exc, ConfigError):
        # "cannot connect to PostgreSQL" is a lost connection; other config errors are not.
        return TRANSIENT if "cannot connect" in str(exc) else PERMANENT
    return TRANSIENT  # network, OS, database, Redis errors, bugs: retried, then dead


def classify_settled(job: Job) -> str | None:
    """For a job its attempt settled: None when it needs nothing more, else the error class
    of its failure."""
    if job.state != "failed":
        return None
    kind = job.error_kind or ""
    if kind in ("crash", "abandoned", TRANSIENT) or kind.startswith("transient"):
        return TRANSIENT
    # unsafe_url: netguard refused the dealer's own URL (crawler.crawl_process); its message
    # says "refused", which must not read as a refused connection below.
    # superseded: its retry was refused for the dealership's newer active job
    if kind in ("timeout", "cancelled", "unsafe_url", "superseded", PERMANENT) \
            or kind.startswith("permanent"):
        return PERMANENT
    if job.kind == "feed":  # ingest.feed_job.run_job records the exception's class name
        return TRANSIENT if kind in ("Transient", "OperationalError") else PERMANENT
    reasons = [r for r in (job.report or {}).get("reasons") or [job.error or ""]
               if not r.startswith("warning: ")]  # reported only: never the cause
    if any(r.startswith("not_found") for r in reasons):
        return PERMANENT
    if any(_TRANSIENT_PROBLEM.search(r) for r in reasons):
        return TRANSIENT
    return PERMANENT


def awaiting_worker(job: Job) -> bool:
    """Whether a `failed` job is failed only until its worker acts on it: a queued job's
    attempt is settled by the crawl child or the feed loop, and the worker then, within a
    heartbeat or two, requeues it (a transient failure with attempts left), buries it (dead)
    or ends it cancelled (jobs.failures.after_failure). A follower (`crawl --queue --wait`,
    `jobs show --follow`) must not report that moment as the end. A job run at the terminal
    (`forecourt crawl`, `ingest`: never queued) has no worker to act on it."""
    if job.state != "failed" or job.queue is None or job.attempts < 1:
        return False
    return job.cancel_requested_at is not None or classify_settled(job) == TRANSIENT \
        or needs_chromium(job)


def undecided(job: Job) -> bool:
    """Whether a `failed` job awaits its worker's decision (awaiting_worker) that may still
    come: not when it was replayed (the replay runs instead)."""
    return awaiting_worker(job) and getattr(job, "replayed_as", None) is None


def settling(job: Job, reap_after_s: float, now: datetime | None = None) -> bool:
    """Whether a `failed` job is shown as not yet ended (the API: running, settling): it
    awaits its worker (awaiting_worker), was not replayed, and failed less than
    `reap_after_s` ago. Past that the reaper would have acted for a dead worker; a job still
    failed then stays so (its retry was refused for a newer active job of the dealer, or no
    worker runs), and is shown as it is."""
    if not undecided(job):
        return False
    if job.finished_at is None:
        return True
    now = now or datetime.now(UTC)
    return (now - job.finished_at).total_seconds() < reap_after_s


def settling_ends(job: Job, reap_after_s: float) -> datetime | None:
    """When a job `settling` shows not yet ended will be shown as it is, unless its worker
    acts first: `reap_after_s` after it failed. None for a job not shown so on a clock."""
    if not undecided(job) or job.finished_at is None:
        return None
    return job.finished_at + timedelta(seconds=reap_after_s)


def owed_by_its_worker(job: Job) -> bool:
    """Whether a failed job awaiting its worker (awaiting_worker) is owed what only a dead
    worker would fail to record: a retry, a burial or its cancelled end (so the reaper,
    which cannot tell a dead worker from a slow one but by time, may act for it). Not a
    hand-on for want of Chromium: a live worker leaves such a job failed when no worker that
    has Chromium takes its queue, which the record does not tell from its death. (A
    redelivered message knows its worker died, and hands such a job on.)"""
    return awaiting_worker(job) and (job.cancel_requested_at is not None
                                     or not needs_chromium(job))


def chromium_handoffs(job: Job) -> int:
    """How many of the job's attempts failed for want of Chromium on their worker."""
    return sum(1 for e in job.errors if isinstance(e, dict) and e.get("kind") == NO_CHROMIUM)


def needs_chromium(job: Job) -> bool:
    """Whether a job's attempt failed only for want of Chromium on its worker, and its worker
    has not yet decided where it goes (a crawl it does not hand on ends plain permanent)."""
    return job.state == "failed" and job.error_kind == NO_CHROMIUM


def may_hand_on(job: Job) -> bool:
    """Whether a failed crawl may go back on its own queue for a worker that has Chromium
    (of a release without render queues): its last attempt failed for want of it, and at
    most MAX_CHROMIUM_HANDOFFS attempts have."""
    return needs_chromium(job) and chromium_handoffs(job) <= MAX_CHROMIUM_HANDOFFS


def retries_used(job: Job) -> int:
    """The attempts that count against `job_max_attempts`: all but those handed on for want
    of Chromium (the worker lacked it, the job did not fail)."""
    return job.attempts - chromium_handoffs(job)


def backoff_s(attempt: int, minimum: float, maximum: float) -> float:
    """Exponential backoff with full jitter over the upper half: attempt 1 waits about
    `minimum`, each further attempt twice as long, never past `maximum`."""
    ceiling = min(maximum, minimum * 2 ** max(0, attempt - 1))
    return ceiling / 2 + random.random() * ceiling / 2
