"""What forecourt does on a page it renders in headless Chromium, and what it saw there.

A crawl nobody watches needs every rendered page to end, and to say when what it shows may
not be the dealer's whole inventory. So each render (one `PageWatch`, set up per download
attempt by crawler/browser_handler.py, or by `render` for `forecourt extract`):

- waits for the page's `load` event (bounded by the navigation timeout), then for its
  network to go quiet (no request in flight nor started for QUIET_S), at most
  `render_settle_s`: a page whose scripts poll or stream for ever is read anyway, with
  `settled` false, instead of failing as scrapy-playwright's `networkidle` wait did;
- scrolls to the bottom and clicks a visible "Load more vehicles" button, round after round,
  while the page grows (infinite scroll, load-more buttons), at most `render_more_rounds`
  rounds and within the page's deadline; a page still growing then is `more_left`;
- watches the page's own data requests (XHR, fetch) that failed or answered an error, and
  the documents its scripts navigated to (a consent wall, a bot check);
- must end within `render_timeout_s` of its page opening: a page whose scripts hang the
  browser (an endless loop) is closed and its request fails with RenderTimeout
  (crawler/errors.py).

`RenderNotes` (in the response's meta, `NOTES`) carries what was seen; the spider decides
with `listing_problems` what it means for the run: a page that says "0 vehicles" is never an
empty inventory when its data requests failed, its network never settled or its scripts
moved it elsewhere, and a page whose vehicles could not all be shown leaves the run
incomplete.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from crawler import browser, pages
from crawler.config import get_settings
from crawler.errors import RenderTimeout, Transient

NOTES = "forecourt_render"  # meta: the RenderNotes of a rendered response
WAIT_FOR = "forecourt_wait_for"  # meta: a CSS selector to wait for before reading
QUIET_S = 0.5  # no request in flight nor started this long: the network is quiet
UNSETTLED_PAUSE_S = 1.0  # a round's wait on a page whose network is never quiet
LISTED_FAILURES = 3
DATA_REQUESTS = frozenset({"xhr", "fetch"})
LONG_LIVED = frozenset({"eventsource", "websocket"})  # never "finish": not waited for

# A visible button that loads more results: "Load more", "Show 24 more vehicles", "View more
# results". Bare "Show more"/"View more" is not one (it expands a description or a filter).
_CLICK_MORE = r"""() => {
  const more = new RegExp("^\\s*load\\s+(\\d+\\s+)?more\\b|^\\s*(load|show|view|see)\\s+" +
    "(\\d+\\s+)?more\\s+(vehicles|results|cars|trucks|inventory|listings|matches)\\b", "i");
  const found = document.querySelectorAll('button, [role="button"], input[type="button"], ' +
    'a:not([href]), a[href="#"], a[href^="javascript:"]');
  for (const el of found) {
    const text = (el.innerText || el.value || "").trim();
    if (!text || text.length > 60 || !more.test(text)) continue;
    if (el.disabled || el.getAttribute("aria-disabled") === "true") continue;
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (!box.width || !box.height || style.visibility === "hidden") continue;
    el.scrollIntoView({block: "center"});
    el.click();
    return text;
  }
  return null;
}"""
# Scroll the page, and its scrolling boxes (the first 20), to the bottom; whether any moved.
_SCROLL = r"""() => {
  const root = document.scrollingElement || document.documentElement;
  const top = root.scrollTop;
  root.scrollTop = root.scrollHeight;
  let moved = root.scrollTop !== top, boxes = 0;
  for (const el of document.querySelectorAll("body *")) {
    if (boxes >= 20) break;
    if (el.scrollHeight > el.clientHeight + 50 &&
        /(auto|scroll)/.test(getComputedStyle(el).overflowY)) {
      const was = el.scrollTop;
      el.scrollTop = el.scrollHeight;
      moved = moved || el.scrollTop !== was;
      boxes++;
    }
  }
  return moved;
}"""
_SIZE = "() => [document.getElementsByTagName('*').length, " \
        "(document.scrollingElement || document.documentElement).scrollHeight]"


class RenderNotes(BaseModel):
    """What a render saw, beyond the HTML it read."""

    settled: bool = True  # the network went quiet before the page was read
    failed: list[str] = Field(default_factory=list)  # "GET url: HTTP 500", its data requests
    failed_loading_more: list[str] = Field(default_factory=list)  # ... while scrolling/clicking
    more_rounds: int = 0  # rounds of scrolling/clicking that showed more
    more_left: str | None = None  # why the page may hold more than was read
    moved_to: str | None = None  # a document its scripts navigated to after the one asked for


class PageWatch:
    """One render attempt of one page: its steps (settle, read all) and what it saw."""

    def __init__(self, timeout_s: float | None = None) -> None:
        settings = get_settings()
        self.timeout_s = timeout_s or settings.render_timeout_s
        self.settle_s = settings.render_settle_s
        self.more_rounds = settings.render_more_rounds
        self.notes = RenderNotes()
        self.page: Any = None
        self.deadline = float("inf")
        self.margin = 0.0
        self.on_open: Any = None  # called when the page opens (starts the deadline)
        self._inflight: set = set()
        self._last_start = 0.0
        self._documents = 0
        self._loading_more = False

    async def attach(self, page, request=None) -> None:
        """scrapy-playwright's page init callback: watch the page from its first request."""
        self.page = page
        self.deadline = time.monotonic() + self.timeout_s
        self.margin = min(10.0, self.timeout_s / 4)  # kept for reading the page
        if self.on_open is not None:
            self.on_open(self.timeout_s)
        page.on("request", self._started)
        page.on("requestfinished", self._finished)
        page.on("requestfailed", self._request_failed)
        page.on("response", self._response)

    def _started(self, request) -> None:
        self._last_start = time.monotonic()
        if request.resource_type not in LONG_LIVED:
            self._inflight.add(request)
        if request.is_navigation_request() and request.redirected_from is None \
                and self._main_frame(request):
            self._documents += 1
            if self._documents > 1:
                self.notes.moved_to = request.url

    def _main_frame(self, request) -> bool:
        try:
            return request.frame == self.page.main_frame
        except Exception:  # a service worker's request has no frame
            return False

    def _finished(self, request) -> None:
        self._inflight.discard(request)

    def _request_failed(self, request) -> None:
        self._inflight.discard(request)
        failure = request.failure or "failed"
        # ERR_ABORTED: the page cancelled it itself; and what forecourt refuses to fetch
        # (crawler.browser.abort_reason) is no failure of the site
        if request.resource_type in DATA_REQUESTS and "ERR_ABORTED" not in failure \
                and browser.abort_reason(request) is None:
            self._failed(f"{request.method} {request.url}: {failure}")

    def _response(self, response) -> None:
        if response.status >= 400 and response.request.resource_type in DATA_REQUESTS:
            self._failed(f"{response.request.method} {response.url}: HTTP {response.status}")

    def _failed(self, what: str) -> None:
        self.notes.failed.append(what)
        if self._loading_more:
            self.notes.failed_loading_more.append(what)

    async def quiet(self, longest_s: float) -> bool:
        """Wait until no request is in flight nor started for QUIET_S; False after
        `longest_s` (or at the deadline's margin) without that."""
        start = time.monotonic()
        self._last_start = max(self._last_start, start)  # what the last step started counts
        end = min(start + longest_s, self.deadline - self.margin)
        while True:
            now = time.monotonic()
            if not self._inflight and now - self._last_start >= QUIET_S:
                return True
            if now >= end:
                return False
            await asyncio.sleep(0.1)

    async def settle(self, page) -> None:
        """Page method: wait for the network to go quiet, at most render_settle_s."""
        self.notes.settled = await self.quiet(self.settle_s)

    async def read_all(self, page) -> None:
        """Page method: scroll and click "load more" while the page grows."""
        self._loading_more = True
        try:
            size = await page.evaluate(_SIZE)
            while True:
                clicked = await page.evaluate(_CLICK_MORE)
                if not await page.evaluate(_SCROLL) and not clicked:
                    return  # nothing to scroll nor click: all of it is shown
                if self.notes.settled:
                    await self.quiet(self.settle_s)
                else:  # never quiet: give the page a moment instead
                    await asyncio.sleep(UNSETTLED_PAUSE_S)
                grown = await page.evaluate(_SIZE)
                if not any(after > before for after, before in zip(grown, size, strict=True)):
                    return
                size = grown
                self.notes.more_rounds += 1
                if self.notes.more_rounds >= self.more_rounds:
                    self.notes.more_left = (f"it still showed more after {self.more_rounds} "
                                            f"rounds of scrolling" +
                                            (f" and clicking {clicked!r}" if clicked else ""))
                    return
                if time.monotonic() > self.deadline - self.margin:
                    self.notes.more_left = (f"it was still showing more after "
                                            f"{self.notes.more_rounds} rounds when its time "
                                            f"({self.timeout_s:g} s) ran out")
                    return
        finally:
            self._loading_more = False

    async def close(self) -> bool:
        """Close the page (after a timeout) if it is open; whether it was."""
        page = self.page
        if page is None or page.is_closed():
            return False
        await asyncio.wait_for(page.close(), 10)
        return True


def page_methods(watch: PageWatch, wait_for: str | None) -> list:
    """The steps after the page's load event: the dealer's `wait_for` selector if set,
    then settling and reading all."""
    from scrapy_playwright.page import PageMethod

    steps = [PageMethod("wait_for_selector", wait_for)] if wait_for else []
    return [*steps, PageMethod(watch.settle), PageMethod(watch.read_all)]


def notes(response) -> RenderNotes | None:
    meta = getattr(getattr(response, "request", None), "meta", None) or {}
    return meta.get(NOTES)


def listing_problems(url: str, final_url: str, kind: str, vehicles: int,
                     seen: RenderNotes) -> tuple[str, list[str]]:
    """What a rendered listing page (asked for as `url`, read at `final_url`) means for the
    run: its kind, and the problems that leave the run incomplete. A page its scripts moved
    to another document or site, showing no vehicles, is blocked (a consent wall, a bot
    check); "0 vehicles" is not believed from a page whose data requests failed or whose
    network never settled; a page showing vehicles whose loading of more failed, or that
    still grew when reading stopped, was not read whole."""
    moved = seen.moved_to or (final_url if _host(final_url) != _host(url) else None)
    if not vehicles and moved and kind != pages.NOT_FOUND:
        return pages.BLOCKED, [f"blocked listing page {url}: its scripts moved it to {moved} "
                               "(a consent or bot-check page?)"]
    if kind == pages.EMPTY and seen.failed:
        return kind, [f"listing page {url} says it has no vehicles, but its scripts' data "
                      f"requests failed ({_listed(seen.failed)}): its vehicles are unknown"]
    if kind == pages.EMPTY and not seen.settled:
        return kind, [f"listing page {url} says it has no vehicles, but its network never "
                      "went quiet (still loading?): its vehicles are unknown"]
    found: list[str] = []
    if vehicles and seen.failed_loading_more:
        found.append(f"listing page {url}: loading more of its vehicles failed "
                     f"({_listed(seen.failed_loading_more)}); the rest are unknown")
    if vehicles and seen.more_left:
        found.append(f"listing page {url} was not read whole: {seen.more_left}")
    return kind, found


def failed_requests_note(seen: RenderNotes | None) -> str:
    """", its scripts' data requests failed (...)" for a problem's text, or ""."""
    return f"; its scripts' data requests failed ({_listed(seen.failed)})" \
        if seen is not None and seen.failed else ""


def _listed(failures: list[str]) -> str:
    more = len(failures) - LISTED_FAILURES
    return "; ".join(failures[:LISTED_FAILURES]) + (f"; {more} more" if more > 0 else "")


def _host(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host[4:] if host.startswith("www.") else host


class RenderedPage(BaseModel):
    html: str
    status: int
    url: str  # where the page ended
    notes: RenderNotes


def render(url: str, wait_for: str | None = None) -> RenderedPage:
    """`url` rendered as a crawl renders it (same Chromium, same refused resources, same
    steps and deadline), outside any crawl: for `forecourt extract --render`."""
    return asyncio.run(_render(url, wait_for))


async def _render(url: str, wait_for: str | None) -> RenderedPage:
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import async_playwright

    options = browser.launch_options()
    if not options.get("executable_path"):
        browser.chromium_path()  # raises ConfigError with the fix
    watch = PageWatch()

    async def route(handle) -> None:
        if browser.should_abort_request(handle.request):
            await handle.abort()
        else:
            await handle.continue_()

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(**options)
        try:
            context = await chromium.new_context(user_agent=get_settings().user_agent)
            await context.route("**", route)
            page = await context.new_page()
            await watch.attach(page)
            try:
                async with asyncio.timeout(watch.timeout_s):
                    response = await page.goto(url, wait_until="load", timeout=30_000)
                    if wait_for:
                        await page.wait_for_selector(wait_for)
                    await watch.settle(page)
                    await watch.read_all(page)
                    html = await page.content()
            except TimeoutError:
                raise RenderTimeout(f"rendering {url} took longer than "
                                    f"{watch.timeout_s:g} s") from None
            except PlaywrightError as exc:
                raise Transient(f"cannot render {url}: {exc.message.splitlines()[0]}",
                                hint="check the URL") from None
            return RenderedPage(html=html, status=response.status if response else 200,
                                url=page.url, notes=watch.notes)
        finally:
            await chromium.close()
