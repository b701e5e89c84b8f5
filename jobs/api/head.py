"""HEAD answers like GET, without the body (RFC 9110 9.3.2: a server that answers GET must
answer HEAD). FastAPI routes take only the methods they declare, so without this a load
balancer's or monitor's `HEAD /healthz`, or a client checking an ETag with HEAD, got 405.

The request reaches the routes as a GET; its answer keeps its status and headers (ETag and
Content-Length included) and loses its body. A 405 that allows GET says it allows HEAD too.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                headers = MutableHeaders(scope=message)
                allowed = [m.strip() for m in headers.get("allow", "").split(",")]
                if "GET" in allowed and "HEAD" not in allowed:
                    headers["allow"] = ", ".join([*allowed, "HEAD"])
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        if not head:
            await self.app(scope, receive, sending)
            return
        # A copy: the server's own scope must still say HEAD (uvicorn then expects no body).
        inner = {**scope, "method": "GET"}
        try:
            await self.app(inner, receive, sending)
        finally:
            if "route" in inner:  # what the router matched, for the latency metric's label
                scope["route"] = inner["route"]
