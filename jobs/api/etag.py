"""ETags and conditional responses: a poller that already has the current body gets 304."""

from __future__ import annotations

import hashlib

from fastapi import Response

JSON = "application/json"

# What the OpenAPI document says of the headers `conditional` sets, for routes' `responses`.
ETAG = {"ETag": {"description": "the body's strong validator: send it back as If-None-Match "
                                "to get 304 while it is unchanged",
                 "schema": {"type": "string"}}}
LOCATION = {"Location": {"description": "the job's path, /v1/jobs/{id}",
                         "schema": {"type": "string"}}}


def documented(status: int, description: str | None = None, *,
               location: bool = False) -> dict[int, dict]:
    """An OpenAPI `responses` entry for an answer `conditional` makes: its ETag (on a 304
    too), and Location where the route sets it."""
    answer: dict = {"headers": {**ETAG, **(LOCATION if location else {})}}
    if description:
        answer["description"] = description
    return {status: answer}


def etag_of(body: bytes) -> str:
    """A strong ETag derived from the exact body bytes."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names this ETag (weak comparison, RFC 9110)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in if_none_match.split(","))


def conditional(body: bytes, if_none_match: str | None, status: int = 200,
                headers: dict[str, str] | None = None) -> Response:
    """The body with its ETag, or 304 Not Modified when the client has it already."""
    tag = etag_of(body)
    common = {"ETag": tag, "Cache-Control": "private, no-cache", "Vary": "Authorization"}
    if headers:
        common.update(headers)
    if status == 200 and matches(if_none_match, tag):
        return Response(status_code=304, headers=common)
    return Response(content=body, status_code=status, media_type=JSON, headers=common)
