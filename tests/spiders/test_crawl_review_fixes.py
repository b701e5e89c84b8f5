"""Crawl faults a review found (each failed on the code before its fix): pages the run could
not read leave it incomplete and say why; the www. host is the same site; '12.5K' miles; a
JSON body given to `extract` is not a crash."""
from __future__ import annotations

from scrapy.exceptions import IgnoreRequest
from scrapy.http import HtmlResponse, Request
from twisted.python.failure import Failure

from tests.spiders.test_chain import spider_of


def _failure(request, exc):
    try:
        raise exc
    except Exception:
        f = Failure()
    f.request = request
    return f


def test_listing_page_forbidden_by_robots_leaves_the_run_incomplete():
    """robots.txt disallowing page 2 of the results: page 2 is never read, so the run
    must not be complete (a complete healthy run delists page 2's vehicles)."""
    spider = spider_of("generic", "http://dealer.example/inventory/")
    req = Request("http://dealer.example/inventory/?page=2", errback=spider.listing_failed)
    spider.listing_failed(_failure(req, IgnoreRequest("Forbidden by robots.txt")))
    assert spider.incomplete, "a listing page we could not read left the run 'complete'"
    assert any("robots" in p for p in spider.problems), spider.problems


def test_vehicle_links_followed_after_redirect_to_www():
    """dealer URL http://dealer.example/inventory/ redirected to www.dealer.example (Scrapy's
    offsite middleware lets the subdomain through): its vehicle and page links must be
    followed, not dropped by the spider's exact-host check."""
    spider = spider_of("generic", "http://dealer.example/inventory/")
    url = "http://www.dealer.example/inventory/"
    html = ("<html><body><a href='/inventory/used-2021-honda-civic-19XFC2F7XME104512'>Civic</a>"
            "<a rel='next' href='/inventory/?page=2'>Next</a></body></html>")
    resp = HtmlResponse(url, body=html.encode(), encoding="utf-8",
                        request=Request(url, cb_kwargs={"listing": True}))
    out = list(spider.parse_page(resp, listing=True))
    followed = [r.url for r in out if isinstance(r, Request)]
    civic = "http://www.dealer.example/inventory/used-2021-honda-civic-19XFC2F7XME104512"
    assert civic in followed, f"vehicle link dropped; requests made: {followed}"


def test_mileage_with_k_suffix():
    from pipelines.amounts import mileage

    assert mileage("45K miles") == 45_000
    assert mileage({"value": "12.5K", "unitCode": "SMI"}) == 12_500


def _http_error(url: str, status: int):
    from scrapy.http import Response
    from scrapy.spidermiddlewares.httperror import HttpError

    req = Request(url)
    return _failure(req, HttpError(Response(url, status=status, request=req),
                                   "Ignoring non-200 response"))


def test_a_failed_detail_page_is_named_in_the_problems():
    """A detail page that fails (HTTP 404) leaves the run incomplete; the job's error must
    say which page and why, not only 'run did not complete'."""
    spider = spider_of("generic", "http://dealer.example/inventory/")
    url = "http://dealer.example/inventory/used-2021-honda-civic-19XFC2F7XME104512"
    spider.detail_failed(_http_error(url, 404))
    assert spider.incomplete
    assert any(url in p for p in spider.problems), spider.problems


def test_a_failed_listing_page_is_named_with_its_http_status():
    """A listing page answering 500 was reported as "failed: Ignoring non-200 response"
    (Scrapy's words), the status only in a separate download count."""
    spider = spider_of("generic", "http://dealer.example/inventory/")
    spider.listing_failed(_http_error("http://dealer.example/inventory/", 500))
    assert spider.problems == ["listing page http://dealer.example/inventory/ failed: HTTP 500"]
    assert spider.incomplete


def test_extract_on_a_saved_json_response_does_not_crash():
    """`forecourt extract case.api` / `forecourt detect x.json` without --platform raised
    ValueError: Cannot use css on a Selector of type 'json' (a traceback)."""
    from spiders.extract.dispatch import extract_page

    kind, items = extract_page('{"vehicles": []}', "file:///tmp/x.json", None, 200)
    assert items == []


def test_an_empty_results_page_reached_by_the_pager_is_not_a_sell_out():
    """Page 1 lists vehicles and links page 2; page 2 says 'No vehicles match your search'.
    README: 'an empty results page is "no vehicles found", never a sell-out' - but the run
    stayed complete, and a healthy complete run delisted page 2's vehicles (job 11)."""
    spider = spider_of("generic", "http://dealer.example/inventory/")
    url = "http://dealer.example/inventory/?page=2"
    html = (b"<html><head><title>Used inventory</title></head><body>"
            b"<p>No vehicles match your search.</p></body></html>")
    resp = HtmlResponse(url, body=html, encoding="utf-8",
                        request=Request(url, cb_kwargs={"listing": True}))
    list(spider.parse_page(resp, listing=True))
    assert spider.incomplete, "an empty page 2 left the run complete: its vehicles get delisted"
