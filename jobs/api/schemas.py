"""What the API accepts and answers: the public records, independent of the table layout."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from crawler.config import get_settings
from crawler.models import Job, JobKind, JobState, JobTrigger, TokenRole
from jobs import outcome, queues
from jobs.api.redact import hide_in_errors, hide_infrastructure

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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

    id: str = Field(description="the job's id: an opaque string (today a UUID), stable for "
                    "the job's life; compare it as a whole, never order by it")
    number: int | None = Field(default=None, description="operator tokens only (null for "
                               "dealer tokens): the job's number, as the CLI and logs "
                               "name it")
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
    replayed_as: str | None = Field(default=None, description="the id of the job a dead "
                                    "job was replayed as")
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
            id=str(job.public_id), number=job.id if role == "operator" else None,
            dealership=slug, kind=job.kind, trigger=job.trigger, state=state,
            phase=phase, attempts=job.attempts, counters=job.counters, verdict=job.verdict,
            error=job.error if role == "operator" else hide_infrastructure(job.error),
            error_kind=job.error_kind,
            cancel_requested=getattr(job, "cancel_requested_at", None) is not None,
            waiting_for=queues.waiting_for(job) if state == "queued" else None,
            replayed_as=public_id_of_replay(job),
            created_at=job.created_at, started_at=job.started_at,
            heartbeat_at=job.heartbeat_at, finished_at=finished_at,
            updated_at=job.updated_at or job.created_at, version=version_of(job, now),
            **extra)


def public_id_of_replay(job: Job) -> str | None:
    """The id of the job `job` was replayed as, as the API names it. Its number is never
    shown: if the read did not join the new job's public id (it was pruned), none."""
    found = job.replayed_as_public_id
    return str(found) if job.replayed_as is not None and found is not None else None


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
    job_id: str = Field(description="the job's id (an opaque string)")
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


MAX_CURSOR = 64  # ours are 22 characters


def parse_public_id(text: str) -> uuid.UUID | None:
    """The public id a path or cursor names, or None when it is not one (answered exactly
    as an unknown one is)."""
    if len(text) > MAX_CURSOR:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def encode_cursor(public_id: uuid.UUID) -> str:
    """An opaque cursor: the public id of the page's last job, as 16 bytes in base64url.
    It carries no job number (keyset paging resolves it to one server-side)."""
    return base64.urlsafe_b64encode(public_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID | None:
    """The public id a cursor stands for, or None when it is not one of ours."""
    if len(cursor) != 22:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "==")
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 16 or encode_cursor(uuid.UUID(bytes=raw)) != cursor:
        return None  # not canonical: one id, one cursor
    return uuid.UUID(bytes=raw)
