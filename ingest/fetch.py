"""Fetching a feed URL: streamed to a size-limited temporary file, retried with exponential
backoff on connection errors and 5xx/429, and conditional (If-None-Match, If-Modified-Since)
so that a feed the server says is unchanged, or whose body hashes the same as the last one
processed, is not processed again.

The whole fetch (every attempt and the waits between them) has a deadline,
feed_fetch_deadline_s: httpx's timeouts bound each connect and each read only, so a server
trickling a byte now and then would otherwise hold a worker (and the dealer's one active
job) for as long as it likes. Past the deadline the fetch fails as Transient and is not
retried here.

A caller may pass `check_stop`, which raises to abandon the download (its job was cancelled,
say): it is called as each chunk arrives and while waiting between tries, so a cancel does
not wait for the rest of a large or slow body.

A 304 answers a conditional request only: to a request that named no validators (none
stored, or `--force`) it is the server's error, retried as Transient, never "unchanged"."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
)

from crawler.config import get_settings
from crawler.errors import Permanent, Transient
from crawler.urls import check_http_url
from ingest.streams import FeedTooLarge

_TYPES = {"text/csv": ".csv", "text/tab-separated-values": ".tsv", "application/json": ".json",
          "application/x-ndjson": ".jsonl", "application/xml": ".xml", "text/xml": ".xml",
          "application/rss+xml": ".xml", "application/gzip": ".gz", "application/zip": ".zip"}


@dataclass
class Fetched:
    """What a fetch got: a file to read (None when unchanged) and the validators to keep."""

    path: Path | None
    unchanged: bool
    status: int
    etag: str | None = None
    last_modified: str | None = None
    body_sha256: str | None = None
    body_bytes: int | None = None
    attempts: int = 1


@dataclass
class _Deadline:
    """The end of a fetch's time (time.monotonic()), and the error for going past it."""

    url: str
    budget: float
    at: float

    def left(self) -> float:
        return self.at - time.monotonic()

    def passed(self) -> bool:
        return self.left() <= 0

    def check(self, received: int | None = None) -> None:
        """Raise Transient once the deadline has passed."""
        if self.passed():
            got = "" if received is None else f" ({received:,} bytes received)"
            raise Transient(
                f"feed {self.url} was not downloaded within its {self.budget:g} s deadline"
                f"{got}: the server sends too slowly or stalls",
                hint="raise FORECOURT_FEED_FETCH_DEADLINE_S if the feed is really this slow")


def _client(timeout: float) -> httpx.Client:
    """An HTTP client whose connections (redirects included) go only to allowed addresses
    (crawler.netguard: public, or listed in FORECOURT_ALLOW_PRIVATE_HOSTS)."""
    from crawler import netguard

    return netguard.safe_client(timeout=timeout, follow_redirects=True)


def _suffix(url: str, content_type: str | None) -> str:
    name = Path(urlparse(url).path).name.lower()
    if "." in name:
        return "".join(Path(name).suffixes[-2:])
    return _TYPES.get((content_type or "").split(";")[0].strip().lower(), "")


def _file_name(url: str, content_type: str | None) -> str:
    """The download's file name: the URL's own (what the summary and every error about the
    file name: 'stock.zip is a corrupt zip archive', never a temporary name), else 'feed'
    with the suffix its type gives."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", unquote(Path(urlparse(url).path).name))
    name = name.lstrip(".")[-120:]
    if "." not in name:  # the suffix its type gives tells the readers the format
        name = (name or "feed") + _suffix(url, content_type)
    return name


def discard(path: Path) -> None:
    """Delete a downloaded feed and the folder of its own it was downloaded into."""
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:
        pass


def _sleeper(check_stop: Callable[[], None] | None) -> Callable[[float], None]:
    """tenacity's wait between tries, calling `check_stop` a few times a second."""
    def sleep(seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if check_stop is not None:
                check_stop()
            time.sleep(min(left, 0.25))
    return sleep


def fetch(url: str, previous: dict | None = None, dest_dir: Path | None = None, *,
          check_stop: Callable[[], None] | None = None) -> Fetched:
    """GET a feed (retrying transient failures); `previous` holds the stored validators.
    `check_stop` (cheap: it is called per chunk received) raises to abandon the fetch."""
    settings = get_settings()
    check_http_url(url)
    headers = {"User-Agent": settings.user_agent, "Accept-Encoding": "gzip"}
    if previous:
        if previous.get("etag"):
            headers["If-None-Match"] = previous["etag"]
        if previous.get("last_modified"):
            headers["If-Modified-Since"] = previous["last_modified"]
    dest_dir = dest_dir or settings.data_dir / "feeds"
    dest_dir.mkdir(parents=True, exist_ok=True)
    attempts = {"n": 0}
    budget = settings.feed_fetch_deadline_s
    deadline = _Deadline(url, budget, time.monotonic() + budget)

    # A Transient error is retried while the deadline allows the wait before the next try;
    # the deadline's own error is not retried.
    @retry(retry=retry_if_exception(lambda exc: isinstance(exc, Transient)
                                    and not deadline.passed()), reraise=True,
           stop=stop_after_attempt(max(1, settings.feed_fetch_attempts))
           | stop_before_delay(budget),
           wait=wait_exponential(multiplier=settings.feed_fetch_backoff_s, max=60),
           sleep=_sleeper(check_stop))
    def attempt() -> Fetched:
        attempts["n"] += 1
        if check_stop is not None:
            check_stop()
        deadline.check()
        # no single connect or read waits longer than the time left as this attempt
        # begins; the sum of them is bounded by the checks as chunks arrive (_receive)
        timeout = max(0.001, min(settings.feed_fetch_timeout_s, deadline.left()))
        try:
            with _client(timeout) as client, \
                    client.stream("GET", url, headers=headers) as response:
                return _receive(response, url, previous, dest_dir,
                                settings.feed_max_download_bytes, deadline, check_stop,
                                conditional="If-None-Match" in headers
                                or "If-Modified-Since" in headers)
        except httpx.TransportError as exc:
            deadline.check()
            raise Transient(f"feed {url} could not be fetched: {exc}") from exc
        except httpx.TooManyRedirects as exc:
            raise Permanent(f"feed {url} redirects in a loop (or too many times)",
                            hint="check the dealership's feed URL") from exc
        except httpx.DecodingError as exc:  # a Content-Encoding the body does not match
            raise Permanent(f"feed {url} sent a body its Content-Encoding cannot decode: "
                            f"{exc}", hint="ask the feed's provider to fix the server") from exc

    fetched = attempt()
    fetched.attempts = attempts["n"]
    return fetched


def _receive(response: httpx.Response, url: str, previous: dict | None, dest_dir: Path,
             limit: int, deadline: _Deadline, check_stop: Callable[[], None] | None = None,
             *, conditional: bool) -> Fetched:
    status = response.status_code
    if status == 304 and not conditional:  # "not modified" since nothing we named
        raise Transient(f"feed {url} answered HTTP 304 Not Modified to a request without "
                        "If-None-Match or If-Modified-Since (a server error, not an "
                        "unchanged feed)", hint="ask the feed's provider to fix the server "
                        "if it persists")
    if status == 304:
        return Fetched(None, True, status, previous.get("etag") if previous else None,
                       previous.get("last_modified") if previous else None)
    if status >= 500 or status == 429:
        raise Transient(f"feed {url} answered HTTP {status}")
    if status >= 400:
        raise Permanent(f"feed {url} answered HTTP {status}",
                        hint="check the dealership's feed URL")
    digest = hashlib.sha256()
    size = 0
    # a folder of its own, so the file keeps the URL's name
    path = Path(tempfile.mkdtemp(prefix="feed-", dir=dest_dir)) / _file_name(
        url, response.headers.get("content-type"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    # A gzip Content-Encoding is kept as sent (the readers open gzip themselves): httpx's
    # decoder takes a body cut short for a whole, shorter feed, whose missing rows a
    # healthy run would then remove. The stream is checked to its end here.
    gzipped = response.headers.get("content-encoding", "").strip().lower() in ("gzip",
                                                                               "x-gzip")
    check = zlib.decompressobj(wbits=47) if gzipped else None
    try:
        with open(fd, "wb") as out:
            # chunks as they arrive (not gathered to a size), so a trickle meets the check
            for chunk in (response.iter_raw() if gzipped else response.iter_bytes()):
                size += len(chunk)
                if size > limit:
                    raise FeedTooLarge(f"feed {url} is larger than {limit:,} bytes",
                                       hint="raise FORECOURT_FEED_MAX_DOWNLOAD_BYTES")
                digest.update(chunk)
                out.write(chunk)
                if check is not None:
                    try:
                        while chunk and not check.eof:
                            check.decompress(chunk, 1 << 20)
                            chunk = check.unconsumed_tail
                    except zlib.error as exc:
                        raise Permanent(f"feed {url} sent a gzip body that does not decode: "
                                        f"{exc}", hint="ask the feed's provider to fix the "
                                        "server") from exc
                if check_stop is not None:
                    check_stop()
                deadline.check(size)
        if check is not None and not check.eof:
            raise Transient(f"feed {url} was cut short: its gzip body ends before its end "
                            f"({size:,} bytes received)")
    except BaseException:
        discard(path)
        raise
    sha = digest.hexdigest()
    fetched = Fetched(path, False, status, response.headers.get("etag"),
                      response.headers.get("last-modified"), sha, size)
    if previous and previous.get("body_sha256") == sha:
        discard(path)
        fetched.path, fetched.unchanged = None, True
    return fetched
