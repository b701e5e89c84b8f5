"""RateLimit-Limit, -Remaining and -Reset on every answer to a request whose token was
counted against its rate limit (draft-ietf-httpapi-ratelimit-headers, in the widely
implemented form whose Reset is the seconds until the window ends), so a dealer UI can slow
down before it meets a 429. `principal` records the count; this middleware writes it on the
answer, whatever produced it (a route, a problem, a 304), with Reset as of the answer (a
long poll answers up to 30 s after it was counted). A 429 carries them from its problem.
"""

from __future__ import annotations

import math
import time
from typing import Any

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobs.api.ratelimit import quota_headers

_KEY = "quota"

# What the OpenAPI document says of them.
_INT = {"type": "integer", "minimum": 0}
DOCUMENTED = {
    "RateLimit-Limit": {"description": "requests the token may make per window "
                                       "(FORECOURT_API_RATE_LIMIT); on a 429 for too many "
                                       "failed authentications from the client's address, "
                                       "that limit (FORECOURT_API_AUTH_FAIL_LIMIT). Absent "
                                       "while Redis is unavailable (nothing is counted then)",
                        "schema": _INT},
    "RateLimit-Remaining": {"description": "requests left in the current window",
                            "schema": _INT},
    "RateLimit-Reset": {"description": "seconds until the window ends and the quota is "
                                       "whole again (on a 429, the same as Retry-After)",
                        "schema": _INT},
}
# Answers a counted request gets: every success of /v1, and the refusals that come after
# the count (not 400 ambiguous-credentials, 401, 408, 413 or 503, which come before it).
_SUCCESS = {"200", "202", "304"}
_AFTER_COUNT = {"403", "404", "409", "415", "422", "429"}


def remember(request: Request, limit: int, remaining: int, reset_ms: int) -> None:
    """Record the request's count, for the answer's headers."""
    setattr(request.state, _KEY, (limit, remaining, time.monotonic() + reset_ms / 1000))


class QuotaHeaders:
    """ASGI middleware adding the recorded quota to the answer's headers (unless the answer
    has them already: a 429 says which limit refused it)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                quota = scope.get("state", {}).get(_KEY)
                headers = message.get("headers", [])
                if quota is not None and not any(k.lower() == b"ratelimit-limit"
                                                 for k, _ in headers):
                    limit, remaining, ends = quota
                    reset = math.ceil(ends - time.monotonic())
                    extra = quota_headers(limit, remaining, reset)
                    message["headers"] = [*headers, *((k.lower().encode(), v.encode())
                                                      for k, v in extra.items())]
            await send(message)

        await self.app(scope, receive, sending)


def add_to_openapi(app: FastAPI) -> None:
    """Name the headers on each answer of an operation that takes a token where they are
    always sent (Redis permitting)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        doc = build()
        for path, ops in doc.get("paths", {}).items():
            for op in ops.values():
                if not op.get("security"):
                    continue
                counted = _AFTER_COUNT | (_SUCCESS if path.startswith("/v1/") else set())
                for status, answer in op.get("responses", {}).items():
                    if status in counted:
                        answer["headers"] = {**answer.get("headers", {}), **DOCUMENTED}
        return doc

    app.openapi = openapi
