"""Request body limits, of size and of time: a body over `api_max_body_bytes` answers 413
`too-large`, one not whole within `api_body_timeout_s` 408 `body-timeout`, both as
problem+json, whichever route is asked, before it runs (and before authentication: a body
is a cost the server bears for whoever sends it).

A request carries a body when it declares a Content-Length above 0 or comes chunked,
whatever its method: a GET's or a cancel's body means nothing, but the server would read and
discard it, however long. A declared length over the limit is refused before any byte is
read; any other body is read here, up to the limit, and handed to the route as read: past
the limit it is refused at once, so at most the limit (plus one read) is ever held. The body
must be whole within the time limit of the request's start: a client that dribbles its bytes
(or declares more than it sends) would hold a connection and a task for as long as it likes,
where uvicorn limits only the wait between requests. A refusal closes the connection, as the
rest of the body is not read. A request without a body passes untouched (a long poll's route
still hears its client leave).
"""

from __future__ import annotations

import asyncio
import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobs.api.problems import MEDIA_TYPE, TYPE_PREFIX


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float):
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared, chunked = _framing(scope) if scope["type"] == "http" else (None, False)
        if not chunked and not declared:
            await self.app(scope, receive, send)
            return
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, send, 413)
            return
        deadline = time.monotonic() + self.timeout_s
        read: list[Message] = []
        seen = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0))
            except TimeoutError:
                await self._refuse(scope, send, 408)
                return
            read.append(message)
            if message["type"] != "http.request":  # the client left: the route hears it
                break
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                await self._refuse(scope, send, 413)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return read.pop(0) if read else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send, status: int) -> None:
        if status == 413:
            kind, title = "too-large", "Request Entity Too Large"
            detail = f"the request body is larger than {self.max_bytes} bytes"
        else:
            kind, title = "body-timeout", "Request Timeout"
            detail = (f"the request body did not arrive whole within {self.timeout_s:g} s; "
                      "send it at once")
        body = json.dumps({"type": TYPE_PREFIX + kind, "title": title, "status": status,
                           "detail": detail, "instance": scope.get("path")}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", MEDIA_TYPE.encode()),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _framing(scope: Scope) -> tuple[int | None, bool]:
    """(the declared Content-Length, whether the body comes chunked). A Content-Length the
    server could not read would not have reached the application."""
    declared, chunked = None, False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = None
        elif name == b"transfer-encoding":
            chunked = True
    return declared, chunked
