"""The fallback chain's last step inside any platform's crawl (spiders/chain.py): a listing
page whose HTML shows no vehicles is requested again rendered, once, by the same callback;
a rendered page that still shows none makes the run incomplete; pages found on a rendered
page are rendered directly. Pure decisions, from saved pages, without a crawl."""

from __future__ import annotations

from pathlib import Path

import pytest
from scrapy.http import HtmlResponse, Request
from scrapy.utils.test import get_crawler

from crawler import browser, rendering
from spiders import chain
from spiders.generic import page_links, worth_rendering
from spiders.javascript import render_request

SITES = Path(__file__).resolve().parents[2] / "fixtures" / "sites"
BASE = "https://www.junipervalleykia.example"
SHELL = (SITES / "dealervenom" / "certified-vehicles" / "index.html").read_text()


def spider_of(platform: str, url: str, **settings):
    from spiders.registry import spider_for

    cls = spider_for(platform)
    crawler = get_crawler(cls)
    spider = cls.from_crawler(crawler, url=url, dealer_settings=settings or None)
    crawler.stats.open_spider()
    return spider


def response(url: str, html: str, request: Request | None = None, status: int = 200):
    return HtmlResponse(url, body=html.encode(), encoding="utf-8", status=status,
                        request=request or Request(url))


def test_render_request_asks_the_browser_once_with_the_javascript_page_setup():
    def callback(response):  # pragma: no cover - never called here
        return []

    request = render_request(BASE + "/x/", callback=callback, cb_kwargs={"first": True},
                             meta={"custom": 1})
    assert request.meta["playwright"] is True and request.meta[browser.RENDERED] is True
    assert request.meta["custom"] == 1
    assert rendering.WAIT_FOR not in request.meta  # the page's steps: crawler/rendering.py
    assert request.dont_filter  # the same URL was fetched plainly first
    assert request.callback is callback and request.cb_kwargs == {"first": True}
    waiting = render_request(BASE + "/x/", wait_for=".listing-container", dont_filter=False)
    assert waiting.meta[rendering.WAIT_FOR] == ".listing-container"
    assert not waiting.dont_filter


def test_a_card_platform_results_page_without_cards_is_requested_again_rendered():
    spider = spider_of("dealervenom", BASE + "/certified-vehicles/")
    url = BASE + "/certified-vehicles/"
    plain = response(url, SHELL, Request(url, callback=spider.parse_listing,
                                         errback=spider.listing_failed))
    [again] = list(spider.parse_listing(plain))
    assert again.url == url and again.meta["playwright"] is True
    assert again.callback == spider.parse_listing and again.errback == spider.listing_failed
    assert not spider.incomplete and not spider.problems
    assert spider.crawler.stats.get_value("forecourt/fallback/javascript") == 1


def test_a_rendered_page_that_still_shows_no_vehicles_is_never_rendered_again():
    spider = spider_of("dealervenom", BASE + "/certified-vehicles/")
    url = BASE + "/certified-vehicles/"
    rendered = response(url, SHELL.replace("Loading inventory", "Search is unavailable"),
                        render_request(url, callback=spider.parse_listing))
    assert list(spider.parse_listing(rendered)) == []
    assert spider.incomplete
    [problem] = spider.problems
    assert url in problem and "even rendered in the headless browser" in problem
    assert spider.rendered_pages == [url]
    assert spider.crawler.stats.get_value("forecourt/rendered/pages") == 1


@pytest.mark.parametrize("html, kind", [
    (SHELL.replace('<div class="ais-Stats"></div>', '<div class="ais-Stats">0 vehicles</div>'),
     "empty"),
    ("<html><title>Page Not Found</title><h1>Page not found</h1></html>", "not_found"),
    ("<html><title>Just a moment...</title><div id='cf-challenge'></div></html>", "blocked"),
])
def test_empty_missing_and_blocked_result_pages_are_not_rendered(html, kind):
    spider = spider_of("dealervenom", BASE + "/certified-vehicles/")
    url = BASE + "/certified-vehicles/"
    assert list(spider.parse_listing(response(url, html))) == []
    assert spider.page_kinds == {kind: 1}
    assert not spider.crawler.stats.get_value("forecourt/fallback/javascript")


def test_result_pages_found_on_a_rendered_page_are_rendered_directly_details_plainly():
    spider = spider_of("dealervenom", BASE + "/new-vehicles/")
    url = BASE + "/new-vehicles/"
    cards_page = (SITES / "dealervenom" / "new-vehicles" / "index.html").read_text()
    out = list(spider.parse_listing(response(url, cards_page,
                                             render_request(url, callback=spider.parse_listing))))
    details = [r for r in out if r.callback == spider.parse_detail]
    [following] = [r for r in out if r.callback == spider.parse_listing]
    assert len(details) == 3 and not any(r.meta.get("playwright") for r in details)
    assert following.url == url + "?pg=2" and following.meta["playwright"] is True
    assert not following.dont_filter  # pagers that loop stay filtered
    plain = list(spider.parse_listing(response(url, cards_page)))
    [following] = [r for r in plain if r.callback == spider.parse_listing]
    assert "playwright" not in following.meta


def test_api_platforms_render_a_page_without_their_config_and_read_it_with_their_callback():
    spider = spider_of("dealerinspire", "https://di.example/inventory/")
    url = "https://di.example/inventory/"
    shell = "<html><title>Inventory</title><div id='results'></div></html>"
    plain = response(url, shell, Request(url, callback=spider.parse_page,
                                         errback=spider.listing_failed))
    [again] = list(spider.parse_page(plain))
    assert again.callback == spider.parse_page and again.meta["playwright"] is True
    rendered = response(url, shell, again)
    assert list(spider.parse_page(rendered)) == [] and spider.incomplete


def test_fallback_data_vin_cards_on_a_rendered_page_are_vehicles():
    spider = spider_of("dealercom", "https://ddc.example/new-inventory/index.htm")
    url = "https://ddc.example/new-inventory/index.htm"
    html = ('<html><div class="car" data-vin="5XXG64J26PG218845" data-year="2023" '
            'data-make="Kia" data-model="K5" data-price="$26,450"></div></html>')
    rendered = response(url, html, render_request(url, callback=spider.parse_listing,
                                                  cb_kwargs={"tried_listing": True}))
    [item] = list(spider.parse_listing(rendered, tried_listing=True))
    assert item.vin == "5XXG64J26PG218845" and not spider.incomplete
    assert spider.crawler.stats.get_value("forecourt/fallback/data-vin") == 1


def test_follow_matches_how_the_page_itself_was_fetched():
    spider = spider_of("generic", "https://g.example/inventory/")
    url = "https://g.example/inventory/"
    plain = chain.follow(spider, response(url, "<html></html>"), url + "?page=2")
    rendered = chain.follow(spider, response(url, "<html></html>", render_request(url)),
                            url + "?page=2")
    assert "playwright" not in plain.meta and rendered.meta["playwright"] is True


@pytest.mark.parametrize("url, html, vehicle_links, worth", [
    ("https://g.example/used-inventory/", "<html></html>", 0, True),
    ("https://g.example/cars/?page=2", "<html></html>", 0, True),
    ("https://g.example/", "<html><a href='/inventory/'>Cars</a></html>", 0, False),
    ("https://g.example/", "<noscript>Please enable JavaScript</noscript>", 0, True),
    ("https://g.example/inventory/", "<html></html>", 2, False),
])
def test_generic_renders_only_results_pages_that_lead_to_no_vehicle_pages(
        url, html, vehicle_links, worth):
    assert worth_rendering(html, url, vehicle_links) is worth


def test_generic_page_links_split_vehicle_pages_from_listings_on_the_same_site():
    html = ("<a href='/inventory/used-2023-kia-k5-5XXG64J26PG218845'>K5</a>"
            "<a href='/used-inventory/?page=2'>Next</a><a href='/about/'>About</a>"
            "<a href='https://other.example/inventory/'>Elsewhere</a><a href='#top'>Top</a>")
    vehicles, listings = page_links(html, "https://g.example/used-inventory/")
    assert vehicles == ["https://g.example/inventory/used-2023-kia-k5-5XXG64J26PG218845"]
    assert listings == ["https://g.example/used-inventory/?page=2"]


def test_a_generic_results_page_with_nothing_on_it_is_rendered_and_a_home_page_is_not():
    spider = spider_of("generic", "https://g.example/")
    home = response("https://g.example/", "<html><a href='/inventory/'>Inventory</a></html>",
                    Request("https://g.example/", callback=spider.parse_page,
                            cb_kwargs={"listing": True}))
    out = list(spider.parse_page(home, listing=True))
    assert [r.url for r in out] == ["https://g.example/inventory/"]
    assert not any(r.meta.get("playwright") for r in out)
    url = "https://g.example/inventory/"
    listing = response(url, "<html><h1>Inventory</h1><div id='app'></div></html>",
                       Request(url, callback=spider.parse_page, cb_kwargs={"listing": True}))
    [again] = list(spider.parse_page(listing, listing=True))
    assert again.meta["playwright"] is True and again.cb_kwargs == {"listing": True}
