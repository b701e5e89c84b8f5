"""CORS for the browser UI: Starlette's middleware, whose refused preflights answer 400
problem+json (as every 4xx of the API does) instead of text/plain."""

from __future__ import annotations

from fastapi import Request
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from jobs.api.problems import problem_response

# What the UI's script may read of an answer besides the safelisted headers: the ETag to
# poll with, Retry-After of a 429 or 503, a trigger's Location, a 401's challenge (no
# token, or `error="invalid_token"`: sign in again or stop polling with a revoked token),
# and the token's quota (RateLimit-*: slow down before a 429).
EXPOSED_HEADERS = ["ETag", "Retry-After", "Location", "WWW-Authenticate", "RateLimit-Limit",
                   "RateLimit-Remaining", "RateLimit-Reset"]

# What a refused preflight keeps of Starlette's answer: the CORS headers, not its body's.
_BODY_HEADERS = ("content-length", "content-type")


class ProblemCORS(CORSMiddleware):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                answer = self.preflight_response(request_headers=headers)
                if answer.status_code >= 400:  # "Disallowed CORS origin, method" and such
                    kept = {k: v for k, v in answer.headers.items() if k not in _BODY_HEADERS}
                    answer = problem_response(Request(scope), answer.status_code,
                                              answer.body.decode(), "cors-refused", kept)
                await answer(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
