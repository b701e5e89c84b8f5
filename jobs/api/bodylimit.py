"""Request size limit: bodies over `api_max_body_bytes` answer 413 problem+json, whichever
route is asked, before it runs.

A declared Content-Length over the limit is refused before any byte is read. A body without
one (chunked) is read here, up to the limit, before the route runs, and handed to it as
read: past the limit it is refused at once. So a route that takes no body (cancel, replay)
refuses an oversized chunked body as it does a declared one, instead of answering while the
server goes on reading and discarding the rest, however long, on a connection it keeps; at
most the limit (plus one read) is ever held. A refusal closes the connection, as the rest of
the body is not read.

Only methods whose body means something (RFC 9110: POST, PUT, PATCH) are limited. No route
reads the body of a GET (nor of HEAD, OPTIONS, DELETE): it answers as it would without one,
and the server discards the bytes.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobs.api.problems import MEDIA_TYPE, TYPE_PREFIX

WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WITH_BODY:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None:  # the server reads no more than it declares
            if declared > self.max_bytes:
                await self._refuse(scope, send)
            else:
                await self.app(scope, receive, send)
            return
        read: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":  # the client left: the route hears it
                break
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                await self._refuse(scope, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return read.pop(0) if read else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body = json.dumps({"type": TYPE_PREFIX + "too-large", "title": "Request Entity Too Large",
                           "status": 413,
                           "detail": f"the request body is larger than {self.max_bytes} bytes",
                           "instance": scope.get("path")}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", MEDIA_TYPE.encode()),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
