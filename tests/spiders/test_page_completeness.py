"""When a page is not all it should be (pure logic; the crawls are in
tests/integration/test_crawl_page_completeness.py): cut short, an error page served with 200,
a results page redirected to a page already read. And the ordinary pages that must not look
so."""
from __future__ import annotations

import pytest
from scrapy.http import Request

from crawler import pages
from spiders.generic import url_vin
from tests.spiders.test_chain import spider_of

DOC = ("<!DOCTYPE html><html lang=en><head><title>Used cars | Dealer</title></head><body>"
       "<main><div class=results><div class=card data-vin=19XFC2F7XME104512>Civic</div>"
       "<div class=card data-vin=2T3P1RFV7PC338201>RAV4</div></div>"
       "<nav class=pager><a href='?page=2'>2</a></nav></main><footer>Dealer</footer>")


@pytest.mark.parametrize("body", [
    DOC + "</body></html>",
    DOC,  # HTML5: </body> and </html> may be left out
    DOC + "</body></html>\n<script>analytics()</script>",
    "<!doctype html><title>x</title><p>one<ul><li>a<li>b</ul><p>two",  # optional end tags
    "<div><p>a fragment, not a document",  # a fragment (an API's HTML snippet)
    '{"html": "<html><body><div>"}',  # JSON
    DOC + "<div/>",
], ids=["whole", "html5-without-end-tags", "script-after-html", "optional-end-tags",
        "fragment", "json", "self-closed-div"])
def test_whole_pages_are_not_cut_short(body):
    assert pages.cut_short(body) is None


@pytest.mark.parametrize("cut, inside", [
    (DOC.index("<div class=card data-vin=2T3"), "<div>"),  # between two cards
    (DOC.index("RAV4"), "<div>"),
    (DOC.index("<nav") + 5, "a tag"),
])
def test_pages_stopping_mid_document_are_cut_short(cut, inside):
    assert inside in pages.cut_short(DOC[:cut])


def test_a_page_stopping_inside_its_structured_data_is_cut_short():
    page = ('<!doctype html><html><head><title>Civic</title><script type="application/ld+'
            'json">{"@type": "Car", "vehicleIdentificationNumber": "19XF')
    assert "<script>" in pages.cut_short(page)


@pytest.mark.parametrize("title", ["Too Many Requests", "429 - Rate limit exceeded",
                                   "503 Service Unavailable", "Internal Server Error",
                                   "502 Bad Gateway", "Oops! Something went wrong",
                                   "We are down for maintenance"])
def test_error_pages_say_so_in_their_title(title):
    assert pages.error_page(f"<html><head><title>{title}</title></head><body></body></html>")


@pytest.mark.parametrize("title", ["2021 Honda Civic EX | Maple Ridge Motors",
                                   "Fiat 500 Models | Maple Ridge Motors",
                                   "Apply for financing | Maple Ridge Motors"])
def test_ordinary_pages_are_not_error_pages(title):
    body = (f"<html><head><title>{title}</title></head><body><p>Something went wrong with "
            "your old car? Trade it in.</p></body></html>")
    assert pages.error_page(body) is None


def test_vins_in_urls():
    assert url_vin("http://d.example/inventory/used-2021-honda-civic-19XFC2F7XME104512") \
        == "19XFC2F7XME104512"
    assert url_vin("http://d.example/finance/apply?vin=19xfc2f7xme104512") \
        == "19XFC2F7XME104512"
    assert url_vin("http://d.example/inventory/used-2018-kia-soul-NOVIN00001") is None
    assert url_vin("http://d.example/inventory/12345678901234567") is None  # no letters


def _dropped(spider, url: str, *redirected: str) -> Request:
    request = Request(url, callback=spider.parse_page, errback=spider.listing_failed,
                      meta={"redirect_urls": list(redirected)} if redirected else {})
    spider.request_dropped(request, spider)
    return request


def test_later_results_page_redirected_to_a_page_already_read_leaves_the_run_incomplete():
    spider = spider_of("generic", "http://dealer.example/inventory/")
    _dropped(spider, "http://dealer.example/inventory/", "http://dealer.example/inventory/?page=3")
    assert spider.incomplete
    assert spider.problems == [
        "results page http://dealer.example/inventory/?page=3 redirected to a page already "
        "read (http://dealer.example/inventory/); its vehicles are unknown"]


@pytest.mark.parametrize("url, redirected", [
    ("http://dealer.example/inventory/?page=2", ()),  # linked from page 1 and page 3
    ("http://dealer.example/inventory/?page=2", ("http://dealer.example/inventory?page=2",)),
    ("http://www.dealer.example/inventory/?page=12", ("http://dealer.example/inventory/?page=12",)),
    ("http://dealer.example/new-inventory/", ("http://dealer.example/new-inventory",)),
    ("http://dealer.example/inventory/", ("http://dealer.example/used-inventory/",)),
])
def test_listing_pages_dropped_as_pages_already_read_are_no_fault(url, redirected):
    """The same page under another URL (a link seen twice, a trailing slash, www.), or a
    listing that is not a later results page sent to one the run read."""
    spider = spider_of("generic", "http://dealer.example/inventory/")
    _dropped(spider, url, *redirected)
    assert not spider.incomplete and not spider.problems


@pytest.mark.parametrize("url, redirected", [
    ("http://dealer.example/new/?page=2", "http://dealer.example/used/?page=2"),
    ("http://dealer.example/inventory/?page=2&make=kia",
     "http://dealer.example/inventory/?page=2&make=honda"),
], ids=["another-listing", "another-filter"])
def test_later_results_page_redirected_to_another_page_of_that_number_already_read_is_lost(
        url, redirected):
    """Page 2 of the used cars sent to page 2 of the new ones (read already) leaves used
    page 2's cars unknown."""
    spider = spider_of("generic", "http://dealer.example/inventory/")
    _dropped(spider, url, redirected)
    assert spider.incomplete
    assert spider.problems == [f"results page {redirected} redirected to a page already read "
                               f"({url}); its vehicles are unknown"]


def _read(spider, url: str, fresh: int, *redirected: str) -> None:
    """A listing page read at `url` (through `redirected`), showing `fresh` vehicles the
    pages before it did not."""
    from scrapy.http import HtmlResponse

    response = HtmlResponse(url, body=CARDS.encode(), encoding="utf-8",
                            request=Request(url, meta={"redirect_urls": list(redirected)}
                                            if redirected else {}))
    spider.note_page(response, max(fresh, 1), listing=True, fresh=fresh)


START = "http://dealer.example/inventory/?start=20"
PAGE_TWO = "http://dealer.example/inventory/?page=2"


@pytest.mark.parametrize("read_first", [True, False], ids=["read-before", "read-after"])
def test_later_results_page_renamed_to_a_page_read_with_vehicles_of_its_own_is_no_fault(
        read_first):
    """`?start=20` -> `?page=2`, which the crawl asked for already (page 1 links page 2
    both ways): the duplicate filter drops it unread. `?page=2` read in this crawl, before
    or after the drop, showing cars the pages before it did not, is that page."""
    spider = spider_of("generic", "http://dealer.example/inventory/")
    if read_first:
        _read(spider, PAGE_TWO, 3)
    _dropped(spider, PAGE_TWO, START)
    assert not spider.incomplete and not spider.problems  # judged when the spider closes
    if not read_first:
        _read(spider, PAGE_TWO, 3)
    spider.closed("finished")
    assert not spider.incomplete and not spider.problems


def test_a_renamed_page_read_plainly_then_rendered_counts_its_rendered_vehicles():
    spider = spider_of("generic", "http://dealer.example/inventory/")
    _dropped(spider, PAGE_TWO, START)
    _read(spider, PAGE_TWO, 3)  # rendered: its vehicles
    _read(spider, PAGE_TWO, 0)  # a plain read of the same page (order does not matter)
    spider.closed("finished")
    assert not spider.incomplete and not spider.problems


def test_later_results_page_renamed_to_a_page_read_through_its_own_rename_is_no_fault():
    """`?start=20` -> `/inventory?page=2`, which the crawl asked for and read after its own
    redirect to `/inventory/?page=2&sort=price`."""
    spider = spider_of("generic", "http://dealer.example/inventory/")
    target = "http://dealer.example/inventory?page=2"
    _read(spider, PAGE_TWO + "&sort=price", 2, target)
    _dropped(spider, target, START)
    spider.closed("finished")
    assert not spider.incomplete and not spider.problems


@pytest.mark.parametrize("read, why", [
    (None, "which the crawl asked for but never read as a results page"),
    ((PAGE_TWO, 0), "which shows no vehicle the pages before it did not"),
    (("http://dealer.example/specials/?page=2", 4),
     "read already, and redirected on to http://dealer.example/specials/?page=2"),
    (("http://dealer.example/inventory/", 4),
     "read already, and redirected on to http://dealer.example/inventory/"),
], ids=["never-read", "no-new-vehicles", "on-to-another-listing", "on-to-page-one"])
def test_later_results_page_renamed_to_a_page_already_asked_for_that_is_not_it_is_lost(
        read, why):
    """The target the crawl asked for already was never read as a results page (a detail
    page's request, a failed one), showed no vehicle the pages before it did not (page 1
    again, empty), or was itself redirected to another listing or to page 1: `?start=20`'s
    cars are unknown, said when the spider closes."""
    spider = spider_of("generic", "http://dealer.example/inventory/")
    _dropped(spider, PAGE_TWO, START)
    if read is not None:
        final, fresh = read
        _read(spider, final, fresh, *([PAGE_TWO] if final != PAGE_TWO else []))
    spider.problems = [p for p in spider.problems if START in p]  # the read's own, if any
    spider.incomplete = False
    spider.closed("finished")
    assert spider.incomplete
    assert spider.problems == [f"results page {START} redirected to {PAGE_TWO}, {why}; its "
                               "vehicles are unknown"]


def test_page_twelve_redirected_to_page_one_is_not_page_one():
    spider = spider_of("generic", "http://dealer.example/inventory/")
    _dropped(spider, "http://dealer.example/inventory/?page=1",
             "http://dealer.example/inventory/?page=12")
    assert spider.incomplete


def _scheduled(spider, url: str, *redirected: str) -> Request:
    request = Request(url, callback=spider.parse_page, errback=spider.listing_failed,
                      meta={"redirect_urls": list(redirected)})
    spider.request_scheduled(request, spider)
    return request


@pytest.mark.parametrize("site, target", [
    ("http://127.0.0.1:8080/inventory/", "http://127.0.0.1:8080/inventory/?page=2"),
    ("https://dealer.example/inventory/", "https://www.dealer.example:443/inventory/?page=2"),
])
def test_a_results_page_redirected_on_its_own_site_with_a_port_is_not_off_the_site(
        site, target):
    """The host, not host:port, says whether a redirect left the site (as Scrapy's offsite
    filter, which let such a request through, judges it): every results page of a site
    with a port in its URLs that redirected was called "redirected off the site"."""
    spider = spider_of("generic", site)
    _scheduled(spider, target, site + "?start=20")
    assert not spider.incomplete and not spider.problems


def test_a_results_page_redirected_to_another_host_with_a_port_is_off_the_site():
    spider = spider_of("generic", "http://127.0.0.1:8080/inventory/")
    _scheduled(spider, "http://127.0.0.2:8080/inventory/?page=2",
               "http://127.0.0.1:8080/inventory/?page=2")
    assert spider.incomplete
    assert spider.problems == [
        "results page http://127.0.0.1:8080/inventory/?page=2 redirected off the site to "
        "http://127.0.0.2:8080/inventory/?page=2; its vehicles are unknown"]


CARDS = "<!doctype html><html><body><div class=card>a car</div></body></html>"


def _redirected_page(spider, asked: str, final: str, fresh: int):
    from scrapy.http import HtmlResponse

    response = HtmlResponse(final, body=CARDS.encode(), encoding="utf-8",
                            request=Request(final, meta={"redirect_urls": [asked]}))
    spider.note_page(response, 3, listing=True, fresh=fresh)


@pytest.mark.parametrize("asked, final, fresh, said", [
    ("http://dealer.example/used/?page=2", "http://dealer.example/new/?page=2", 3,
     "results page http://dealer.example/used/?page=2 redirected to "
     "http://dealer.example/new/?page=2; its vehicles are unknown"),
    ("http://dealer.example/used/?start=20", "http://dealer.example/used/?page=2", 0,
     "results page http://dealer.example/used/?start=20 redirected to "
     "http://dealer.example/used/?page=2, which shows no vehicle the pages before it did "
     "not; its vehicles are unknown"),
], ids=["same-number-another-listing", "renamed-without-new-vehicles"])
def test_later_results_page_redirected_elsewhere_leaves_the_run_incomplete(
        asked, final, fresh, said):
    """Page 2 of the used cars answered by page 2 of the new ones (its page number the same)
    was taken for the page asked for; a renamed page showing only cars seen before is page 1
    again (or an earlier page) under page 2's address."""
    spider = spider_of("generic", "http://dealer.example/")
    _redirected_page(spider, asked, final, fresh)
    assert spider.incomplete and spider.problems == [said]


def test_later_results_page_renamed_with_vehicles_of_its_own_is_no_fault():
    spider = spider_of("generic", "http://dealer.example/")
    _redirected_page(spider, "http://dealer.example/used/?start=20",
                     "http://www.dealer.example/used?page=2&sort=price", 2)
    assert not spider.incomplete and not spider.problems


@pytest.mark.parametrize("asked, final, lost", [
    ("http://dealer.example/inventory/?start=20", "http://dealer.example/inventory/?page=2",
     True),  # renumbered: page 1's cars served again would pass a bare vehicle count
    ("http://dealer.example/inventory/?page=2", "http://dealer.example/inventory/page/2/",
     False),  # the same number, named another way
], ids=["renumbered", "same-number"])
def test_a_spider_that_keeps_no_earlier_pages_trusts_only_a_same_numbered_rename(
        asked, final, lost):
    """The platform spiders (dealeron, dealercom, dealerinspire, chain) pass no `fresh`:
    a renamed later page was judged by its vehicle count alone, so `?start=20` sent to
    `?page=2` serving page 1's cars again (an expired session) made a complete run, and the
    real page 2's cars could be removed. Without the pages before, only a renaming that
    keeps the page's number is trusted."""
    from scrapy.http import HtmlResponse

    spider = spider_of("generic", "http://dealer.example/inventory/")
    response = HtmlResponse(final, body=CARDS.encode(), encoding="utf-8",
                            request=Request(final, meta={"redirect_urls": [asked]}))
    spider.note_page(response, 2, listing=True)
    assert spider.incomplete is lost, spider.problems
    assert bool(spider.problems) is lost


# --- a rendered results page: the browser follows redirects and scripts' navigations itself,
# so the response's URL is where the page ended and its request's URL the one asked for ---

def _rendered(spider, asked: str, final: str, fresh: int, http: bool = False,
              body: str = CARDS, moved_to: str | None = None, vehicles: int = 3) -> str:
    """A listing page rendered in the browser: asked for as `asked`, ended at `final` (by an
    HTTP redirect, which scrapy-playwright records in `redirect_urls`, or a script's
    navigation or history change), showing `fresh` vehicles the pages before it did not."""
    from scrapy.http import HtmlResponse

    from crawler import browser, rendering

    meta = {"playwright": True, browser.RENDERED: True,
            rendering.NOTES: rendering.RenderNotes(moved_to=moved_to)}
    if http:
        meta["redirect_urls"] = [asked]
    response = HtmlResponse(final, body=body.encode(), encoding="utf-8",
                            request=Request(asked, meta=meta))
    return spider.note_page(response, vehicles, listing=True, fresh=fresh)


INVENTORY = "http://dealer.example/inventory/"


@pytest.mark.parametrize("final, moved_to", [
    (INVENTORY, INVENTORY),  # location.replace("/inventory/"), a meta refresh
    (INVENTORY, None),  # the scripts put page 1 in the address bar (history.replaceState)
    (INVENTORY + "?page=1", INVENTORY + "?page=1"),
    ("http://dealer.example/specials/", "http://dealer.example/specials/"),
    ("http://dealer.example/", "http://dealer.example/"),
], ids=["script-to-page-one", "history-to-page-one", "script-to-page-one-by-number",
        "script-to-another-listing", "script-to-home-page"])
def test_rendered_later_results_page_its_scripts_sent_elsewhere_leaves_the_run_incomplete(
        final, moved_to):
    """Chromium follows a page's own navigations (location.replace, a meta refresh) and
    scrapy-playwright answers with the page's final URL and no `redirect_urls`: page 2 sent
    to page 1, the home page or another listing was read as if page 2 had said so."""
    spider = spider_of("javascript", INVENTORY)
    _rendered(spider, INVENTORY + "?page=2", final, 3, moved_to=moved_to)
    assert spider.incomplete
    assert spider.problems == [f"results page {INVENTORY}?page=2 redirected to {final}; its "
                               "vehicles are unknown"]


def test_rendered_later_results_page_redirected_by_http_in_the_browser_is_judged_the_same():
    """An HTTP 302 the browser followed (recorded by scrapy-playwright in `redirect_urls`)."""
    spider = spider_of("javascript", INVENTORY)
    _rendered(spider, INVENTORY + "?page=2", INVENTORY, 3, http=True)
    assert spider.problems == [f"results page {INVENTORY}?page=2 redirected to {INVENTORY}; "
                               "its vehicles are unknown"]


@pytest.mark.parametrize("asked, final", [
    (INVENTORY + "?page=2", INVENTORY + "?page=2#results"),  # a fragment
    (INVENTORY + "?make=Mercedes-Benz&model=C 300&page=2",
     INVENTORY + "?make=Mercedes-Benz&model=C%20300&page=2"),  # the browser's encoding
    ("http://dealer.example/inventory/?model=O'Neil&page=2",
     "http://dealer.example/inventory/?model=O%27Neil&page=2"),
    ("http://Dealer.Example:80/inventory/?page=2&make=kia",
     "http://dealer.example/inventory/?make=kia&page=2"),  # host case, port, order
    (INVENTORY + "?page=2", "http://dealer.example/inventory?page=2"),  # the slash
    (INVENTORY + "?page=2", INVENTORY + "?page=2&utm_source=site&sort=price"),  # history
    (INVENTORY + "?start=20", "http://www.dealer.example/inventory?page=2#top"),  # renamed
], ids=["fragment", "encoding", "quote", "host-port-order", "slash", "tracking-params",
        "renamed"])
def test_rendered_later_results_page_whose_address_only_looks_other_is_no_fault(asked, final):
    """What the browser's address bar shows for the page asked for, named another way: a
    fragment, its own percent-encoding, a trailing slash, tracking or sort parameters added
    by the site's scripts, `?start=20` renamed `?page=2` (showing new vehicles)."""
    spider = spider_of("javascript", INVENTORY)
    _rendered(spider, asked, final, 3)
    assert not spider.incomplete and not spider.problems


def test_rendered_later_results_page_renamed_without_new_vehicles_is_lost():
    spider = spider_of("javascript", INVENTORY)
    _rendered(spider, INVENTORY + "?start=20", INVENTORY + "?page=2", 0)
    assert spider.problems == [f"results page {INVENTORY}?start=20 redirected to "
                               f"{INVENTORY}?page=2, which shows no vehicle the pages before "
                               "it did not; its vehicles are unknown"]


# --- a redirected results page that is itself blocked or not found: one problem ----------

CHALLENGE = ("<!doctype html><html><head><title>Just a moment...</title></head><body>"
             "<div id=cf-challenge></div></body></html>")
SOFT_404 = ("<!doctype html><html><head><title>Page Not Found | Dealer</title></head><body>"
            "<h1>Page not found</h1></body></html>")


@pytest.mark.parametrize("body, kind", [(CHALLENGE, pages.BLOCKED),
                                        (SOFT_404, pages.NOT_FOUND)],
                         ids=["blocked", "not-found"])
def test_later_results_page_redirected_to_a_blocked_or_missing_page_is_one_problem(body, kind):
    """Page 2 redirected to a bot check (or a "page not found" served with 200) was two
    problems, "blocked listing page <the check>" and "results page <page 2> redirected to
    <the check>": one page, one line, naming both."""
    from scrapy.http import HtmlResponse

    asked, final = INVENTORY + "?page=2", "http://dealer.example/check/?return=%2Finventory"
    spider = spider_of("generic", INVENTORY)
    response = HtmlResponse(final, body=body.encode(), encoding="utf-8",
                            request=Request(final, meta={"redirect_urls": [asked]}))
    assert spider.note_page(response, 0, listing=True, fresh=0) == kind
    assert spider.problems == [f"{kind} listing page {asked}: redirected to {final}"]


def test_rendered_later_results_page_its_scripts_moved_to_a_bot_check_is_one_problem():
    spider = spider_of("javascript", INVENTORY)
    consent = "http://dealer.example/consent/"
    assert _rendered(spider, INVENTORY + "?page=2", consent, 0, body=CHALLENGE.replace(
        "Just a moment...", "Cookies").replace("cf-challenge", "x"), moved_to=consent,
        vehicles=0) == pages.BLOCKED
    assert spider.problems == [f"blocked listing page {INVENTORY}?page=2: its scripts moved "
                               f"it to {consent} (a consent or bot-check page?)"]


def test_later_results_page_redirected_to_an_empty_later_page_is_one_problem():
    """`?start=20` renamed `?page=2`, which says "no vehicles found": judged as the redirect
    it is, not also as a later page saying it has no vehicles."""
    from scrapy.http import HtmlResponse

    spider = spider_of("generic", INVENTORY)
    empty = ("<!doctype html><html><head><title>Inventory</title></head><body><p>No vehicles "
             "found.</p></body></html>")
    response = HtmlResponse(INVENTORY + "?page=2", body=empty.encode(), encoding="utf-8",
                            request=Request(INVENTORY + "?page=2",
                                            meta={"redirect_urls": [INVENTORY + "?start=20"]}))
    assert spider.note_page(response, 0, listing=True, fresh=0) == pages.EMPTY
    assert spider.problems == [f"results page {INVENTORY}?start=20 redirected to {INVENTORY}"
                               "?page=2, which shows no vehicle the pages before it did not; "
                               "its vehicles are unknown"]
