"""The HTTP/1.1 protocol `forecourt api` serves with: uvicorn's httptools protocol (the one
uvicorn picks itself, httptools being a dependency), except that a request it cannot parse
(a control character in a header, a malformed request line or chunk) answers 400 in
problem+json like every other error, instead of uvicorn's plain-text "Invalid HTTP request
received.". Such a request never reaches the application, so the answer is written here:
`about:blank` (nothing to add to the status), `instance` null (the request line may be what
is wrong), and the connection closed, as uvicorn does. It overrides uvicorn's
`send_400_response`; tests/api/test_limits_and_errors.py fails if an upgrade renames it."""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from jobs.api.problems import MEDIA_TYPE

_BODY = json.dumps({"type": "about:blank", "title": "Bad Request", "status": 400,
                    "detail": "the request is not valid HTTP/1.1 (a control character in a "
                              "header, a malformed request line or chunked body)",
                    "instance": None}).encode()


class ProblemHttpTools(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:  # date (server: off)
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-type: ", MEDIA_TYPE.encode(), b"\r\n",
                 b"content-length: ", str(len(_BODY)).encode(), b"\r\n",
                 b"connection: close\r\n\r\n"]
        self.transport.write(b"".join(head) + _BODY)
        self.transport.close()
