"""Headless Chromium for crawls: its configuration, what it may fetch, and what it rendered.

Every crawl can render a page: a request with `meta={"playwright": True}` (built by
`spiders.javascript.render_request`) goes to scrapy-playwright through the download handler
in `crawler/browser_handler.py`, which starts Playwright and Chromium only on the first such
request. Every other request goes through Scrapy's own HTTP handler, so a crawl that never
renders never starts a browser.

Resources are bounded so memory stays flat on long crawls: images, fonts, media and
analytics, ad and chat-widget hosts are never fetched (`should_abort_request`), contexts and
pages per context are capped (config `playwright_max_contexts`,
`playwright_max_pages_per_context`), and pages are never handed to callbacks, so
scrapy-playwright closes each one as soon as its HTML is read. Browser-side requests to
private or metadata addresses named literally are aborted too (crawler.netguard). What is
done on each page (settling, scrolling, "load more", its deadline) is crawler/rendering.py.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from crawler.config import get_settings
from crawler.errors import ForecourtError, NoChromium

CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
BLOCKED_RESOURCES = frozenset({"image", "font", "media"})
# Analytics, ad and chat-widget hosts (and their subdomains) a rendered page never needs.
TRACKER_HOSTS = (
    "google-analytics.com", "googletagmanager.com", "doubleclick.net", "googleadservices.com",
    "googlesyndication.com", "connect.facebook.net", "analytics.tiktok.com", "bat.bing.com",
    "clarity.ms", "hotjar.com", "hotjar.io", "fullstory.com", "mouseflow.com",
    "crazyegg.com", "segment.io", "cdn.segment.com", "mixpanel.com", "nr-data.net",
    "js-agent.newrelic.com", "adroll.com", "criteo.com", "criteo.net", "quantserve.com",
    "scorecardresearch.com", "gubagoo.io", "carnow.com", "livechatinc.com",
    "contactatonce.com", "podium.com", "intercom.io", "driftt.com",
)
# What to do on a machine without Chromium (in errors, warnings and workers' log lines).
CHROMIUM_FIX = "apt-get install -y chromium, or set FORECOURT_CHROMIUM_PATH"
# Set on every request forecourt sends to the browser, beside scrapy-playwright's "playwright".
RENDERED = "forecourt_rendered"
# What the abort predicate refused in this process (one crawl), by reason; copied into the
# crawl's stats as forecourt/playwright/aborted/<reason> when the spider closes.
ABORTED: Counter = Counter()


def _runnable(path: str | None) -> bool:
    return bool(path) and Path(path).is_file() and os.access(path, os.X_OK)


def find_chromium() -> str | None:
    """The system Chromium, or None: the configured `chromium_path` if set (a wrong path is
    an error to report, not a reason to run another browser), else /usr/bin/chromium or
    the first `chromium` on PATH; only a file this user may execute."""
    configured = get_settings().chromium_path
    candidates = (configured,) if configured else (
        "/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
    return next((c for c in candidates if c and _runnable(c)), None)


def chromium_path() -> str:
    """The system Chromium; NoChromium (a ConfigError) when there is none (or it cannot be
    executed)."""
    found = find_chromium()
    if found is None:
        configured = get_settings().chromium_path
        if configured and Path(configured).is_file():
            raise NoChromium(f"Chromium for JavaScript sites at {configured} is not "
                             "executable (FORECOURT_CHROMIUM_PATH)",
                             hint=f"chmod +x {configured}, {CHROMIUM_FIX}")
        raise NoChromium("no Chromium for JavaScript sites"
                         + (f" at {configured}" if configured else ""),
                         hint=CHROMIUM_FIX)
    return found


def launch_options() -> dict[str, Any]:
    """PLAYWRIGHT_LAUNCH_OPTIONS: the system Chromium, headless, without a sandbox. Without a
    Chromium there is no `executable_path`, and the first render fails with NoChromium
    (crawler/browser_handler.py) while plain crawls go on."""
    options: dict[str, Any] = {"headless": True, "args": list(CHROMIUM_ARGS)}
    found = find_chromium()
    if found:
        options["executable_path"] = found
    return options


def abort_reason(request) -> str | None:
    """Why the browser must not fetch a request (pure): "image", "font", "media" (heavy and
    never read), "tracker" (analytics, ads and chat widgets: bandwidth and CPU for nothing,
    and their beacons and polling keep a page's network from ever going quiet), "unsafe"
    (a literal private or metadata address); None to fetch it."""
    if request.resource_type in BLOCKED_RESOURCES:
        return request.resource_type
    if not request.url.startswith(("http://", "https://")):
        return None
    host = (urlsplit(request.url).hostname or "").lower().rstrip(".")
    if any(host == t or host.endswith("." + t) for t in TRACKER_HOSTS):
        return "tracker"
    from crawler import netguard

    try:
        netguard.check_static(request.url)
    except ForecourtError:
        return "unsafe"
    return None


def should_abort_request(request) -> bool:
    """PLAYWRIGHT_ABORT_REQUEST: skip heavy resources, trackers and unsafe requests, counted."""
    reason = abort_reason(request)
    if reason is not None:
        ABORTED[reason] += 1
    return reason is not None


def was_rendered(response) -> bool:
    """Whether a response is a page rendered in the browser (so never worth rendering again)."""
    meta = getattr(getattr(response, "request", None), "meta", None) or {}
    return bool(meta.get(RENDERED) or meta.get("playwright"))


def record_stats(stats) -> None:
    """Copy the abort predicate's counts into a crawl's stats."""
    for what, count in ABORTED.items():
        stats.set_value(f"forecourt/playwright/aborted/{what}", count)
