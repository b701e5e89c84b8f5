"""The FastAPI application: versioned routes under /v1, health, readiness and metrics."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request, Response
from redis.exceptions import RedisError

from crawler.config import Settings, get_settings
from jobs.api import metrics, problems, quota, routes_dealers, routes_jobs
from jobs.api.auth import authenticate_first, metrics_reader
from jobs.api.bodylimit import BodyLimit
from jobs.api.cors import EXPOSED_HEADERS, ProblemCORS
from jobs.api.head import HeadAsGet
from jobs.api.runtime import close_runtime, open_runtime, runtime_of
from jobs.api.schemas import Health

DESCRIPTION = """Job status and triggers for the dealer UI.

Authenticate with `Authorization: Bearer <token>` (tokens come from `forecourt tokens create`).
A dealer token sees only its own dealership; anything else answers 404. `/metrics` takes the
metrics token (FORECOURT_API_METRICS_TOKEN) or an operator token; `/healthz` and `/readyz`
none. Errors are RFC 9457
problem+json. Poll jobs cheaply with `If-None-Match` (304 while unchanged) and `wait`.
Answers to a request counted against its token's rate limit carry RateLimit-Limit,
RateLimit-Remaining and RateLimit-Reset (seconds until the window ends). Too many requests
per token, or too many unknown or revoked tokens from one address, answer 429; any call
but `/healthz` while the database is unreachable, and a trigger or replay while the job
queue is down (recording no job), answer 503: both carry Retry-After.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from crawler import logging as fc_logging

        fc_logging.configure()  # structured (JSON) logs, secrets redacted
        app.state.runtime = await open_runtime(settings)
        try:
            yield
        finally:
            await close_runtime(app.state.runtime)

    app = FastAPI(title="forecourt API", version="1.0.0", description=DESCRIPTION,
                  lifespan=lifespan, openapi_url="/v1/openapi.json", docs_url="/v1/docs",
                  redoc_url=None,
                  # `/v1/jobs/1/` answers 404 problem+json, not a 307 to an absolute URL built
                  # from what uvicorn saw: plain http behind a TLS-terminating load balancer,
                  # which a browser on the https UI refuses to follow (mixed content).
                  redirect_slashes=False)
    problems.install(app, authenticate_first)
    problems.add_to_openapi(app)
    quota.add_to_openapi(app)
    app.include_router(routes_jobs.router)
    app.include_router(routes_dealers.router)
    _add_operational_routes(app)
    # The last added runs first:
    # Latency > HeadAsGet > CORS > QuotaHeaders > Unexpected > BodyLimit > routes.
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes,
                       timeout_s=settings.api_body_timeout_s)
    app.add_middleware(problems.Unexpected)  # inside CORS: a 500 carries its headers too
    app.add_middleware(quota.QuotaHeaders)  # on every answer to a counted request
    if settings.api_cors_origins:
        app.add_middleware(ProblemCORS, allow_origins=settings.api_cors_origins,
                           allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "If-None-Match"],
                           expose_headers=EXPOSED_HEADERS)
    app.add_middleware(HeadAsGet)  # outside Unexpected and CORS: their answers lose bodies too
    app.add_middleware(metrics.Latency)
    return app


def _add_operational_routes(app: FastAPI) -> None:
    @app.get("/healthz", response_model=Health, tags=["operations"], summary="Process is up")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, tags=["operations"],
             summary="Database and Redis are reachable",
             responses={503: {"model": Health, "description": "a dependency is unreachable"}})
    async def readyz(request: Request, response: Response) -> Health:
        rt = runtime_of(request)
        checks = {}
        try:
            async with asyncio.timeout(2):
                async with rt.pool.connection() as conn:
                    await conn.execute("SELECT 1")
            checks["database"] = "ok"
        except Exception as exc:  # any failure means not ready
            checks["database"] = f"unreachable: {type(exc).__name__}"
        try:
            async with asyncio.timeout(2):
                await rt.redis.ping()
            checks["redis"] = "ok"
        except (RedisError, OSError, TimeoutError) as exc:
            checks["redis"] = f"unreachable: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values())
        if not ok:
            response.status_code = 503
        return Health(status="ok" if ok else "unavailable", checks=checks)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics",
             description="Fleet-wide figures: `Authorization: Bearer` with "
                         "FORECOURT_API_METRICS_TOKEN (Prometheus) or an operator token; "
                         "a dealer token answers 403.",
             response_class=Response, dependencies=[Depends(metrics_reader)],
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
                        **problems.responses(401, 403, 429, 503)})
    async def metrics_page(request: Request) -> Response:
        rt = runtime_of(request)
        body, content_type = await metrics.exposition(rt.pool, rt.settings.api_metrics_cache_s)
        return Response(body, media_type=content_type)
