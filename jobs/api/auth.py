"""Bearer-token authentication, per-token rate limits, the limit on failed authentications
per client address, and what a token may see.

A dealer token sees its own dealership only: anything of another dealership answers exactly
as if it did not exist (404), so existence does not leak. An operator token sees all.
"""

from __future__ import annotations

import hmac
import logging
import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from crawler.db import dealers as dealers_db
from crawler.db import tokens as tokens_db
from crawler.errors import NotFound
from crawler.models import ApiToken, Dealership, Job
from jobs.api import quota
from jobs.api.clients import client_key
from jobs.api.problems import ApiProblem
from jobs.api.ratelimit import quota_headers
from jobs.api.runtime import Runtime, runtime_of
from jobs.api.schemas import parse_public_id

log = logging.getLogger("forecourt.api")

class _OneBearer(HTTPBearer):
    """HTTPBearer, which reads the first Authorization header and ignores any other: a
    request with more than one is refused, 400 `ambiguous-credentials`, before any look-up
    (not counted as a failed authentication), on every route that authenticates."""

    async def __call__(self, request: Request) -> HTTPAuthorizationCredentials | None:
        if len(request.headers.getlist("authorization")) > 1:
            raise ApiProblem(400, "the request has more than one Authorization header; send "
                             "one, with one bearer token", "ambiguous-credentials")
        return await super().__call__(request)


bearer = _OneBearer(auto_error=False, bearerFormat="fct_<prefix>_<secret>",
                    scheme_name="HTTPBearer",  # the document's name for it, as before
                    description="a token from `forecourt tokens create`")

TOUCH_EVERY_S = 60.0
_CHALLENGE = 'Bearer realm="forecourt"'


def _unauthorized() -> ApiProblem:
    """The one answer to a token that does not work: unknown, malformed, revoked or expired
    alike (before or during a long poll), so it tells nobody which tokens exist."""
    return ApiProblem(401, "the bearer token is unknown or revoked", "unauthorized",
                      {"WWW-Authenticate": _CHALLENGE + ', error="invalid_token"'})


async def principal(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiToken:
    """The request's token, or 401; then its rate limit, or 429. An address that presented
    too many unknown or revoked tokens gets 429 for any token, without a look-up: checked
    before a database look-up, or, for a token from the process cache, in the round trip
    that counts the token's request (so a valid token costs one Redis call, as before)."""
    if creds is None or not creds.credentials:
        raise ApiProblem(401, "a bearer token is required", "unauthorized",
                         {"WWW-Authenticate": _CHALLENGE})
    rt = runtime_of(request)
    address = client_key(request)
    gate = None
    if rt.auth_failures is not None:
        if _cached(rt, creds.credentials, time.monotonic()) is None:
            _cut_off(rt, await rt.auth_failures.spent(address))
        else:
            gate = (rt.auth_failures, address)
    token = await _lookup(rt, creds.credentials)
    if token is None:
        await _count_failure(rt, address)
        raise _unauthorized()
    hit = await rt.limiter.hit(token.prefix, gate)
    if hit.gated:
        _cut_off(rt, hit.retry_after)
    if not hit.allowed:
        raise ApiProblem(429, f"rate limit of {rt.limiter.limit} requests per "
                         f"{rt.limiter.window_ms // 1000} s exceeded; retry in "
                         f"{hit.retry_after} s", "rate-limited",
                         {"Retry-After": str(hit.retry_after),
                          **quota_headers(rt.limiter.limit, 0, hit.retry_after)})
    if hit.reset_ms is not None:
        quota.remember(request, rt.limiter.limit, hit.remaining, hit.reset_ms)
    request.state.token = token
    return token


def _cut_off(rt: Runtime, retry_after: int) -> None:
    """429 when the client's address is cut off for `retry_after` more seconds (0: it is
    not); its RateLimit-* headers tell the limit that refused it, the failures'."""
    if retry_after:
        failures = rt.auth_failures
        raise ApiProblem(429, f"too many failed authentications from this address (limit "
                         f"{failures.limit} per {failures.window_ms // 1000} s); retry in "
                         f"{retry_after} s", "rate-limited",
                         {"Retry-After": str(retry_after),
                          **quota_headers(failures.limit, 0, retry_after)})


async def _count_failure(rt: Runtime, address: str) -> None:
    if rt.auth_failures is None:
        return
    hit = await rt.auth_failures.hit(address)
    if hit.allowed and hit.remaining == 0:  # this failure reached the limit: once per window
        log.warning("client %s cut off after %d failed authentications: answered 429 until "
                    "the window ends (behind a proxy? see FORWARDED_ALLOW_IPS)", address,
                    rt.auth_failures.limit)


async def metrics_reader(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Who may read /metrics (fleet-wide figures, none for a dealer's eyes): the bearer of
    a FORECOURT_API_METRICS_TOKEN token (Prometheus; several while one is rotated), compared
    in constant time, or an operator token; a dealer token answers 403. Without a metrics
    token set, operator tokens only. An address cut off for failed authentications is cut
    off for the metrics token too (valid or not, as for API tokens), and a wrong one counts
    as a failure."""
    if creds is None or not creds.credentials:
        raise ApiProblem(401, "a bearer token is required", "unauthorized",
                         {"WWW-Authenticate": _CHALLENGE})
    rt = runtime_of(request)
    if _is_metrics_token(creds.credentials, rt.settings.api_metrics_token):
        if rt.auth_failures is not None:
            _cut_off(rt, await rt.auth_failures.spent(client_key(request)))
        return
    token = await principal(request, creds)
    if token.role != "operator":
        raise ApiProblem(403, "metrics are for operators: use FORECOURT_API_METRICS_TOKEN or "
                              "an operator token", "forbidden")


def _is_metrics_token(presented: str, secrets: tuple[SecretStr, ...]) -> bool:
    """Whether `presented` is one of the metrics tokens: compared with each in constant time,
    all of them every time, so the answer's timing says nothing about which one or how much
    of it matched."""
    given = presented.encode()
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(given, secret.get_secret_value().encode())
    return found


async def authenticate_first(request: Request) -> None:
    """principal's 401 or 429 for a /v1 request no dependency has authenticated yet. FastAPI
    parses a JSON body before it runs any dependency, so a malformed body would otherwise
    answer 422 to a caller without a valid token."""
    if getattr(request.state, "token", None) is None and request.url.path.startswith("/v1/"):
        await principal(request, await bearer(request))


async def still_valid(request: Request) -> None:
    """401 when the request's token was revoked, or expired, since `principal` accepted it:
    a long poll outlives either. The same 401 as for an unknown token. Cheap: a cache hit
    while the job watch listens (a revocation evicts the token at once, an expiry is checked
    against the cached record), else one indexed query."""
    creds = await bearer(request)
    if creds is None or await _lookup(runtime_of(request), creds.credentials) is None:
        raise _unauthorized()


def _cached(rt: Runtime, presented: str, now: float) -> ApiToken | None:
    """The token's record from the process cache, if it is there, current, matches and has
    not expired (no notification comes when a token's time runs out)."""
    prefix = tokens_db.prefix_of(presented)
    hit = rt.token_cache.get(prefix) if prefix else None
    if hit is not None and hit[2] > now and tokens_db.matches(presented, hit[1]) \
            and not hit[0].expired(datetime.now(UTC)):
        return hit[0]
    return None


async def _lookup(rt: Runtime, presented: str) -> ApiToken | None:
    """The live token record: from the process cache (kept only while the job watch listens,
    which evicts revoked tokens at once), else from the database."""
    now = time.monotonic()
    token = _cached(rt, presented, now)
    if token is None:
        generation = rt.token_generation
        async with rt.pool.connection() as conn:
            found = await tokens_db.alookup(conn, presented)
        if found is None:
            return None
        token, secret_hash = found
        ttl = rt.settings.api_token_cache_s
        if ttl > 0 and rt.watch.listening.is_set() and generation == rt.token_generation:
            rt.token_cache[token.prefix] = (token, secret_hash, now + ttl)
    if now - rt.touched.get(token.prefix, -TOUCH_EVERY_S) >= TOUCH_EVERY_S:
        rt.touched[token.prefix] = now
        async with rt.pool.connection() as conn:
            await tokens_db.atouch(conn, token.id)
    return token


def no_dealership(slug: str) -> NotFound:
    return NotFound(f"no dealership {slug!r}")


def no_job() -> NotFound:
    """The one answer for any job a token may not see: another dealership's, an unknown id,
    a malformed one. It names no id, so every such answer is the same."""
    return NotFound("no such job")


async def dealership_id_for(rt: Runtime, token: ApiToken, slug: str) -> int:
    """The id of a dealership this token may see, else NotFound (same for absent ones)."""
    if token.role == "dealer":
        if slug != token.dealership_slug:
            raise no_dealership(slug)
        return token.dealership_id  # type: ignore[return-value]
    return (await dealership_for(rt, token, slug)).id


async def dealership_for(rt: Runtime, token: ApiToken, slug: str) -> Dealership:
    if token.role == "dealer" and slug != token.dealership_slug:
        raise no_dealership(slug)
    async with rt.pool.connection() as conn:
        dealer = await dealers_db.aget(conn, slug)
    if dealer is None:
        raise no_dealership(slug)
    return dealer


def may_see(token: ApiToken, job: Job) -> bool:
    return token.role == "operator" or job.dealership_id == token.dealership_id


async def job_for(rt: Runtime, token: ApiToken, job_id: str | int) -> tuple[Job, str]:
    """A job this token may see, with its dealership's slug, else NotFound: by the public
    id a client gave (a string: malformed is answered as unknown), or by its number (an int,
    one the API found itself)."""
    if isinstance(job_id, int):
        got = await rt.job(job_id)
    else:
        public_id = parse_public_id(job_id)
        got = None if public_id is None else await rt.job_by_public_id(public_id)
    if got is None or not may_see(token, got[0]):
        raise no_job()
    return got
