"""RFC 9457 problem details for every 4xx and 5xx the API answers, and never a stack trace.

Domain errors (crawler.errors) are translated here and only here; routes raise them, or
`ApiProblem` for purely HTTP conditions (auth, rate limit, bad cursor).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crawler import errors
from jobs.api.redact import hide_infrastructure

log = logging.getLogger("forecourt.api")

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:forecourt:problem:"


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(description="URI identifying the problem type; about:blank for plain "
                                  "HTTP status problems")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(default=None, description="the request path")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="validation errors: location and message of each")


class ApiProblem(Exception):
    """An HTTP-level problem raised by a route or dependency."""

    def __init__(self, status: int, detail: str, kind: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.headers = headers or {}


def problem_response(request: Request | None, status: int, detail: str | None = None,
                     kind: str | None = None, headers: dict[str, str] | None = None,
                     **extra: Any) -> JSONResponse:
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + kind if kind else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path if request is not None else None,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


# Domain error -> (status, problem kind). The first matching class wins.
_DOMAIN = [
    (errors.NotFound, 404, "not-found"),
    (errors.AlreadyExists, 409, "conflict"),
    (errors.InvalidInput, 422, "invalid-input"),
    (errors.Transient, 503, "unavailable"),
    (errors.ConfigError, 503, "unavailable"),
    (errors.Permanent, 409, "cannot-run"),
]


def domain_status(exc: errors.ForecourtError) -> tuple[int, str]:
    for cls, status, kind in _DOMAIN:
        if isinstance(exc, cls):
            return status, kind
    return 500, "internal"


async def _api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
    return problem_response(request, exc.status, exc.detail, exc.kind, exc.headers)


# Plain HTTP statuses that have a problem type of their own: a body over the limit is
# `too-large`, a body too slow `body-timeout` (BodyLimit answers its own refusals so; the
# same statuses raised elsewhere are typed alike).
_HTTP_KINDS = {413: "too-large", 408: "body-timeout"}


# FastAPI answers 400 "There was an error parsing the body" when json.loads raises anything
# but a JSONDecodeError: these bodies are malformed JSON all the same, answered 422 as one is.
_UNPARSED = {UnicodeDecodeError: "the body is not UTF-8",
             RecursionError: "the body nests too deeply"}


def _unparsed(exc: StarletteHTTPException) -> str | None:
    if exc.status_code != 400:
        return None
    return next((why for cls, why in _UNPARSED.items() if isinstance(exc.__cause__, cls)), None)


async def _http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if why := _unparsed(exc):
        return await _validation(request, RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": f"JSON decode error: {why}"}]))
    detail = exc.detail if isinstance(exc.detail, str) else None
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.url.path}"
    elif exc.status_code == 405 and detail == "Method Not Allowed":
        detail = f"{request.method} is not allowed on {request.url.path}"
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed(request)}
    return problem_response(request, exc.status_code, detail, _HTTP_KINDS.get(exc.status_code),
                            headers=headers)


_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


def _allowed(request: Request) -> str:
    """Every method of the request's path (RFC 9110: a 405's Allow lists them all): the
    route that refused the method names only its own, where a path has several routes
    (GET and POST /v1/dealerships/{slug}/jobs). HEAD goes with GET (jobs.api.head)."""
    methods = {m for m in _METHODS
               if any(route.matches({**request.scope, "method": m})[0] == Match.FULL
                      for route in request.app.router.routes)}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    try:  # authentication comes first, even where FastAPI parsed the body before it
        await request.app.state.authenticate_first(request)
    except ApiProblem as problem:
        return await _api_problem(request, problem)
    details = [_detail(e) for e in exc.errors()]
    first = details[0] if details else None
    detail = (f"{'.'.join(first['loc'])}: {first['msg']}" if first else "invalid request")
    return problem_response(request, 422, detail, "validation", errors=details)


def _detail(error: dict[str, Any]) -> dict[str, Any]:
    """One validation error as the problem lists it. FastAPI locates malformed JSON at
    ("body", <character offset>) with the parser's reason aside: said in words, so the offset
    does not read as a field of the body."""
    loc, msg = [str(p) for p in error.get("loc", ())], str(error.get("msg", ""))
    if error.get("type") == "json_invalid" and len(loc) == 2 and loc[1].isdigit():
        why = (error.get("ctx") or {}).get("error")
        msg = f"{msg}: {why} at character {loc[1]}" if why else f"{msg} at character {loc[1]}"
        loc = loc[:1]
    return {"loc": loc, "msg": msg}


async def _domain(request: Request, exc: errors.ForecourtError) -> JSONResponse:
    status, kind = domain_status(exc)
    if status >= 500:
        log.error("domain error on %s %s: %s", request.method, request.url.path, exc)
    headers = {"Retry-After": "5"} if status == 503 else None
    # a 503's cause may quote our database's or queue's address: named, not shown
    said = exc.public or str(exc)  # jobs named by their public ids
    detail = (said if status < 500 else hide_infrastructure(said) if status == 503
              else "internal error")
    return problem_response(request, status, detail, kind, headers)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return problem_response(request, 503, "the database is busy or unreachable; retry shortly",
                            "unavailable", {"Retry-After": "2"})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(request, 500, "internal error; the server logged it", "internal")


class Unexpected:
    """ASGI middleware turning an unhandled exception into the internal 500 problem (its
    traceback logged) inside the middlewares added after it, CORS above all: Starlette runs
    the app's `Exception` handler in ServerErrorMiddleware, outside every middleware, so that
    answer would carry no CORS headers and the browser UI could not read it. The handler
    stays registered for errors in the outer middlewares themselves."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if started:  # too late for another answer: let the server close the connection
                raise
            request = Request(scope)
            await (await _unexpected(request, exc))(scope, receive, send)


async def _nothing_to_check(request: Request) -> None:
    return None


def install(app: FastAPI, authenticate_first=_nothing_to_check) -> None:
    """Problem+json for every error. `authenticate_first(request)` raises the ApiProblem
    (401, 429) a request not yet authenticated gets before any 422 about its input."""
    app.state.authenticate_first = authenticate_first
    app.add_exception_handler(ApiProblem, _api_problem)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(errors.ForecourtError, _domain)
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_exception_handler(psycopg.OperationalError, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)


# What the API's own answers of these statuses mean.
_MEANING = {
    400: "more than one Authorization header (`ambiguous-credentials`: none is read); or, "
         "where the route takes a cursor, one that is not ours (`invalid-cursor`)",
    429: "the token's rate limit (FORECOURT_API_RATE_LIMIT), or too many failed "
         "authentications from the client's address (FORECOURT_API_AUTH_FAIL_LIMIT): any "
         "token from there is refused until the window ends",
    503: "the database is unreachable, or no connection came free within "
         "FORECOURT_API_POOL_TIMEOUT_S",
    413: "the request body is over FORECOURT_API_MAX_BODY_BYTES, whether Content-Length "
         "declares it or it comes chunked (read up to the limit, no further; the connection "
         "is closed), refused before the route runs and before authentication, whatever the "
         "method, even a route that takes no body",
    408: "the request body did not arrive whole within FORECOURT_API_BODY_TIMEOUT_S of the "
         "request's start (the connection is closed), whatever the method",
}
# Every operation may answer these: BodyLimit runs before any route (see add_to_openapi).
_BODY_LIMITS = (408, 413)
_COME_BACK = {429, 503}  # statuses whose answers carry Retry-After
# A trigger's and a replay's 503 (`responses(..., queued=True)`): the job queue too.
_QUEUED_503 = (_MEANING[503] + "; or the job queue (Redis) is unavailable. A call refused "
               "because Redis did not answer records no job; one whose message Redis refuses "
               "after that check is recorded failed, and the detail names it")
_CHALLENGE = {"WWW-Authenticate": {"description": 'Bearer realm="forecourt", with '
                                                 'error="invalid_token" for a token that is '
                                                 "unknown or revoked",
                                  "schema": {"type": "string"}}}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again",
                                "schema": {"type": "integer", "minimum": 1}}}


def responses(*statuses: int, queued: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries documenting problem+json answers; `queued`: the route
    also sends a job's message to Redis, whose outage answers 503 as well."""
    out: dict[int | str, dict[str, Any]] = {}
    if 401 in statuses:  # a route that authenticates refuses ambiguous credentials
        statuses = (400, *statuses)
    for s in statuses:
        phrase = HTTPStatus(s).phrase
        meaning = _QUEUED_503 if s == 503 and queued else _MEANING.get(s)
        out[s] = {"description": f"{phrase}: {meaning}" if meaning else phrase,
                  "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        if s in _COME_BACK:
            out[s]["headers"] = _RETRY_AFTER
        if s == 401:
            out[s]["headers"] = _CHALLENGE
    return out


def _cannot_be_invalid(op: dict[str, Any]) -> bool:
    """Whether no request to the operation can fail validation: no body, and only path
    parameters that take any string (a job's id: any string is one, known or not)."""
    return "requestBody" not in op and all(
        p.get("in") == "path" and p.get("schema", {}).get("type") == "string"
        and not set(p.get("schema", {})) - {"type", "title", "description"}
        for p in op.get("parameters", []))


def add_to_openapi(app: FastAPI) -> None:
    """Publish the Problem schema (routes reference it only as problem+json content),
    describe FastAPI's own 422 answers as the problems they are, and list BodyLimit's 408
    and 413 on every operation."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = build()
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        limits = {str(s): answer for s, answer in responses(*_BODY_LIMITS).items()}
        for path in doc.get("paths", {}).values():
            for op in path.values():
                op.setdefault("responses", {}).update(limits)
                if _cannot_be_invalid(op):  # FastAPI lists 422 wherever there are params
                    op["responses"].pop("422", None)
                answer = op.get("responses", {}).get("422")
                if answer is not None:
                    answer["description"] = "Unprocessable Entity: the request is not valid"
                    answer["content"] = {MEDIA_TYPE: {
                        "schema": {"$ref": "#/components/schemas/Problem"}}}
        app.openapi_schema = doc
        return doc

    app.openapi = openapi
