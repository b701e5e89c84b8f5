"""What a rendered page means for the run (crawler/rendering.py) and what the browser never
fetches (crawler/browser.py): pure decisions, without a browser. The same pages rendered in
real Chromium: tests/integration/test_javascript_site.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from scrapy.http import HtmlResponse
from scrapy.utils.test import get_crawler

from crawler import browser, pages, rendering
from crawler.errors import RenderTimeout
from crawler.middlewares_security import fault_kind
from crawler.rendering import RenderNotes, listing_problems

URL = "https://www.mesamotors.example/inventory/"


def test_a_rendered_page_that_says_0_vehicles_is_empty_only_when_nothing_casts_doubt():
    assert listing_problems(URL, URL, pages.EMPTY, 0, RenderNotes()) == (pages.EMPTY, [])
    failed = RenderNotes(failed=[f"GET {URL}api/{n}: HTTP 500" for n in range(5)])
    kind, [problem] = listing_problems(URL, URL, pages.EMPTY, 0, failed)
    assert kind == pages.EMPTY and problem.startswith(f"listing page {URL} says it has no "
                                                      "vehicles, but its scripts' data requests "
                                                      f"failed (GET {URL}api/0: HTTP 500; ")
    assert "; 2 more)" in problem  # the first three named
    kind, [problem] = listing_problems(URL, URL, pages.EMPTY, 0, RenderNotes(settled=False))
    assert "its network never went quiet" in problem


def test_a_rendered_page_its_scripts_moved_elsewhere_is_blocked_unless_it_shows_vehicles():
    consent = "https://www.mesamotors.example/consent/"
    moved = RenderNotes(moved_to=consent)
    for kind in (pages.EMPTY, pages.OTHER):
        assert listing_problems(URL, consent, kind, 0, moved) == (pages.BLOCKED, [
            f"blocked listing page {URL}: its scripts moved it to {consent} (a consent or "
            "bot-check page?)"])
    # off the dealer's site by any way (a redirect the browser followed itself)
    away = "https://geo.captcha.example/check"
    assert listing_problems(URL, away, pages.OTHER, 0, RenderNotes())[0] == pages.BLOCKED
    # the www. host and the bare domain are one site; a page with vehicles is read
    assert listing_problems(URL, "https://mesamotors.example/inventory/?sort=price",
                            pages.EMPTY, 0, RenderNotes()) == (pages.EMPTY, [])
    assert listing_problems(URL, consent, pages.INVENTORY, 4, moved) == (pages.INVENTORY, [])


def test_a_page_with_vehicles_is_incomplete_only_when_loading_more_of_them_failed_or_stopped():
    broken_widget = RenderNotes(failed=["GET /api/reviews: HTTP 404"], settled=False)
    assert listing_problems(URL, URL, pages.INVENTORY, 24, broken_widget) == \
        (pages.INVENTORY, [])
    stopped = RenderNotes(more_rounds=40, more_left="it still showed more after 40 rounds",
                          failed_loading_more=["GET /api/page/3: HTTP 502"])
    kind, problems = listing_problems(URL, URL, pages.INVENTORY, 960, stopped)
    assert problems == [f"listing page {URL}: loading more of its vehicles failed (GET "
                        "/api/page/3: HTTP 502); the rest are unknown",
                        f"listing page {URL} was not read whole: it still showed more after "
                        "40 rounds"]


def test_the_spider_leaves_the_run_incomplete_for_a_doubtful_rendered_page():
    from spiders.javascript import Spider, render_request

    crawler = get_crawler(Spider)
    spider = Spider.from_crawler(crawler, url=URL)
    crawler.stats.open_spider()
    request = render_request(URL)
    request.meta[rendering.NOTES] = RenderNotes(failed=[f"GET {URL}api: HTTP 500"])
    response = HtmlResponse(URL, body=b"<html><body><p>0 vehicles</p></body></html>",
                            encoding="utf-8", request=request)
    assert spider.note_page(response, 0, listing=True) == pages.EMPTY
    assert spider.incomplete and len(spider.problems) == 1
    assert "its scripts' data requests failed" in spider.problems[0]
    assert crawler.stats.get_value("forecourt/rendered/failed_requests") == 1


@pytest.mark.parametrize("url, kind, reason", [
    ("https://www.google-analytics.com/analytics.js", "script", "tracker"),
    ("https://region1.google-analytics.com/g/collect?v=2", "fetch", "tracker"),
    ("https://connect.facebook.net/en_US/fbevents.js", "script", "tracker"),
    ("https://www.mesamotors.example/photo.jpg", "image", "image"),
    ("https://www.mesamotors.example/f.woff2", "font", "font"),
    ("http://169.254.169.254/latest/meta-data/", "xhr", "unsafe"),
    ("https://www.mesamotors.example/api/inventory", "xhr", None),
    ("https://notgoogle-analytics.com/inventory.js", "script", None),
    ("https://www.facebook.com/dealer-page", "document", None),
    ("data:text/plain,hello", "fetch", None),
])
def test_the_browser_never_fetches_heavy_resources_trackers_or_unsafe_addresses(url, kind,
                                                                                 reason):
    assert browser.abort_reason(SimpleNamespace(url=url, resource_type=kind)) == reason


def test_a_page_timed_out_in_the_browser_is_counted_as_such_and_retried_by_the_job():
    from jobs.outcome import TRANSIENT, classify_exception

    timeout = RenderTimeout("rendering took longer than 90 s")
    assert fault_kind(timeout) == "rendering timed out (FORECOURT_RENDER_TIMEOUT_S)"
    assert classify_exception(timeout) == TRANSIENT


def test_the_page_steps_wait_for_the_dealers_selector_then_settle_and_read_all():
    watch = rendering.PageWatch()
    steps = rendering.page_methods(watch, ".vehicle-card")
    assert steps[0].method == "wait_for_selector" and steps[0].args == (".vehicle-card",)
    assert [s.method for s in steps[1:]] == [watch.settle, watch.read_all]
    assert [s.method for s in rendering.page_methods(watch, None)] == [watch.settle,
                                                                       watch.read_all]


def test_a_browser_navigation_timeout_is_named_by_its_own_limit_not_download_timeout():
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    timeout = PlaywrightTimeout("Timeout 30000ms exceeded. navigating to ...")
    assert fault_kind(timeout) == \
        "page load timed out in the browser (PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT)"
    assert fault_kind(TimeoutError()) == "timed out"  # a plain download's stays as it was
