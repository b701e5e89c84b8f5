"""Serve the bundled fixture dealer websites on 127.0.0.1, for the demo and the tests.

Each site is a folder under fixtures/sites/ served on its own port, so each has its own
robots.txt. Text files may say `{{BASE}}` where the site's own origin belongs
(http://127.0.0.1:PORT); it is filled in when served, so sitemaps and links are absolute.
A folder's optional `routes.json` adds behaviours for paths (status codes, delays, failures
for the first N requests), which the tests use to make sites misbehave. A folder's optional
`handler.py` answers requests static files cannot (POST APIs whose answer depends on the JSON
body): its `handle(request)` gets a namespace (root, method, path, query, body, headers) and
returns (status, content type, bytes), or None to fall back to the static files.

Misbehaviours for fault tests (a routes.json rule may say, for a path):
  "redirect": "{{BASE}}/elsewhere" (with optional "redirect_status", default 302);
  "hang": true        accept the request and never answer (until the server stops, or
                      "hang_s" seconds);
  "reset": true       reset the connection (TCP RST) instead of answering;
  "endless": true     answer 200 and stream filler forever, without a Content-Length;
  "huge_bytes": N     answer 200 with a Content-Length of N and stream N bytes;
  "gzip_bomb_bytes": N  answer a small gzip body (Content-Encoding: gzip) that expands to
                      N bytes.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import mimetypes
import socket
import struct
import threading
import time
from collections import Counter
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, unquote, urlsplit

from crawler.config import PROJECT_ROOT

SITES_DIR = PROJECT_ROOT / "fixtures" / "sites"
_TEXT = {".html", ".htm", ".xml", ".txt", ".json", ".js", ".css", ".csv"}


def _handler(root: Path):
    routes = {}
    if (root / "routes.json").exists():
        routes = json.loads((root / "routes.json").read_text())
    hits: Counter = Counter()
    lock = threading.Lock()
    hook = _site_hook(root)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def do_HEAD(self):
            self._serve(head=True)

        def do_GET(self):
            self._serve(head=False)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            self._serve(head=False, body=self.rfile.read(length) if length else b"")

        def _serve(self, head: bool, body: bytes | None = None):
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            with lock:
                hits[path] += 1
                count = hits[path]
            rule = routes.get(path) or routes.get(self.path)
            if rule:
                if rule.get("delay_s"):
                    time.sleep(float(rule["delay_s"]))
                if self._misbehave(rule, head):
                    return
                fail_times = rule.get("fail_times")
                if "status" in rule and (fail_times is None or count <= fail_times):
                    return self._send(int(rule["status"]), b"fixture failure", "text/plain",
                                      head)
            if hook is not None:
                answer = hook(SimpleNamespace(root=root, method=self.command, path=path,
                                              query=parse_qs(parts.query), body=body or b"",
                                              headers=self.headers))
                if answer is not None:
                    status, ctype, payload = answer
                    suffix = ".json" if "json" in ctype else ".html" if "text" in ctype else ""
                    return self._send(status, self._fill(payload, suffix), ctype, head)
            if body is not None:
                return self._send(405, b"method not allowed", "text/plain", head)
            target = self._resolve(path, parts.query)
            if target is None:
                body = (root / "404.html").read_bytes() if (root / "404.html").exists() \
                    else b"<html><title>404 Not Found</title></html>"
                return self._send(404, self._fill(body, ".html"), "text/html", head)
            body = self._fill(target.read_bytes(), target.suffix)
            ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            if target.suffix in _TEXT:
                ctype += "; charset=utf-8"
            status = int(rule.get("serve_status", 200)) if rule else 200
            self._send(status, body, ctype, head)

        def _misbehave(self, rule: dict, head: bool) -> bool:
            """Act out a fault rule; True when the request was handled that way."""
            if "redirect" in rule:
                location = self._fill(str(rule["redirect"]).encode(), ".txt").decode()
                self.send_response(int(rule.get("redirect_status", 302)))
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return True
            if rule.get("hang"):
                self.server.stopping.wait(float(rule.get("hang_s", 3600)))
                self.close_connection = True
                return True
            if rule.get("reset"):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.close_connection = True
                try:
                    self.connection.close()
                except OSError:
                    pass
                return True
            if rule.get("endless") or rule.get("huge_bytes"):
                size = int(rule.get("huge_bytes") or 0)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                if size:
                    self.send_header("Content-Length", str(size))
                else:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                if head:
                    return True
                chunk, sent = b"<!-- filler -->" * 4096, 0
                try:
                    while not self.server.stopping.is_set() and (not size or sent < size):
                        piece = chunk if not size else chunk[:size - sent]
                        self.wfile.write(piece)
                        sent += len(piece)
                except OSError:  # the client gave up, as it should
                    pass
                return True
            if rule.get("gzip_bomb_bytes"):
                body = _gzip_zeros(int(rule["gzip_bomb_bytes"]))
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)
                return True
            return False

        def _resolve(self, path: str, query: str) -> Path | None:
            rel = path.lstrip("/")
            stems = []
            if query:  # '/inventory/?page=2' is served from 'inventory__page-2(.html)'
                stems.append(rel.rstrip("/") + "__" + query.replace("&", "_").replace("=", "-"))
            stems += [rel, (rel.rstrip("/") + "/index.html").lstrip("/")]  # "/" too
            top = root.resolve()
            for stem in stems:
                for name in (stem, stem + ".html"):
                    c = (root / name).resolve()
                    if c.is_file() and top in c.parents:
                        return c
            return None

        def _fill(self, body: bytes, suffix: str) -> bytes:
            if suffix in _TEXT:
                host = self.server.server_address
                base = f"http://{host[0]}:{host[1]}"
                return body.replace(b"{{BASE}}", base.encode())
            return body

        def _send(self, status: int, body: bytes, ctype: str, head: bool):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

    Handler.hits = hits
    return Handler


def _site_hook(root: Path):
    """The `handle` function of a site's optional handler.py, or None."""
    path = root / "handler.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"fixture_site_{root.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handle


def _gzip_zeros(size: int) -> bytes:
    """A gzip stream of `size` zero bytes, built without holding them in memory."""
    import io

    out = io.BytesIO()
    block = bytes(1 << 20)
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as gz:
        left = size
        while left > 0:
            gz.write(block[:min(left, len(block))])
            left -= len(block)
    return out.getvalue()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args, **kwargs):
        self.stopping = threading.Event()  # releases hanging and streaming requests
        super().__init__(*args, **kwargs)

    def shutdown(self):
        self.stopping.set()
        super().shutdown()

    def handle_error(self, request, client_address):
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return  # a client that went away (a killed crawl) is not the site's problem
        super().handle_error(request, client_address)


def serve(site: str | Path, port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Start serving one fixture site in a background thread; returns the server."""
    root = Path(site) if Path(site).is_absolute() else SITES_DIR / str(site)
    if not root.is_dir():
        raise FileNotFoundError(f"no fixture site at {root}")
    server = _Server((host, port), _handler(root))
    # A short poll interval: shutdown() waits for the serving loop's next look (0.5 s by
    # default), and the tests stop a server after nearly every crawl.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                     name=f"site:{root.name}").start()
    return server


def base_url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


@contextmanager
def serving(site: str | Path, port: int = 0):
    server = serve(site, port)
    try:
        yield base_url(server)
    finally:
        server.shutdown()
        server.server_close()
