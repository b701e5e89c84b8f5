"""What the API accepts and answers: the public records, independent of the table layout."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from crawler.config import get_settings
from crawler.models import Job, JobKind, JobState, JobTrigger, TokenRole
from jobs import outcome, queues
from jobs.api.redact import hide_in_errors, hide_infrastructure

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_ID = 2**63 - 1  # ids are bigint
# Report entries about other dealerships (how many of their vehicles a run re-flagged as
# cross-dealer duplicates): for operator tokens only.
OPERATOR_ONLY_REPORT = frozenset({"cross_dealer_updated"})


def _settling_s() -> float:
    """How long a failure is shown settling at most: twice the reaper's delay (it acts on a
    dead worker's job once the failure is that old, on its next pass, every quarter of it)."""
    return 2 * get_settings().job_reap_after_s


def settles_at(job: Job) -> datetime | None:
    """When a failed job shown running, settling (JobSummary.of) is shown as it is, failed,
    without a change to its record. None for a job not shown settling on a clock."""
    return outcome.settling_ends(job, _settling_s())


def version_of(job: Job, now: datetime | None = None) -> int:
    """The job's version as shown at `now`: its updated_at in microseconds (moves on every
    change), or, once a job shown settling is shown failed (settles_at), that moment: the
    body changed without a write, and a poller waiting with `since` must see it. Later
    reads of the same record give the same version."""
    stamp = job.updated_at or job.created_at
    shown_failed = settles_at(job)
    if shown_failed is not None and shown_failed <= (now or datetime.now(UTC)):
        stamp = max(stamp, shown_failed)
    return (stamp - _EPOCH) // timedelta(microseconds=1)


class TriggerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: JobKind = Field(description="crawl the dealer's website, or ingest its feed")


class JobSummary(BaseModel):
    """A job as listed: state, phase, live counters, timestamps, verdict, error."""

    id: int
    dealership: str = Field(description="the dealership's slug")
    kind: JobKind
    trigger: JobTrigger
    state: JobState
    phase: str | None = Field(default=None, description="what the job is doing: null (queued, "
                              "never started), `retrying` (queued for another attempt), "
                              "`starting`, `fetching` (a feed's download), `crawling`, "
                              "`ingesting`, `settling` (an attempt ending), `cancelling` (a "
                              "cancel was asked), `done` (ended); show any other as it is")
    attempts: int
    counters: dict[str, int]
    verdict: str | None = Field(default=None, description="quality verdict of the latest "
                                "attempt: healthy, degraded or failed; none while an "
                                "attempt runs")
    error: str | None = Field(default=None, description="why the latest attempt failed; "
                              "none while an attempt runs (earlier attempts': `errors`)")
    error_kind: str | None = Field(default=None, description="the class of `error`, one word "
                                   "(e.g. `transient`, `abandoned`: its worker was lost, "
                                   "`cancelled`, `enqueue`: the job queue refused it)")
    cancel_requested: bool = False
    waiting_for: str | None = Field(default=None, description="what a queued job waits for "
                                    "besides a free worker: `a worker with Chromium` while a "
                                    "crawl that must render pages waits on a render queue "
                                    "for one; null otherwise")
    replayed_as: int | None = Field(default=None, description="the job a dead job was "
                                    "replayed as")
    created_at: datetime
    started_at: datetime | None = None
    heartbeat_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime
    version: int = Field(description="changes whenever the job as shown does (a failure "
                                     "shown settling, then failed, included), not between "
                                     "changes; pass it as `since` to wait for the next change")

    @classmethod
    def of(cls, job: Job, slug: str, *, role: TokenRole, now: datetime | None = None,
           **extra: Any):
        """The job as `role` may see it at `now`: a dealer's view of an error names our
        database and queue, not their addresses (jobs/api/redact.py). A failed attempt its
        worker is about to act on (retry, bury, end cancelled, hand on: outcome.settling), a
        moment later, is not the job's end: shown still running, settling, until settles_at.
        A poller that took it for the end would stop at `failed` and miss the retry or the
        dead letter."""
        state, phase, finished_at = job.state, job.phase, job.finished_at
        now = now or datetime.now(UTC)
        if outcome.settling(job, _settling_s(), now):
            state, finished_at = "running", None
            phase = "cancelling" if job.cancel_requested_at is not None else "settling"
        return cls(
            id=job.id, dealership=slug, kind=job.kind, trigger=job.trigger, state=state,
            phase=phase, attempts=job.attempts, counters=job.counters, verdict=job.verdict,
            error=job.error if role == "operator" else hide_infrastructure(job.error),
            error_kind=job.error_kind,
            cancel_requested=getattr(job, "cancel_requested_at", None) is not None,
            waiting_for=queues.waiting_for(job) if state == "queued" else None,
            replayed_as=getattr(job, "replayed_as", None),
            created_at=job.created_at, started_at=job.started_at,
            heartbeat_at=job.heartbeat_at, finished_at=finished_at,
            updated_at=job.updated_at or job.created_at, version=version_of(job, now),
            **extra)


class JobDetail(JobSummary):
    """One job in full: adds the run's quality report, the error history and the worker."""

    report: dict[str, Any] | None = Field(default=None, description="the run's quality "
                                          "report: verdict, reasons and figures")
    errors: list[Any] = Field(default_factory=list, description="the error of every attempt that "
                              "ended with one, oldest first: `{attempt, at, kind, error}`")
    worker: str | None = None

    @classmethod
    def of(cls, job: Job, slug: str, *, role: TokenRole, now: datetime | None = None,
           **extra: Any):
        """The job as `role` may see it: a dealer's view of the report leaves out figures
        about other dealerships, its errors our infrastructure's addresses, and the worker
        (a host and pid of ours)."""
        report, errors, worker = job.report, job.errors, job.worker
        if role != "operator":
            if report is not None:
                report = {k: v for k, v in report.items() if k not in OPERATOR_ONLY_REPORT}
            errors, worker = hide_in_errors(errors), None
        return super().of(job, slug, role=role, now=now, report=report, errors=errors,
                          worker=worker, **extra)


class JobPage(BaseModel):
    items: list[JobSummary]
    next_cursor: str | None = Field(default=None, description="pass as `cursor` for the "
                                    "next (older) page; null on the last page")


MAX_DEAD_LETTERS = 200  # listed at most, newest first


class DeadLetters(BaseModel):
    items: list[JobDetail] = Field(description=f"the newest {MAX_DEAD_LETTERS} at most, "
                                   "newest first")
    more: bool = Field(default=False, description="the dealership has older dead letters "
                       "than those listed (replay or purge some to see them)")


class LastRun(BaseModel):
    job_id: int
    kind: JobKind
    finished_at: datetime | None = None
    verdict: str | None = None
    counters: dict[str, int]


class Quality(BaseModel):
    avg_score: float | None = Field(default=None, description="mean quality score (0-100) of "
                                    "active vehicles")
    min_score: int | None = None
    flagged_vehicles: int = Field(description="active vehicles with quality flags")
    placeholder_vins: int = Field(description="active vehicles without a real VIN")
    last_run_rejects: int = Field(description="items the last successful run rejected")
    last_run_verdict: str | None = None


class Inventory(BaseModel):
    dealership: str
    name: str
    active_vehicles: int
    removed_vehicles: int
    last_successful_run: LastRun | None = None
    quality: Quality


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)


MAX_CURSOR = 64  # ours are at most 27 characters ("j" and 19 digits, base64)


def encode_cursor(job_id: int) -> str:
    return base64.urlsafe_b64encode(f"j{job_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """The id a cursor stands for, or None when it is not one of ours."""
    if len(cursor) > MAX_CURSOR:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    digits = raw[1:]
    # ASCII digits only (str.isdigit() also takes '²' and other scripts' digits), and an id
    # that fits the bigint it is compared with.
    if raw[:1] != "j" or not 1 <= len(digits) <= 19 or not digits.isascii() \
            or not digits.isdigit():
        return None
    value = int(digits)
    return value if value <= MAX_ID else None
