"""Fetching a feed URL: streamed to a size-limited temporary file, retried with exponential
backoff on connection errors and 5xx/429, and conditional (If-None-Match, If-Modified-Since)
so that a feed the server says is unchanged, or whose body hashes the same as the last one
processed, is not processed again."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

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


def fetch(url: str, previous: dict | None = None, dest_dir: Path | None = None) -> Fetched:
    """GET a feed (retrying transient failures); `previous` holds the stored validators."""
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

    @retry(retry=retry_if_exception_type(Transient), reraise=True,
           stop=stop_after_attempt(max(1, settings.feed_fetch_attempts)),
           wait=wait_exponential(multiplier=settings.feed_fetch_backoff_s, max=60))
    def attempt() -> Fetched:
        attempts["n"] += 1
        try:
            with _client(settings.feed_fetch_timeout_s) as client, \
                    client.stream("GET", url, headers=headers) as response:
                return _receive(response, url, previous, dest_dir, settings.feed_max_download_bytes)
        except httpx.TransportError as exc:
            raise Transient(f"feed {url} could not be fetched: {exc}") from exc

    fetched = attempt()
    fetched.attempts = attempts["n"]
    return fetched


def _receive(response: httpx.Response, url: str, previous: dict | None, dest_dir: Path,
             limit: int) -> Fetched:
    status = response.status_code
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
    fd, name = tempfile.mkstemp(prefix="feed-", suffix=_suffix(url, response.headers.get(
        "content-type")), dir=dest_dir)
    path = Path(name)
    try:
        with open(fd, "wb") as out:
            for chunk in response.iter_bytes(256 * 1024):
                size += len(chunk)
                if size > limit:
                    raise FeedTooLarge(f"feed {url} is larger than {limit:,} bytes",
                                       hint="raise FORECOURT_FEED_MAX_DOWNLOAD_BYTES")
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    sha = digest.hexdigest()
    fetched = Fetched(path, False, status, response.headers.get("etag"),
                      response.headers.get("last-modified"), sha, size)
    if previous and previous.get("body_sha256") == sha:
        path.unlink(missing_ok=True)
        fetched.path, fetched.unchanged = None, True
    return fetched
