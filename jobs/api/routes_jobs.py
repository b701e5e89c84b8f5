"""/v1/jobs/{id}: one job (with ETag and long-poll `wait`), cancel, replay."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from crawler.errors import InvalidInput
from crawler.models import ApiToken, Job
from jobs.api import etag
from jobs.api.auth import job_for, may_see, principal, still_valid
from jobs.api.metrics import WAITING
from jobs.api.problems import ApiProblem, responses
from jobs.api.runtime import runtime_of
from jobs.api.schemas import JobDetail, settles_at

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

# Any string: one that is no job's id (malformed or unknown) answers 404 as another
# dealership's job does, never a 422 that would tell them apart.
JobId = Annotated[str, Path(description="the job's id, as the API gave it: an opaque "
                            "string")]
# 503: every route reads the database (the token's record, if nothing else).
# No 422 for a job id: any string is one, unknown or not (404).
_COMMON = responses(401, 404, 429, 503)


def _shown(job: Job, slug: str, token: ApiToken) -> tuple[bytes, int, datetime | None]:
    """The job's body and version as shown now, and when it will be shown otherwise without
    a change to its record (a failure shown settling, then failed: settles_at), if it will."""
    now = datetime.now(UTC)
    detail = JobDetail.of(job, slug, role=token.role, now=now)
    flips = settles_at(job)
    return (detail.model_dump_json().encode(), detail.version,
            flips if flips is not None and flips > now else None)


def _body(job: Job, slug: str, token: ApiToken) -> bytes:
    return _shown(job, slug, token)[0]


def _service():
    from jobs import service  # the job queue's functions, shared with the CLI

    return service


@router.get("/{job_id}", response_model=JobDetail, summary="Get a job",
            responses={**_COMMON, **responses(422), **etag.documented(200),
                       **etag.documented(304, "Not Modified: the job is unchanged "
                                              "(If-None-Match matched)")})
async def get_job(
    request: Request,
    job_id: JobId,
    token: Annotated[ApiToken, Depends(principal)],
    wait: Annotated[float, Query(ge=0, le=30, description="seconds to wait for the job to "
                                 "change (from the If-None-Match ETag or `since`) before "
                                 "answering; 0, or neither of those sent, answers at "
                                 "once")] = 0,
    since: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="the `version` you "
                                       "have; with `wait`, answer when it differs")] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """State, phase, live counters, timestamps, quality verdict and error of one job.

    Poll cheaply: send the last ETag as If-None-Match and get 304 while nothing changed; add
    `wait=N` to hold the request until the job changes (or N seconds pass)."""
    rt = runtime_of(request)
    job, slug = await job_for(rt, token, job_id)
    if wait <= 0:
        return etag.conditional(_body(job, slug, token), if_none_match)
    # The watch is keyed by the job's number. Registered before the read it compares, so
    # no change can slip in between.
    number = job.id
    fut = rt.watch.register(number)
    WAITING.inc()
    try:
        job, slug = await job_for(rt, token, number)
        body, version, flips = _shown(job, slug, token)
        deadline = time.monotonic() + min(wait, rt.settings.api_wait_max_s)
        while _unchanged(version, body, since, if_none_match):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # No notification comes when a failure shown settling is shown failed: look
            # again then (a moment after, so it is past).
            until_flip = None if flips is None else \
                max(0.0, (flips - datetime.now(UTC)).total_seconds()) + 0.005
            try:
                got = await asyncio.wait_for(asyncio.shield(fut), remaining if until_flip
                                             is None else min(remaining, until_flip))
            except TimeoutError:
                if until_flip is not None and until_flip < remaining:
                    body, version, flips = _shown(job, slug, token)
                    continue
                break
            fut = rt.watch.register(number)  # the answered future left the watch
            if got is None:  # the listener asked everyone to re-read
                got = await rt.job(number)
            if got is not None and may_see(token, got[0]):
                job, slug = got
                body, version, flips = _shown(job, slug, token)
    finally:
        WAITING.dec()
        rt.watch.unregister(number, fut)
        if not fut.done():
            fut.cancel()
    await still_valid(request)  # the token may have been revoked while the request waited
    return etag.conditional(body, if_none_match)


def _unchanged(version: int, body: bytes, since: int | None,
               if_none_match: str | None) -> bool:
    if since is not None:
        return version == since
    return etag.matches(if_none_match, etag.etag_of(body))


@router.post("/{job_id}/cancel", response_model=JobDetail, summary="Cancel a job",
             responses={**_COMMON, **responses(409), **etag.documented(200)})
async def cancel_job(request: Request, job_id: JobId,
                     token: Annotated[ApiToken, Depends(principal)]) -> Response:
    """Cancel a queued job at once, or ask a running one to stop (its phase shows
    'cancelling' until its worker settles it). Cancelling is idempotent: a job already
    cancelled answers 200 as it is (a double click is harmless); a job that ended otherwise
    (succeeded, failed, dead...) answers 409. It takes no body: one sent is ignored, and
    one over FORECOURT_API_MAX_BODY_BYTES (declared or chunked) answers 413."""
    rt = runtime_of(request)
    job, _ = await job_for(rt, token, job_id)
    try:
        job = await rt.call(_service().cancel, job.id)
    except InvalidInput as exc:
        raise ApiProblem(409, exc.public or str(exc), "conflict") from exc
    _, slug = await job_for(rt, token, job.id)
    return etag.conditional(_body(job, slug, token), None)


@router.post("/{job_id}/replay", response_model=JobDetail, status_code=202,
             summary="Replay a dead job",
             responses={**_COMMON, **responses(409, 503, queued=True),
                        **etag.documented(202, location=True)})
async def replay_job(request: Request, job_id: JobId,
                     token: Annotated[ApiToken, Depends(principal)]) -> Response:
    """Run a dead (or failed) job again as a new queued job; answers 202 with the new job.
    409 when the job is in any other state, was already replayed (the problem names the
    job it was replayed as), or the dealership already has an active job (named in the
    problem; the dead letter stays, to replay when that job ends). While the job queue
    (Redis) is unavailable: 503 with Retry-After, nothing recorded, the dead letter kept.
    It takes no body: one sent is ignored, and one over FORECOURT_API_MAX_BODY_BYTES
    (declared or chunked) answers 413."""
    rt = runtime_of(request)
    old, _ = await job_for(rt, token, job_id)
    try:
        job = await rt.call(_service().replay, old.id, queue_down=await rt.queue_down())
    except InvalidInput as exc:
        raise ApiProblem(409, exc.public or str(exc), "conflict") from exc
    _, slug = await job_for(rt, token, job.id)
    return etag.conditional(_body(job, slug, token), None, status=202,
                            headers={"Location": f"/v1/jobs/{job.public_id}"})
