"""/v1/dealerships/{slug}/...: trigger and list jobs, dead letters, inventory summary."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from crawler.db import dealers as dealers_db
from crawler.db import jobs_async as ajobs_db
from crawler.models import ApiToken, JobKind, JobState
from jobs.api import etag
from jobs.api.auth import dealership_for, dealership_id_for, principal
from jobs.api.media import json_body
from jobs.api.problems import ApiProblem, responses
from jobs.api.routes_jobs import _service
from jobs.api.runtime import runtime_of
from jobs.api.schemas import (
    MAX_DEAD_LETTERS,
    DeadLetters,
    Inventory,
    JobDetail,
    JobPage,
    JobSummary,
    LastRun,
    Quality,
    TriggerIn,
    decode_cursor,
    encode_cursor,
)

router = APIRouter(prefix="/v1/dealerships/{slug}", tags=["dealerships"])

Slug = Annotated[str, Path(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9-]*$",
                           description="the dealership's slug")]
# 503: every route reads the database (the token's record, if nothing else).
_COMMON = responses(401, 404, 422, 429, 503)
_NOT_MODIFIED = {**etag.documented(200),
                 **etag.documented(304, "Not Modified (If-None-Match matched)")}


@router.post("/jobs", response_model=JobDetail, status_code=202, summary="Trigger a job",
             responses={**_COMMON, **responses(415, 503, queued=True),
                        **etag.documented(202, location=True),
                        200: {"model": JobDetail, "description": "the dealership already has "
                              "a queued or running job (of either kind): that job, nothing "
                              "new started", "headers": {**etag.ETAG, **etag.LOCATION}}})
async def trigger_job(request: Request, slug: Slug, body: TriggerIn,
                      token: Annotated[ApiToken, Depends(principal)],
                      _json: Annotated[None, Depends(json_body)]) -> Response:
    """Queue a crawl or feed ingest for the dealership: 202 with the new job, or 200 with the
    job already queued or running (one job per dealership at a time). The body must be
    sent as `Content-Type: application/json` (else 415). While the job queue (Redis) is
    unavailable: 503 with Retry-After and no job recorded (an active job still answers 200)."""
    rt = runtime_of(request)
    dealership_id = await dealership_id_for(rt, token, slug)
    job, created = await rt.call(_service().trigger, dealership_id, body.kind, "api",
                                 queue_down=await rt.queue_down())
    payload = JobDetail.of(job, slug, role=token.role).model_dump_json().encode()
    return etag.conditional(payload, None, status=202 if created else 200,
                            headers={"Location": f"/v1/jobs/{job.public_id}"})


@router.get("/jobs", response_model=JobPage, summary="List a dealership's jobs",
            responses={**_COMMON, **responses(400), **_NOT_MODIFIED})
async def list_jobs(
    request: Request,
    slug: Slug,
    token: Annotated[ApiToken, Depends(principal)],
    state: Annotated[JobState | None, Query(description="only jobs in this state")] = None,
    kind: Annotated[JobKind | None, Query(description="only jobs of this kind")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="page size")] = 20,
    # no max_length: a cursor too long to be ours is a 400 invalid-cursor like any other
    # cursor that is not one (decode_cursor), not a 422 of another type
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page "
                                        "(an opaque string); one that is not, or whose "
                                        "job was since deleted, answers 400 "
                                        "invalid-cursor: start again from the first "
                                        "page")] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The dealership's jobs, newest first, filtered by state and kind, a page at a time."""
    rt = runtime_of(request)
    after = None
    if cursor is not None:
        after = decode_cursor(cursor)
        if after is None:
            raise _invalid_cursor()
    dealership_id = await dealership_id_for(rt, token, slug)
    async with rt.pool.connection() as conn:
        before = None
        if after is not None:  # the page's last job: its number is the keyset bound
            before = await ajobs_db.aid_of(conn, dealership_id, after)
            if before is None:  # another dealership's job, or one since deleted
                raise _invalid_cursor()
        rows = await ajobs_db.alist_page(conn, dealership_id, state=state, kind=kind,
                                         before_id=before, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    page = JobPage(items=[JobSummary.of(j, slug, role=token.role) for j in rows],
                   next_cursor=encode_cursor(rows[-1].public_id) if more else None)
    return etag.conditional(page.model_dump_json().encode(), if_none_match)


def _invalid_cursor() -> ApiProblem:
    """The one answer for a cursor that is not one of ours, or names no job of the
    dealership's: the same either way."""
    return ApiProblem(400, "the cursor is not valid; use a `next_cursor` from a previous "
                      "page", "invalid-cursor")


@router.get("/dead-letters", response_model=DeadLetters, summary="List dead letters",
            responses={**_COMMON, **_NOT_MODIFIED})
async def dead_letters(request: Request, slug: Slug,
                       token: Annotated[ApiToken, Depends(principal)],
                       if_none_match: Annotated[str | None, Header()] = None) -> Response:
    """The dealership's dead jobs not yet replayed or purged, newest first, each with its
    error history: the newest 200, `more` true when there are older ones; replay one with
    POST /v1/jobs/{id}/replay."""
    rt = runtime_of(request)
    dealership_id = await dealership_id_for(rt, token, slug)
    jobs = await rt.call(_service().dead_letters, dealership_id, MAX_DEAD_LETTERS + 1)
    body = DeadLetters(items=[JobDetail.of(j, slug, role=token.role)
                              for j in jobs[:MAX_DEAD_LETTERS]],
                       more=len(jobs) > MAX_DEAD_LETTERS)
    return etag.conditional(body.model_dump_json().encode(), if_none_match)


@router.get("/inventory", response_model=Inventory, summary="Inventory summary",
            responses={**_COMMON, **_NOT_MODIFIED})
async def inventory(request: Request, slug: Slug,
                    token: Annotated[ApiToken, Depends(principal)],
                    if_none_match: Annotated[str | None, Header()] = None) -> Response:
    """Active vehicles, the last successful run and quality figures."""
    rt = runtime_of(request)
    dealer = await dealership_for(rt, token, slug)
    async with rt.pool.connection() as conn:
        row = await dealers_db.ainventory(conn, dealer.id)
    last = None
    if row["last_job_id"] is not None:
        last = LastRun(job_id=str(row["last_job_public_id"]), kind=row["last_job_kind"],
                       finished_at=row["last_job_finished_at"],
                       verdict=row["last_job_verdict"], counters=row["last_job_counters"] or {})
    avg = row["avg_quality_score"]
    body = Inventory(
        dealership=dealer.slug, name=dealer.name, active_vehicles=row["active_vehicles"],
        removed_vehicles=row["removed_vehicles"], last_successful_run=last,
        quality=Quality(avg_score=round(float(avg), 1) if avg is not None else None,
                        min_score=row["min_quality_score"],
                        flagged_vehicles=row["flagged_vehicles"],
                        placeholder_vins=row["placeholder_vins"],
                        last_run_rejects=row["last_job_rejects"] or 0,
                        last_run_verdict=row["last_job_verdict"]))
    return etag.conditional(body.model_dump_json().encode(), if_none_match)
