"""The base of every dealer spider: page classification, problems, completeness.

A spider only extracts. It yields VehicleItems; it records what kind of page each response
was (and which pages were rendered in the headless browser), and it marks the run incomplete
when a listing page could not be read (or was cut short, or a redirect sent it to any page
but the same results page under the site's own URL, read already or not), so the gate never
mistakes a broken crawl for a dealer that sold everything. A redirect is Scrapy's (the
request's `redirect_urls`) or the browser's: a rendered page's response has the URL where
the page ended, after the redirects and script navigations Chromium followed itself, and its
request the URL asked for (`asked_url`). Per-platform crawl
shapes live in spiders/ (spiders/cards.py for the HTML-card platforms).
"""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import urlparse

import scrapy
from scrapy import signals
from scrapy.exceptions import IgnoreRequest
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from crawler import browser, pages, rendering
from crawler.errors import ConfigError, NoChromium
from crawler.paging import PAGER_URL, renamed_later_page, same_numbered_page, same_url

RENDERED_LISTED = 100
DETAIL_FAILURES_LISTED = 3


class ReadListing(NamedTuple):
    """A results page this crawl read: where it ended, and the most vehicles any read of it
    showed that the pages before it did not."""

    url: str
    fresh: int


class Renamed(NamedTuple):
    """A later results page redirected to a page of the same listing the crawl had asked
    for already (dropped by Scrapy's duplicate filter), judged when the spider closes."""

    asked: str
    target: str


class DealerSpider(scrapy.Spider):
    """Common state and helpers; subclasses implement `start` and their parse callbacks."""

    name = "dealer"

    def __init__(self, url: str | None = None, dealer_settings: dict[str, Any] | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if not url:
            raise ValueError(f"{self.name} spider needs url=<dealer website>")
        self.start_url = url
        self.dealer_settings = dealer_settings or {}
        host = urlparse(url).hostname or ""
        # the bare domain and its www. host are one site (one redirects to the other)
        self.allowed_domains = sorted({host, _bare(host)}) if host else []
        self.problems: list[str] = []
        self.incomplete = False
        # a listing page this machine could not fetch however often it tried (no Chromium
        # to render it): a failed run then fails for good, not retried (jobs/outcome.py)
        self.misconfigured = False
        # ... because this machine has no Chromium: a worker that has one may (jobs/failures.py)
        self.lacks_chromium = False
        self.detail_failures = 0
        self.page_kinds: dict[str, int] = {}
        # pages read after rendering in the browser (the first RENDERED_LISTED; all counted
        # in the stats as forecourt/rendered/pages)
        self.rendered_pages: list[str] = []
        # listing pages read, by the duplicate filter's fingerprint of each URL of their
        # redirect chain; and renamed results pages dropped as duplicates, by their target's
        self.listings_read: dict[bytes, ReadListing] = {}
        self.renamed_to_read: dict[bytes, list[Renamed]] = {}

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.request_dropped, signal=signals.request_dropped)
        crawler.signals.connect(spider.request_scheduled, signal=signals.request_scheduled)
        return spider

    def same_site(self, url: str) -> bool:
        """On the dealer's site: its host, or the same with or without `www.`."""
        return _bare(urlparse(url).hostname or "") in {_bare(h) for h in self.allowed_domains}

    def note_page(self, response: scrapy.http.Response, vehicles_found: int,
                  listing: bool, fresh: int | None = None) -> str:
        """Classify a response, count it, and record it as a problem when it matters.
        `fresh`: how many of a listing page's vehicles the pages before it (in its run of
        next pages) did not show, from a spider that keeps them; else `vehicles_found` (and
        a redirect that renumbers a later page cannot be checked: see _judge_redirect)."""
        body = response.text if hasattr(response, "text") else ""
        kind = pages.classify(response.status, body, vehicles_found)
        seen = rendering.notes(response)
        doubts: list[str] = []  # what makes a rendered listing page untrustworthy
        if listing and seen is not None:
            kind, doubts = rendering.listing_problems(response.request.url, response.url,
                                                      kind, vehicles_found, seen)
        self.page_kinds[kind] = self.page_kinds.get(kind, 0) + 1
        self.crawler.stats.inc_value(f"forecourt/pages/{kind}")
        if browser.was_rendered(response):
            if len(self.rendered_pages) < RENDERED_LISTED:
                self.rendered_pages.append(response.url)
            self.crawler.stats.inc_value("forecourt/rendered/pages")
            self.crawler.stats.inc_value(f"forecourt/rendered/{kind}")
            if seen is not None:
                self._count_render(seen)
        cut = listing and kind not in (pages.BLOCKED, pages.NOT_FOUND) \
            and pages.cut_short(body)
        if cut:  # its cards and pager after the cut are unknown
            self.problems.append(f"results page {response.url} was cut short: {cut}, without "
                                 "</body></html>; the vehicles after the cut are unknown")
            self.incomplete = True
        if doubts:
            self.problems.extend(doubts)
            self.incomplete = True
        elif listing and kind in (pages.BLOCKED, pages.NOT_FOUND):
            # one line for the page, naming the page asked for when it was redirected here
            asked = asked_url(response)
            self.problems.append(f"{kind} listing page {response.url}" if same_url(
                asked, response.url) else f"{kind} listing page {asked}: redirected to "
                                          f"{response.url}")
        elif listing and kind == pages.EMPTY and response.url != self.start_url \
                and PAGER_URL.search(response.url) and self.redirected_from(response) is None:
            # "no vehicles match" on page 2+ is a site fault, not a sell-out of the rest
            self.problems.append(f"results page {response.url} says no vehicles although it "
                                 "is a later page of the listing")
            self.incomplete = True
        elif kind == pages.BLOCKED:
            self.problems.append(f"blocked page {response.url}")
        if listing:
            tracked = fresh is not None
            fresh = vehicles_found if fresh is None else fresh
            if kind not in (pages.BLOCKED, pages.NOT_FOUND):  # said once, above
                self._judge_redirect(response, fresh, tracked)
            self._remember_listing(response, fresh)
        return kind

    def _fingerprint(self, url: str) -> bytes:
        """What Scrapy's duplicate filter calls the same request: a GET of `url`."""
        return self.crawler.request_fingerprinter.fingerprint(scrapy.Request(url))

    def _remember_listing(self, response: scrapy.http.Response, fresh: int) -> None:
        """Record a listing page read, under each URL the duplicate filter saw on its way
        (a redirected request dropped as a duplicate of one of them led here)."""
        chain = [*(response.meta.get("redirect_urls") or []), response.request.url,
                 response.url]  # a rendered page's request is the URL asked for
        for url in dict.fromkeys(chain):
            key = self._fingerprint(url)
            known = self.listings_read.get(key)
            if known is None or fresh > known.fresh:  # a page rendered after its plain read
                self.listings_read[key] = ReadListing(response.url, fresh)

    def _judge_redirect(self, response: scrapy.http.Response, fresh: int,
                        tracked: bool = True) -> None:
        """A later results page (page=2, start=20, /page/3/) that a redirect answered from
        another URL: page 2 sent to the home page, to page 1, to a consent wall or another
        listing leaves its cars unknown, and the run incomplete. Only the site naming the
        same page its own way is not (`?start=20` -> `?page=2`, `/page/2/` -> `/?page=2`, a
        trailing slash, `&sort=price` added): the redirect ends at a later page of the same
        listing (crawler/paging.py, `renamed_later_page`) AND that page shows `fresh`
        vehicles, ones the pages before it did not show. A page showing none (no vehicles,
        or page 1's again) is judged as lost, even one the browser might yet fill: in doubt,
        nothing is removed. A spider that does not keep the pages before (`tracked` False:
        `fresh` is only the page's vehicle count, which page 1's cars served again would
        pass) is trusted only with a renaming that keeps the page's number
        (`same_numbered_page`). A page rendered in the browser is judged the same by where
        it ended (`asked_url`): Chromium follows redirects and its scripts' navigations
        itself, and a script writing page 1's address (`history.replaceState`) is taken at
        its word; a final URL that is the one asked for written another way (a fragment,
        percent-encoding: `same_url`) is no redirect."""
        asked = self.redirected_from(response)
        if asked is None:
            return
        if not renamed_later_page(asked, response.url) or (
                not tracked and not same_numbered_page(asked, response.url)):
            self.problems.append(f"results page {asked} redirected to {response.url}; its "
                                 "vehicles are unknown")
            self.incomplete = True
        elif not fresh:
            self.problems.append(f"results page {asked} redirected to {response.url}, which "
                                 "shows no vehicle the pages before it did not; its vehicles "
                                 "are unknown")
            self.incomplete = True

    def redirected_from(self, response: scrapy.http.Response) -> str | None:
        """The later results page (page=2, start=20, /page/3/) a listing response was asked
        as and that a redirect, Scrapy's or the browser's, answered from another URL; None
        for any other response. Such a page is judged by `_judge_redirect`, which also says
        when it shows nothing new."""
        asked = asked_url(response)
        if not PAGER_URL.search(asked) or same_url(asked, response.url):
            return None
        return asked

    def _count_render(self, seen) -> None:
        stats = self.crawler.stats
        if not seen.settled:
            stats.inc_value("forecourt/rendered/unsettled")
        if seen.failed:
            stats.inc_value("forecourt/rendered/failed_requests", len(seen.failed))
        if seen.more_rounds:
            stats.inc_value("forecourt/rendered/more_rounds", seen.more_rounds)

    def listing_failed(self, failure: Failure) -> None:
        """Errback for listing pages: without them the inventory is not known in full, so
        even one not made (robots.txt forbids it, it redirects off-site) leaves the run
        incomplete."""
        request = getattr(failure, "request", None)
        url = request.url if request is not None else "?"
        if self._ignored(failure):
            self.problems.append(f"listing page {url} not fetched: "
                                 f"{failure.getErrorMessage() or 'request refused'}")
            self.incomplete = True
            return
        response = getattr(failure.value, "response", None)
        if response is not None and response.status in (401, 403, 429):
            self.problems.append(f"blocked listing page {url} (HTTP {response.status})")
        elif response is not None and response.status in (404, 410):
            self.problems.append(f"not_found listing page {url} (HTTP {response.status})")
        elif response is not None:  # a 5xx, say: Scrapy's own words would hide which
            self.problems.append(f"listing page {url} failed: HTTP {response.status}")
        else:
            if failure.check(ConfigError):
                self.misconfigured = True
                self.lacks_chromium |= failure.check(NoChromium) is not None
            hint = getattr(failure.value, "hint", "")  # a ForecourtError says the fix
            self.problems.append(f"listing page {url} failed: {failure.getErrorMessage()}"
                                 + (f" ({hint})" if hint else ""))
        self.incomplete = True

    def request_dropped(self, request: scrapy.Request, spider=None) -> None:
        """Scrapy's duplicate filter drops a request for a page already asked for (the
        redirected request keeps the original's `dont_filter`, False, and is scheduled
        under its new URL), with no callback and no errback. For a later results page
        (page=2, pg=3...) redirected to another page the crawl asked for (page 1, the
        search's start, another listing) that is a results page lost: the run is
        incomplete. The same page under a slightly other URL (the same page number of the
        same listing: `/page/2/`, a trailing slash, `www.`) is not. A page numbered another
        way (`?start=20` -> `?page=2`, page 1 linking page 2 both ways) is judged when the
        spider closes, as `_judge_redirect` judges one it reads: by what the crawl read at
        that URL (`settle_redirects`)."""
        if spider not in (None, self) or request.errback != self.listing_failed:
            return
        redirected = request.meta.get("redirect_urls") or []
        if not redirected or not PAGER_URL.search(redirected[0]) \
                or same_numbered_page(redirected[0], request.url):
            return
        if renamed_later_page(redirected[0], request.url):
            self.renamed_to_read.setdefault(self._fingerprint(request.url), []).append(
                Renamed(redirected[0], request.url))
            return
        self.problems.append(f"results page {redirected[0]} redirected to a page already "
                             f"read ({request.url}); its vehicles are unknown")
        self.incomplete = True

    def settle_redirects(self) -> None:
        """Once the crawl is done: a later results page renamed to a URL the crawl had asked
        for already is that page when the crawl read it there as a later page of the same
        listing showing vehicles the pages before it did not (the rule for a page read
        through its redirect, `_judge_redirect`); otherwise (never read as a results page,
        redirected on elsewhere, no new vehicles) its vehicles are unknown."""
        pending, self.renamed_to_read = self.renamed_to_read, {}
        for key, renamed in pending.items():
            read = self.listings_read.get(key)
            for asked, target in renamed:
                if read is None:
                    why = "which the crawl asked for but never read as a results page"
                elif not renamed_later_page(asked, read.url):
                    why = f"read already, and redirected on to {read.url}"
                elif not read.fresh:
                    why = "which shows no vehicle the pages before it did not"
                else:
                    continue
                self.problems.append(f"results page {asked} redirected to {target}, {why}; "
                                     "its vehicles are unknown")
                self.incomplete = True

    def request_scheduled(self, request: scrapy.Request, spider=None) -> None:
        """Scrapy's offsite filter drops a request redirected off the dealer's site as it is
        scheduled, with no callback, no errback and no request_dropped: a listing page so
        lost leaves the run incomplete; a detail page is the platform's to judge
        (`redirected_away`). Off the site is judged by the host, as that filter judges it
        (Scrapy's `url_is_from_any_domain` compares host:port, which never matches a domain:
        every redirect to a URL with a port was called off the site)."""
        redirected = request.meta.get("redirect_urls")
        if spider not in (None, self) or not redirected or request.dont_filter \
                or request.meta.get("allow_offsite") \
                or _on_domains(request.url, self.allowed_domains):
            return
        if request.errback == self.listing_failed:
            self.problems.append(f"results page {redirected[0]} redirected off the site to "
                                 f"{request.url}; its vehicles are unknown")
            self.incomplete = True
        else:
            self.redirected_away(request, redirected[0])

    def redirected_away(self, request: scrapy.Request, asked: str) -> None:
        """A request for `asked` that a redirect took where it is never read (off the site,
        or to a page already read). Nothing by default."""

    def _ignored(self, failure: Failure) -> bool:
        """Requests we chose not to make (robots.txt, offsite) are not failures of the site.
        An HTTP error answer (HttpError subclasses IgnoreRequest) is one."""
        if failure.check(IgnoreRequest) and not failure.check(HttpError):
            self.crawler.stats.inc_value("forecourt/ignored_requests")
            return True
        return False

    def detail_failed(self, failure: Failure) -> None:
        """Errback for detail pages: the run can still be judged, but it is not complete."""
        if self._ignored(failure):
            return
        request = getattr(failure, "request", None)
        url = request.url if request is not None else "?"
        response = getattr(failure.value, "response", None)
        why = f"HTTP {response.status}" if response is not None else failure.getErrorMessage()
        self.detail_problem(url, f"failed: {why}")

    def detail_problem(self, url: str, what: str) -> None:
        """A detail page that did not give its vehicle: named in the problems (the first
        few), counted, and the run is incomplete."""
        self.crawler.stats.inc_value("forecourt/detail_failures")
        self.logger.warning("detail page %s %s", url, what)
        self.detail_failures += 1
        if self.detail_failures <= DETAIL_FAILURES_LISTED:  # the run's error says why
            self.problems.append(f"detail page {url} {what}")
        elif self.detail_failures == DETAIL_FAILURES_LISTED + 1:
            self.problems.append("more detail pages failed (see the crawl log)")
        self.incomplete = True

    def closed(self, reason: str) -> None:
        self.settle_redirects()
        browser.record_stats(self.crawler.stats)


def asked_url(response: scrapy.http.Response) -> str:
    """The URL a response's page was first asked for: the first of Scrapy's redirects
    (`redirect_urls`), else the request's. A page rendered in the browser answers with the
    URL where the page ended, after the HTTP redirects (recorded by scrapy-playwright in
    `redirect_urls` too) and script navigations Chromium followed, while its request keeps
    the URL asked for."""
    return (response.meta.get("redirect_urls") or [response.request.url])[0]


def _on_domains(url: str, domains: list[str]) -> bool:
    """Whether the URL's host is one of the domains or under one (Scrapy's offsite rule)."""
    host = (urlparse(url).hostname or "").lower()
    return not domains or any(host == d or host.endswith("." + d)
                              for d in (d.lower() for d in domains))


def _bare(host: str) -> str:
    return host[4:] if host.startswith("www.") else host
