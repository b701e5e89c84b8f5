"""Headless Chromium for crawls: its configuration, what it may fetch, and what it rendered.

Every crawl can render a page: a request with `meta={"playwright": True}` (built by
`spiders.javascript.render_request`) goes to scrapy-playwright through the download handler
in `crawler/browser_handler.py`, which starts Playwright and Chromium only on the first such
request. Every other request goes through Scrapy's own HTTP handler, so a crawl that never
renders never starts a browser.

Resources are bounded so memory stays flat on long crawls: images, fonts and media are never
fetched (`should_abort_request`), contexts and pages per context are capped (config
`playwright_max_contexts`, `playwright_max_pages_per_context`), and pages are never handed to
callbacks, so scrapy-playwright closes each one as soon as its HTML is read. Browser-side
requests to private or metadata addresses named literally are aborted too (crawler.netguard).
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from crawler.config import get_settings
from crawler.errors import ConfigError, ForecourtError

CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
BLOCKED_RESOURCES = frozenset({"image", "font", "media"})
# Set on every request forecourt sends to the browser, beside scrapy-playwright's "playwright".
RENDERED = "forecourt_rendered"
# What the abort predicate refused in this process (one crawl), by reason; copied into the
# crawl's stats as forecourt/playwright/aborted/<reason> when the spider closes.
ABORTED: Counter = Counter()


def find_chromium() -> str | None:
    """The system Chromium, or None: the configured `chromium_path` if set (a wrong path is
    an error to report, not a reason to run another browser), else /usr/bin/chromium or
    the first `chromium` on PATH."""
    configured = get_settings().chromium_path
    candidates = (configured,) if configured else (
        "/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def chromium_path() -> str:
    """The system Chromium; ConfigError when there is none."""
    found = find_chromium()
    if found is None:
        configured = get_settings().chromium_path
        raise ConfigError("no Chromium for JavaScript sites"
                          + (f" at {configured}" if configured else ""),
                          hint="apt-get install -y chromium, or set FORECOURT_CHROMIUM_PATH")
    return found


def launch_options() -> dict[str, Any]:
    """PLAYWRIGHT_LAUNCH_OPTIONS: the system Chromium, headless, without a sandbox. Without a
    Chromium there is no `executable_path`, and the first render fails with a ConfigError
    (crawler/browser_handler.py) while plain crawls go on."""
    options: dict[str, Any] = {"headless": True, "args": list(CHROMIUM_ARGS)}
    found = find_chromium()
    if found:
        options["executable_path"] = found
    return options


def should_abort_request(request) -> bool:
    """PLAYWRIGHT_ABORT_REQUEST: skip heavy resources and unsafe browser-side requests."""
    if request.resource_type in BLOCKED_RESOURCES:
        ABORTED[request.resource_type] += 1
        return True
    if request.url.startswith(("http://", "https://")):
        from crawler import netguard

        try:
            netguard.check_static(request.url)
        except ForecourtError:
            ABORTED["unsafe"] += 1
            return True
    return False


def was_rendered(response) -> bool:
    """Whether a response is a page rendered in the browser (so never worth rendering again)."""
    meta = getattr(getattr(response, "request", None), "meta", None) or {}
    return bool(meta.get(RENDERED) or meta.get("playwright"))


def record_stats(stats) -> None:
    """Copy the abort predicate's counts into a crawl's stats."""
    for what, count in ABORTED.items():
        stats.set_value(f"forecourt/playwright/aborted/{what}", count)
