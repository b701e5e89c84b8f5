"""What a request body must be sent as: JSON, said so by its Content-Type.

FastAPI reads a body with any other Content-Type (or none) as bytes, which keeps cross-site
forms from posting JSON without a CORS preflight, and then answers 422 "Input should be a
valid dictionary" for a body that is a perfectly good JSON object: what a UI calling
`fetch(url, {method: "POST", body: JSON.stringify(...)})` without the header gets (the browser
sends text/plain). This names the real problem: 415 with the media type to use.
"""

from __future__ import annotations

from fastapi import Request

from jobs.api.problems import ApiProblem

JSON = "application/json"


def is_json(content_type: str | None) -> bool:
    """application/json or application/<anything>+json, with any parameters (RFC 6839)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    maintype, _, subtype = media.partition("/")
    return maintype == "application" and (subtype == "json" or subtype.endswith("+json"))


async def json_body(request: Request) -> None:
    """415 when the request has a body that is not declared as JSON. A dependency: FastAPI
    has read the body by then (a later read is cached), and an empty body is left to the
    route's own validation (422: the body is required)."""
    content_type = request.headers.get("content-type")
    if is_json(content_type) or not await request.body():
        return
    raise ApiProblem(415, f"the body is not declared as JSON; send it with Content-Type: {JSON}",
                     "unsupported-media-type", {"Accept-Post": JSON})
